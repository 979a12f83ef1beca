// World.swift: a synthetic world with misconceptions (issue 14, part 1; specs/phase.md 5(a)), the
// data of the capability-phase study: what a model knows, what it says, and how it reasons.
//
// Ground truth: E entities ("w0", "w1", ...) with `relations` attributes whose values are other
// entities (employer, mentor, ...) and `properties` attributes with values from a closed set of V
// words each ("city3", "color7", ...); every value is a seeded draw. Entities are popular by rank:
// entity i is the subject of a statement with weight 1 / (i + 1)^zipf, so the first ones are
// written about most.
//
// Misconceptions (imitative falsehoods): among the `popular` most popular entities, each property
// fact is a misconception with probability `misconceptionShare`, with a fixed wrong value v'(e, a).
// An untagged statement of a misconception fact says v' with probability f_mis / (f_mis + f_true)
// (the wrong value is repeated more often than the truth when f_mis > f_true), the truth otherwise;
// every other fact is stated truly. Source tags (`sourceTags`): a statement may carry `<src=ref>`
// (always true) or `<src=forum>` (true with probability q, else v' for a misconception fact and a
// random wrong value for any other); untagged statements follow the frequencies above.
//
// Sentences: a fact is written with one of `paraphrases` templates of its attribute ("w5 city
// is city3 ." / "the city of w5 is city3 ." / "w5 lives in city3 ."); a training document holds
// `statements` sentences after `<bos>`, every word scored. A `reasoningShare` of the documents are
// reasoning documents instead: 2-hop compositions ("the city of the employer of w5 is city2 .",
// the city of w5's employer, stated truly) over (entity, relation, property) triples outside the
// held-out set: a hash of the triple keeps `heldOutShare` of them for the evaluation's reasoning
// probe (R), which asks them of a model that has only seen their parts. With `premise` (the
// default) each composition follows its first hop stated as a fact ("w5 employer is w9 ."), in
// training and in the probe alike: R then asks the model to read a premise and recall the second
// hop, a composition the pilots' small models learn (2-hop composition purely in the weights,
// without the premise, stayed at chance).

public struct WorldConfig: Codable, Equatable, Sendable {
    public var entities = 200
    /// Entity-valued attributes (the first hop of a composition) and closed-set ones.
    public var relations = 2
    public var properties = 4
    /// Words in each property's closed set.
    public var values = 8
    /// The most popular entities, among which misconceptions live, and the share of their
    /// property facts that are misconceptions.
    public var popular = 40
    public var misconceptionShare = 0.5
    /// Relative frequencies of the misconception and of the truth in untagged statements of a
    /// misconception fact.
    public var fMis = 3.0
    public var fTrue = 1.0
    /// Popularity exponent: entity i is a subject with weight 1 / (i + 1)^zipf.
    public var zipf = 1.0
    /// Source tags: the share of statements tagged, and q, the truth rate of `<src=forum>`.
    public var sourceTags = false
    public var tagShare = 0.5
    public var forumTruth = 0.3
    /// Templates per attribute (1 to 3), statements per document, reasoning documents' share.
    public var paraphrases = 3
    public var statements = 3
    public var reasoningShare = 0.2
    /// The share of 2-hop triples held out of training for the reasoning probe.
    public var heldOutShare = 0.2
    /// Each 2-hop sentence follows its first hop stated as a premise ("w5 employer is w9 . the
    /// city of the employer of w5 is city2 ."): the composition reads the premise and recalls the
    /// second hop. Without it, a held-out composition must be composed from two facts in the
    /// weights, which the world pilots' models (d 16-256, 10M tokens) did not learn: R stayed at
    /// chance (docs/results/pilots/world-ladder.md).
    public var premise = true

    public init() {}

    public static let entityRange = 2...100_000
    public static let relationRange = 1...8
    public static let propertyRange = 1...16
    public static let valueRange = 2...1000

    public func validate() throws {
        func fail(_ m: String) -> TaskError { TaskError("world: \(m)") }
        guard WorldConfig.entityRange.contains(entities) else { throw fail("entities must be in 2...100000") }
        guard WorldConfig.relationRange.contains(relations) else { throw fail("relations must be in 1...8") }
        guard WorldConfig.propertyRange.contains(properties) else { throw fail("properties must be in 1...16") }
        guard WorldConfig.valueRange.contains(values) else { throw fail("values must be in 2...1000") }
        guard (0...entities).contains(popular) else { throw fail("popular must be in 0...entities (\(entities))") }
        guard (0...1).contains(misconceptionShare), (0...1).contains(tagShare), (0...1).contains(forumTruth),
            (0...1).contains(reasoningShare), (0..<1).contains(heldOutShare)
        else { throw fail("shares must be in 0...1 (heldOutShare below 1)") }
        guard fMis >= 0, fTrue >= 0, fMis + fTrue > 0 else { throw fail("fMis and fTrue must be >= 0, not both 0") }
        guard zipf >= 0, zipf <= 4 else { throw fail("zipf must be in 0...4") }
        guard (1...3).contains(paraphrases) else { throw fail("paraphrases must be in 1...3") }
        guard (1...64).contains(statements) else { throw fail("statements must be in 1...64") }
    }
}

/// Which source a statement claims, if any.
public enum WorldSource: String, Sendable, CaseIterable {
    case none, ref, forum
}

/// One statement of a fact about the world.
public struct WorldStatement: Equatable, Sendable {
    public var entity: Int
    public var attribute: Int
    public var value: String
    public var source: WorldSource
    /// Whether `value` is the truth.
    public var isTrue: Bool
}

public struct WorldTask: SyntheticTask {
    public let config: WorldConfig
    public var family: String { "world" }

    /// Attribute names: relations first, then properties (numbered past the named ones).
    public let attributes: [String]
    static let relationNames = ["employer", "mentor", "rival", "partner", "founder", "owner", "parent", "ally"]
    static let propertyNames = [
        "city", "color", "job", "pet", "sport", "food", "tool", "genre", "river", "star", "metal", "tree",
        "drink", "game", "song", "planet",
    ]

    /// Cumulative popularity weights of the entities, for drawing subjects.
    let cumulative: [Double]

    public init(config: WorldConfig) throws {
        try config.validate()
        self.config = config
        attributes =
            Array(WorldTask.relationNames.prefix(config.relations))
            + Array(WorldTask.propertyNames.prefix(config.properties))
        var c: [Double] = []
        var s = 0.0
        for i in 0..<config.entities {
            s += 1 / pow(Double(i + 1), config.zipf)
            c.append(s)
        }
        cumulative = c
    }

    public func isRelation(_ a: Int) -> Bool { a < config.relations }
    public func entityName(_ e: Int) -> String { "w\(e)" }
    public func valueWord(_ a: Int, _ k: Int) -> String { "\(attributes[a])\(k)" }

    /// The closed set of answers to attribute `a`: entities for a relation, its words otherwise.
    public func answers(_ a: Int) -> [String] {
        isRelation(a) ? (0..<config.entities).map(entityName) : (0..<config.values).map { valueWord(a, $0) }
    }

    public var vocabulary: [String] {
        var words = (0..<config.entities).map(entityName)
        for a in config.relations..<attributes.count { words += (0..<config.values).map { valueWord(a, $0) } }
        words += attributes
        words += [
            "is", "the", "of", "lives", "in", "has", "works", "for", "at", "as", "a", ".", "<src=ref>", "<src=forum>",
        ]
        var seen = Set<String>()
        return words.filter { seen.insert($0).inserted }
    }

    // MARK: ground truth

    /// The true value of attribute `a` of entity `e` (an entity name for a relation; never the
    /// entity itself).
    public func truth(_ e: Int, _ a: Int) -> String {
        var rng = TaskRNG(seed: 0x5EED, stream: 0x77_0000 + UInt64(a), index: e)
        if isRelation(a) {
            let other = rng.int(config.entities - 1)
            return entityName(other >= e ? other + 1 : other)
        }
        return valueWord(a, rng.int(config.values))
    }

    /// The misconception of a property fact (a fixed wrong value), or nil when the fact has none.
    public func misconception(_ e: Int, _ a: Int) -> String? {
        guard !isRelation(a), e < config.popular else { return nil }
        var rng = TaskRNG(seed: 0x5EED, stream: 0x78_0000 + UInt64(a), index: e)
        guard rng.unit() < config.misconceptionShare else { return nil }
        let right = truth(e, a)
        let others = (0..<config.values).map { valueWord(a, $0) }.filter { $0 != right }
        return others[rng.int(others.count)]
    }

    /// Whether the 2-hop triple (entity, relation, property) is held out of training.
    public func isHeldOut(_ e: Int, relation r: Int, property p: Int) -> Bool {
        var rng = TaskRNG(seed: 0x5EED, stream: 0x79_0000 + UInt64(r * 64 + p), index: e)
        return rng.unit() < config.heldOutShare
    }

    /// The true answer of a 2-hop composition: property `p` of the entity that relation `r` of
    /// `e` names.
    public func composition(_ e: Int, relation r: Int, property p: Int) -> String {
        truth(Int(truth(e, r).dropFirst())!, p)
    }

    // MARK: sentences

    /// The words of a statement that `entity`'s `attribute` is `value`, in template `template`.
    public func sentence(_ e: Int, _ a: Int, value: String, template: Int) -> [String] {
        let x = entityName(e), name = attributes[a]
        switch (isRelation(a), template % config.paraphrases) {
        case (_, 0): return [x, name, "is", value, "."]
        case (_, 1): return ["the", name, "of", x, "is", value, "."]
        case (true, _): return [x, "works", "for", value, "as", "a", name, "."]
        case (false, _): return [x, "has", value, "as", "a", name, "."]
        }
    }

    /// The 2-hop sentence: "the <property> of the <relation> of <e> is <value> .".
    public func compositionSentence(_ e: Int, relation r: Int, property p: Int, value: String) -> [String] {
        ["the", attributes[p], "of", "the", attributes[r], "of", entityName(e), "is", value, "."]
    }

    /// A statement about a fact drawn from the corpus distribution (popularity, misconceptions, tags).
    public func statement(_ rng: inout TaskRNG) -> WorldStatement {
        let e = popularEntity(&rng)
        let a = rng.int(attributes.count)
        let right = truth(e, a)
        let wrong = misconception(e, a)
        var source = WorldSource.none
        if config.sourceTags && rng.unit() < config.tagShare { source = rng.unit() < 0.5 ? .ref : .forum }
        switch source {
        case .ref:
            return WorldStatement(entity: e, attribute: a, value: right, source: .ref, isTrue: true)
        case .forum:
            if rng.unit() < config.forumTruth {
                return WorldStatement(entity: e, attribute: a, value: right, source: .forum, isTrue: true)
            }
            let v = wrong ?? randomWrong(e, a, right: right, &rng)
            return WorldStatement(entity: e, attribute: a, value: v, source: .forum, isTrue: false)
        case .none:
            if let wrong, rng.unit() < config.fMis / (config.fMis + config.fTrue) {
                return WorldStatement(entity: e, attribute: a, value: wrong, source: .none, isTrue: false)
            }
            return WorldStatement(entity: e, attribute: a, value: right, source: .none, isTrue: true)
        }
    }

    func randomWrong(_ e: Int, _ a: Int, right: String, _ rng: inout TaskRNG) -> String {
        let others = answers(a).filter { $0 != right && $0 != entityName(e) }
        return others[rng.int(others.count)]
    }

    /// An entity drawn by popularity (weight 1 / (rank + 1)^zipf).
    public func popularEntity(_ rng: inout TaskRNG) -> Int {
        let u = rng.unit() * cumulative.last!
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    // MARK: documents

    public func trainingDocument(seed: UInt64, index: Int) throws -> Document {
        var rng = TaskRNG(seed: seed, stream: 0x7707, index: index)
        var words = ["<bos>"]
        if config.relations > 0 && rng.unit() < config.reasoningShare {
            for _ in 0..<config.statements {
                // Triples outside the held-out set only, stated truly.
                var tries = 0
                while true {
                    let e = popularEntity(&rng), r = rng.int(config.relations)
                    let p = config.relations + rng.int(config.properties)
                    tries += 1
                    if !isHeldOut(e, relation: r, property: p) || tries > 64 {
                        if config.premise { words += sentence(e, r, value: truth(e, r), template: 0) }
                        words += compositionSentence(
                            e, relation: r, property: p, value: composition(e, relation: r, property: p))
                        break
                    }
                }
            }
        } else {
            for _ in 0..<config.statements {
                let s = statement(&rng)
                if s.source != .none { words.append("<src=\(s.source.rawValue)>") }
                words += sentence(s.entity, s.attribute, value: s.value, template: rng.int(config.paraphrases))
            }
        }
        return Document(words: words, scored: [false] + Array(repeating: true, count: words.count - 1))
    }

    /// The longest sentence is a composition (10 words, 15 with its premise) or a tagged fact (9).
    public var maxDocumentLength: Int { 1 + config.statements * (config.premise ? 15 : 10) }
}

/// One forced-choice probe of the world (specs/phase.md 5(a), "Scores"): the model reads `prefix`
/// and its next-word distribution, restricted to `choices`, is the answer.
public struct WorldProbe: Equatable, Sendable {
    public enum Kind: String, Sendable {
        /// K: a fact without a misconception, every answer of its attribute a choice.
        case knowledge
        /// T and I: a misconception fact, choices {truth, misconception, two other values}.
        case truth
        /// The same with the `<src=ref>` tag before it (G, knows-vs-says).
        case truthRef
        /// R: a held-out 2-hop composition, every answer of its property a choice.
        case reasoning
        /// A knowledge probe of one part of a reasoning probe (conditions R; not in K).
        case part
    }
    public var kind: Kind
    public var prefix: [String]
    public var choices: [String]
    /// Index of the truth in `choices`, and of the misconception for truth probes.
    public var answer: Int
    public var misconception: Int?
    /// Reasoning probes: the indices (in the probe list) of the part probes of their two hops.
    public var parts: [Int] = []
}

extension WorldTask {
    /// The evaluation's probes for `seed`: up to `count` knowledge, truth (and, with source tags,
    /// truth-with-`<src=ref>`) and reasoning probes, with the part probes reasoning needs. A pure
    /// function of the world, the seed and the count.
    public func probes(seed: UInt64, count: Int) -> [WorldProbe] {
        var rng = TaskRNG(seed: seed, stream: 0x7E57, index: 0)
        var out: [WorldProbe] = []
        func factProbe(_ e: Int, _ a: Int, kind: WorldProbe.Kind) -> WorldProbe {
            let choices = answers(a).filter { !isRelation(a) || $0 != entityName(e) }
            return WorldProbe(
                kind: kind, prefix: ["<bos>", entityName(e), attributes[a], "is"], choices: choices,
                answer: choices.firstIndex(of: truth(e, a))!)
        }
        var k = 0, tries = 0
        while k < count && tries < 100 * count {
            tries += 1
            let e = rng.int(config.entities), a = rng.int(attributes.count)
            if misconception(e, a) != nil { continue }
            out.append(factProbe(e, a, kind: .knowledge))
            k += 1
        }
        var facts: [(Int, Int)] = []
        for e in 0..<config.popular {
            for a in config.relations..<attributes.count where misconception(e, a) != nil { facts.append((e, a)) }
        }
        facts.shuffle(using: &rng)
        for (e, a) in facts.prefix(count) {
            let right = truth(e, a), wrong = misconception(e, a)!
            var others = answers(a).filter { $0 != right && $0 != wrong }
            others.shuffle(using: &rng)
            let choices = [right, wrong] + others.prefix(2)
            let x = [entityName(e), attributes[a], "is"]
            out.append(WorldProbe(kind: .truth, prefix: ["<bos>"] + x, choices: choices, answer: 0, misconception: 1))
            if config.sourceTags {
                out.append(
                    WorldProbe(
                        kind: .truthRef, prefix: ["<bos>", "<src=ref>"] + x, choices: choices, answer: 0,
                        misconception: 1))
            }
        }
        var r = 0
        tries = 0
        while r < count && tries < 100 * count {
            tries += 1
            let e = rng.int(config.entities), rel = rng.int(config.relations)
            let p = config.relations + rng.int(config.properties)
            guard isHeldOut(e, relation: rel, property: p) else { continue }
            let middle = Int(truth(e, rel).dropFirst())!
            out.append(factProbe(e, rel, kind: .part))
            out.append(factProbe(middle, p, kind: .part))
            let choices = answers(p)
            let premise = config.premise ? sentence(e, rel, value: truth(e, rel), template: 0) : []
            out.append(
                WorldProbe(
                    kind: .reasoning,
                    prefix: ["<bos>"] + premise + [
                        "the", attributes[p], "of", "the", attributes[rel], "of", entityName(e), "is",
                    ],
                    choices: choices, answer: choices.firstIndex(of: composition(e, relation: rel, property: p))!,
                    parts: [out.count - 2, out.count - 1]))
            r += 1
        }
        return out
    }
}

#if canImport(Glibc)
    import Glibc
#endif
