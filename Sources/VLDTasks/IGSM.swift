// IGSM.swift: iGSM-lite, grade-school-math-style reasoning problems with a controlled number of
// operations (spec §6.3, after Ye et al., "Physics of Language Models: Part 2.1", iGSM).
//
// A problem is drawn from one TaskRNG stream in four layers:
//  1. Structure: one of four invented 4-level category hierarchies (region → zoo → enclosure →
//     animal, district → school → classroom → supply, city → market → shop → fruit, fleet →
//     ship → deck → cargo; six single-word items per level), levels 0..d-1 with d ∈ 2...4 and
//     w ∈ 2...4 items per level (the spec's "full" ranges). Every item below level 0 gets one
//     random parent item; random extra edges between consecutive levels bring the count to E.
//  2. Parameters: one instance parameter per edge, "each X 's Y" (how many Y each X has);
//     abstract parameters (spec v2) are not generated.
//  3. Dependencies: a random topological order of the parameters; each takes one of the eleven
//     expression forms of spec §6.3 step 3 (IGSMForm) over earlier ones. All values mod 23.
//  4. Query and op count: op = Σ over the necessary set (ancestors(q) ∪ {q}) of
//     IGSMTask.operationCost. The draw (IGSMGraph.draw) builds the necessary set first, with
//     forms whose costs must sum to the target exactly (rejected and redrawn otherwise), then
//     adds distractors; a draw is also rejected when its solution-template hash is outside the
//     requested split or the document exceeds the length budget. Measured: 1.2-3 draws per
//     train problem and 6-8 per test problem (the test split keeps 6 of the 23 hash values).
//
// Structure size scales with the op count: E is uniform in [max(n, Σ_{l≥1} w_l),
// min(Σ w_{l-1}·w_l, maxEdges)], where n (the number of necessary parameters, about op/1.35) is
// at least what the target needs, and levels/widths are redrawn until that range is non-empty.
// So every problem has n necessary parameters and E − n distractors, and large-op problems get
// the larger structures they need. maxEdges (default 12 for maxOps ≤ 6, up to 20 = iGSM's
// max_edge at maxOps 14-15) is validated to be large enough for op = maxOps + 6.
//
// The problem text is one sentence per parameter (distractors included) in shuffled order, then
// the question ("pq" order). The solution (detail level 0) defines the necessary parameters in
// topological order, one binary operation per clause; IGSMSolution.swift renders and checks it.

import Foundation

/// A configuration the task refuses; the message names the field and the accepted range.
public struct IGSMConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// iGSM-lite settings. Decoding accepts missing keys (defaults as in `init`); equality compares
/// the effective values.
public struct IGSMConfig: Codable, Equatable, Sendable {
    /// How problems are written. `text`: "The number of each Aviary 's Lion equals 3 times as much
    /// as each Paddock 's Zebra ." and "Define Aviary 's Lion as s ;". `symbolic`: the same
    /// parameters as "Lion Aviary = 3 * Zebra Paddock ;" (about half the words; needs "(" and ")"
    /// for c + ( A + B )) and "Define Lion Aviary as s ;". `compact`: the symbolic sentences
    /// without "=" ("Lion Aviary 3 * Zebra Paddock ;", "Zebra Paddock 4 ;"), and each Define
    /// step copies the parameter's right-hand side after its name ("Define Lion Aviary 3 * Zebra
    /// Paddock as s ; ..."), so that a constant's value and each word of a definition come right
    /// after the words before them in the question, the layout in which the chain pilots'
    /// 2-block models learned to retrieve (an induction head's one-token offset; Olsson et al.
    /// 2022); the checker requires the copy to be exact.
    public enum Render: String, Codable, Sendable, CaseIterable { case text, symbolic, compact }
    /// The letters naming solution steps: `random` (a fresh random letter per clause, as in iGSM)
    /// or `ordered` (a, b, c, ... in solution order, so the symbol carries no entropy).
    public enum StepSymbols: String, Codable, Sendable, CaseIterable { case random, ordered }
    /// `template`: problems are split by the hash of their template (train < 17 ≤ test, see
    /// `IGSMGraph.templateHash`), so evaluation can tell in-template from held-out-template
    /// accuracy. `none`: no split; training and evaluation draw from one distribution.
    public enum Split: String, Codable, Sendable, CaseIterable { case template, none }

    /// A curriculum: the largest op count of training document i grows linearly from
    /// `fromMaxOps` (document 0) to maxOps (document `documents` and after).
    public struct Curriculum: Codable, Equatable, Sendable {
        public var fromMaxOps: Int
        public var documents: Int
        public init(fromMaxOps: Int, documents: Int) {
            self.fromMaxOps = fromMaxOps
            self.documents = documents
        }
    }

    /// T_max: training problems have op uniform in 1...maxOps; evaluation goes to maxOps + 6.
    public var maxOps: Int
    /// When true (default), only the solution and answer tokens are scored in training.
    public var maskQuestion: Bool
    /// Upper bound on structure edges, i.e. on parameters (sentences) per problem. Unless set,
    /// it follows maxOps: `defaultMaxEdges(maxOps:)` (12 up to maxOps 6, then maxOps + 6, at
    /// most 20, the paper's max_edge). Accepted: `minimumMaxEdges(maxOps:)...largestMaxEdges`.
    public var maxEdges: Int {
        get { edgesOverride ?? IGSMConfig.defaultMaxEdges(maxOps: maxOps) }
        set { edgesOverride = newValue }
    }
    private var edgesOverride: Int?
    /// Optional cap on the words of a document (prompt + solution), for models with a short
    /// context: longer draws are rejected like draws with the wrong op count, so problems are
    /// sampled conditional on fitting (at high op counts this favours fewer distractors; state it
    /// when reporting). nil: the structural bound `IGSMTask.lengthBudget` alone.
    public var maxWords: Int?
    /// Arithmetic is mod this number (iGSM: 23). Smaller moduli make each operation table
    /// smaller (p² entries per operation), so every entry is seen more often in training.
    public var modulus = 23
    public var render: Render = .text
    public var stepSymbols: StepSymbols = .random
    public var split: Split = .template
    public var curriculum: Curriculum?

    public static let supportedMaxOps: ClosedRange<Int> = 1...15
    public static let largestMaxEdges = 32
    /// Numbers are the words 0...22, so the modulus is at most 23.
    public static let modulusRange = 2...23

    /// 12 (spec §6.3 CPU range 8-12) up to maxOps 6, then growing with maxOps up to 20 (iGSM).
    public static func defaultMaxEdges(maxOps: Int) -> Int { min(20, max(12, maxOps + 6)) }

    /// The fewest edges with which op = maxOps + 6 stays quick to reach (the necessary set of
    /// an op-T problem has about T/1.35 parameters): max(8, 2(maxOps + 6)/3 + 1).
    public static func minimumMaxEdges(maxOps: Int) -> Int { max(8, (maxOps + 6) * 2 / 3 + 1) }

    /// `maxEdges: nil` (default) makes maxEdges follow maxOps (see `maxEdges`).
    public init(
        maxOps: Int = 6, maskQuestion: Bool = true, maxEdges: Int? = nil, modulus: Int = 23,
        render: Render = .text, stepSymbols: StepSymbols = .random, split: Split = .template
    ) {
        self.maxOps = maxOps
        self.maskQuestion = maskQuestion
        self.edgesOverride = maxEdges
        self.modulus = modulus
        self.render = render
        self.stepSymbols = stepSymbols
        self.split = split
    }

    enum CodingKeys: String, CodingKey {
        case maxOps, maskQuestion, maxEdges, maxWords, modulus, render, stepSymbols, split, curriculum
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            maxOps: try c.decodeIfPresent(Int.self, forKey: .maxOps) ?? 6,
            maskQuestion: try c.decodeIfPresent(Bool.self, forKey: .maskQuestion) ?? true,
            maxEdges: try c.decodeIfPresent(Int.self, forKey: .maxEdges),
            modulus: try c.decodeIfPresent(Int.self, forKey: .modulus) ?? 23,
            render: try c.decodeIfPresent(Render.self, forKey: .render) ?? .text,
            stepSymbols: try c.decodeIfPresent(StepSymbols.self, forKey: .stepSymbols) ?? .random,
            split: try c.decodeIfPresent(Split.self, forKey: .split) ?? .template)
        maxWords = try c.decodeIfPresent(Int.self, forKey: .maxWords)
        curriculum = try c.decodeIfPresent(Curriculum.self, forKey: .curriculum)
    }

    /// Writes maxEdges only when it was set (so a decoded config keeps following maxOps).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxOps, forKey: .maxOps)
        try c.encode(maskQuestion, forKey: .maskQuestion)
        try c.encodeIfPresent(edgesOverride, forKey: .maxEdges)
        try c.encodeIfPresent(maxWords, forKey: .maxWords)
        try c.encode(modulus, forKey: .modulus)
        try c.encode(render, forKey: .render)
        try c.encode(stepSymbols, forKey: .stepSymbols)
        try c.encode(split, forKey: .split)
        try c.encodeIfPresent(curriculum, forKey: .curriculum)
    }

    public static func == (a: IGSMConfig, b: IGSMConfig) -> Bool {
        a.maxOps == b.maxOps && a.maskQuestion == b.maskQuestion && a.maxEdges == b.maxEdges && a.maxWords == b.maxWords
            && a.modulus == b.modulus && a.render == b.render && a.stepSymbols == b.stepSymbols && a.split == b.split
            && a.curriculum == b.curriculum
    }

    public func validate() throws {
        let ops = IGSMConfig.supportedMaxOps
        guard ops.contains(maxOps) else {
            throw IGSMConfigError(message: "igsm: maxOps \(maxOps) is outside \(ops.lowerBound)...\(ops.upperBound)")
        }
        let lo = IGSMConfig.minimumMaxEdges(maxOps: maxOps), hi = IGSMConfig.largestMaxEdges
        guard (lo...hi).contains(maxEdges) else {
            throw IGSMConfigError(message: "igsm: maxEdges \(maxEdges) is outside \(lo)...\(hi) (for maxOps \(maxOps))")
        }
        let m = IGSMConfig.modulusRange
        guard m.contains(modulus) else {
            throw IGSMConfigError(message: "igsm: modulus \(modulus) is outside \(m.lowerBound)...\(m.upperBound)")
        }
        if let c = curriculum {
            guard (1...maxOps).contains(c.fromMaxOps) else {
                throw IGSMConfigError(
                    message: "igsm: curriculum.fromMaxOps \(c.fromMaxOps) is outside 1...maxOps (\(maxOps))")
            }
            guard c.documents >= 1 else {
                throw IGSMConfigError(message: "igsm: curriculum.documents must be at least 1, got \(c.documents)")
            }
        }
    }

    /// The largest op count of training document `index` (maxOps unless a curriculum is set).
    public func maxOps(atDocument index: Int) -> Int {
        guard let c = curriculum else { return maxOps }
        let done = min(max(index, 0), c.documents)
        return c.fromMaxOps + (maxOps - c.fromMaxOps) * done / c.documents
    }
}

public enum IGSMSplit: String, Codable, Sendable { case train, test }

/// One generated problem: its words and, internally, the dependency graph the checker needs.
public struct IGSMProblem: Equatable, Sendable {
    public let ops: Int
    /// "Question :", the shuffled parameter sentences, then "How many Y does X have ?".
    public let question: [String]
    /// The words after "Solution :", ending with "Answer : <v> <eos>".
    public let solution: [String]
    public let answer: Int
    /// FNV-1a hash of the problem's template mod 23 (train < 17 ≤ test).
    public let templateHash: Int
    public let modulus: Int
    public let render: IGSMConfig.Render

    /// All parameters in topological order (parents always precede their children).
    let parameters: [IGSMParameter]
    /// Index into `parameters` of the queried one.
    let query: Int

    public var prompt: [String] { ["<bos>"] + question + ["Solution", ":"] }

    /// The accuracy of answering with the value of a constant parameter picked uniformly from the
    /// problem: the floor of a model that has learned "answer with some given number" but not which
    /// parameter is which (an op-1 answer is always such a constant).
    public var constantGuessAccuracy: Double {
        let constants = parameters.filter { $0.form == .constant }
        guard !constants.isEmpty else { return 0 }
        return Double(constants.filter { $0.value == answer }.count) / Double(constants.count)
    }
}

/// The expression forms of spec §6.3 step 3 (c is a random constant, A..D earlier parameters).
enum IGSMForm: Int, CaseIterable, Sendable {
    case constant  // c ∈ 0...22
    case copy  // A
    case plusConst  // c + A   (c ∈ 1...22, as for all forms below with a constant)
    case timesConst  // c × A
    case add  // A + B
    case sub  // A − B
    case sum3  // A + B + C
    case sum4  // A + B + C + D
    case constPlusSum  // c + (A + B)
    case constPlusDiff  // c + (A − B)
    case constTimesSum  // c × (A + B)

    var parentCount: Int {
        switch self {
        case .constant: return 0
        case .copy, .plusConst, .timesConst: return 1
        case .add, .sub, .constPlusSum, .constPlusDiff, .constTimesSum: return 2
        case .sum3: return 3
        case .sum4: return 4
        }
    }

    var hasConstant: Bool {
        switch self {
        case .constant, .plusConst, .timesConst, .constPlusSum, .constPlusDiff, .constTimesSum: return true
        default: return false
        }
    }

    /// Operations this parameter contributes (spec §6.3 step 4); equals its solution clauses.
    var cost: Int { IGSMTask.operationCost(parents: parentCount, hasConstant: hasConstant) }

    /// Relative draw weight (out of 20) when enough earlier parameters exist.
    var weight: Int {
        switch self {
        case .constant: return 4
        case .copy, .plusConst, .timesConst, .sub: return 2
        case .add: return 3
        case .sum3, .constPlusSum: return 1
        case .sum4, .constPlusDiff, .constTimesSum: return 1
        }
    }
}

/// One instance parameter "each owner 's item" with its definition and value.
struct IGSMParameter: Equatable, Sendable {
    let owner: String
    let item: String
    let form: IGSMForm
    /// Operand parameters (indices into the problem's parameters), in the order they are written.
    let parents: [Int]
    let constant: Int
    let value: Int
}

/// The iGSM-lite task family.
public struct IGSMTask: SyntheticTask {
    public let config: IGSMConfig
    /// Draws after which generation gives up with a `TaskError` (a few draws suffice on average;
    /// validation refuses settings that make acceptance rare, so this only turns a settings
    /// mistake that slipped through into a message).
    public var drawLimit = 1_000_000

    public init(config: IGSMConfig) throws {
        try config.validate()
        self.config = config
    }

    public var family: String { "igsm" }

    public var vocabulary: [String] { IGSMWords.vocabulary + (config.render == .text ? [] : ["(", ")"]) }

    /// A true upper bound on the words of any document (prompt + solution) at ops ≤ maxOps + 6:
    ///   16 + 20·maxEdges + 20·(maxOps + 6)
    /// 16 fixed words (<bos>, "Question :", the 7-word question, "Solution :", "Answer : v <eos>"),
    /// 20 per parameter sentence (sentences have 10-31 words, about 17 on average) and 20 per
    /// operation (the most any solution step spends per op: 20 words for a 1-op step, 16 per op
    /// at 2 ops, 14.7 at 3), so the solution part alone never exceeds its share. Generation
    /// rejects any draw that would be longer, so the bound holds by construction; in practice it
    /// never binds (no rejection in 20,000 draws per op level at maxOps 6 or 15). Default
    /// config: 496 (longest seen at op 12: 485); maxOps 15 with 20 edges: 836 (seen: 802).
    public var maxDocumentLength: Int { IGSMTask.lengthBudget(config) }

    /// Symbolic rendering: 14 fixed words (the question is "How many Y X ?") and at most 15 per
    /// parameter sentence; the per-op bound is the text one (a Define step is one word shorter).
    /// Compact: 14 words per sentence at most, and a Define step also copies its right-hand side
    /// (at most 24 words for a 1-op step, "Define Y X A B + C D as s ; so s = a + b = 1 + 2 = 3 .").
    static func lengthBudget(_ c: IGSMConfig) -> Int {
        let fixed = c.render == .text ? 16 : 14
        let perEdge = (c.render == .text ? 20 : c.render == .symbolic ? 15 : 14) * c.maxEdges
        let perOp = (c.render == .compact ? 24 : 20) * (c.maxOps + 6)
        return min(fixed + perEdge + perOp, c.maxWords ?? Int.max)
    }

    /// Fraction of raw draws for `ops` operations that are accepted (right op count, split and
    /// length). Validation refuses a maxWords that makes this tiny, since every document would
    /// then cost thousands of draws (or hit the draw cap).
    /// The result is cached per (settings, ops, split, draws): a grid's trials usually share
    /// their task, and validating a 500-trial manifest must not take the daemon 500 times as long.
    public func acceptanceRate(ops: Int, split: IGSMSplit, draws: Int = 4000) -> Double {
        let key =
            "\(config.maxOps) \(config.maxEdges) \(config.maxWords ?? -1) \(config.render) \(config.split) \(ops) \(split.rawValue) \(draws)"
        if let rate = AcceptanceCache.shared.value(key) { return rate }
        let rate = measureAcceptance(ops: ops, split: split, draws: draws)
        AcceptanceCache.shared.store(key, rate)
        return rate
    }

    private func measureAcceptance(ops: Int, split: IGSMSplit, draws: Int) -> Double {
        var g = IGSMGraph()
        var rng = TaskRNG(seed: 1, stream: 0xFEA5_1B1E, index: ops)
        let budget = IGSMTask.lengthBudget(config)
        var accepted = 0
        for _ in 0..<draws where g.draw(target: ops, config: config, split: split, lengthBudget: budget, rng: &rng) {
            accepted += 1
        }
        return Double(accepted) / Double(draws)
    }

    /// The problem behind training document `index`: op uniform in 1...maxOps (or the
    /// curriculum's bound at this document), train split.
    public func trainingProblem(seed: UInt64, index: Int) throws -> IGSMProblem {
        var rng = TaskRNG(seed: seed, stream: 0x1654_7261_696E, index: index)
        let ops = rng.int(in: 1...config.maxOps(atDocument: index))
        return try generate(ops: ops, split: .train, rng: &rng)
    }

    /// Training document `index`: op uniform in 1...maxOps, train split; words = prompt + solution.
    /// With maskQuestion only the solution words are scored, otherwise every word after <bos>.
    public func trainingDocument(seed: UInt64, index: Int) throws -> Document {
        let p = try trainingProblem(seed: seed, index: index)
        let prompt = p.prompt
        let words = prompt + p.solution
        var scored = [Bool](repeating: !config.maskQuestion, count: words.count)
        scored[0] = false
        for i in prompt.count..<words.count { scored[i] = true }
        return Document(words: words, scored: scored)
    }

    /// Problem `index` of the (seed, ops, split) stream; a pure function of its arguments.
    /// `ops` must lie in 1...maxOps + 6.
    public func problem(seed: UInt64, index: Int, ops: Int, split: IGSMSplit) throws -> IGSMProblem {
        guard (1...config.maxOps + 6).contains(ops) else {
            throw TaskError("igsm: ops \(ops) outside 1...\(config.maxOps + 6)")
        }
        let stream: UInt64 = 0x2000 + UInt64(ops) * 2 + (split == .train ? 0 : 1)
        var rng = TaskRNG(seed: seed, stream: stream, index: index)
        return try generate(ops: ops, split: split, rng: &rng)
    }

    /// Checks a generated solution step by step (see IGSMSolution.swift).
    public func check(_ problem: IGSMProblem, candidate: [String]) -> IGSMCheck {
        IGSMChecker.check(problem, candidate: candidate)
    }

    // MARK: op count

    /// Operations contributed by one parameter (spec §6.3 step 4): with indeg = parents, plus one
    /// when the definition draws a random constant (the RNG counts as a parent), the cost is
    /// 1 when indeg ≤ 2 and indeg − 1 otherwise. So a constant, A, c + A, A + B cost 1;
    /// A + B + C and c + (A ± B) cost 2; A + B + C + D costs 3.
    public static func operationCost(parents: Int, hasConstant: Bool) -> Int {
        let indegree = parents + (hasConstant ? 1 : 0)
        return indegree <= 2 ? 1 : indegree - 1
    }

    /// op of `query` in a dependency DAG (`parents[i]` lists node i's parameter parents,
    /// `hasConstant[i]` whether it draws a constant): the sum of operationCost over the necessary
    /// set, ancestors(query) ∪ {query}.
    public static func operationCount(query: Int, parents: [[Int]], hasConstant: [Bool]) -> Int {
        var necessary = Set<Int>(), stack = [query]
        while let n = stack.popLast() {
            if necessary.insert(n).inserted { stack.append(contentsOf: parents[n]) }
        }
        return necessary.reduce(0) { $0 + operationCost(parents: parents[$1].count, hasConstant: hasConstant[$1]) }
    }

    // MARK: generation

    func generate(ops target: Int, split: IGSMSplit, rng: inout TaskRNG) throws -> IGSMProblem {
        var g = IGSMGraph()
        let budget = IGSMTask.lengthBudget(config)
        for _ in 0..<drawLimit {
            if g.draw(target: target, config: config, split: split, lengthBudget: budget, rng: &rng) {
                return g.render(config: config, rng: &rng)
            }
        }
        throw TaskError(
            "igsm: no \(split.rawValue) problem with \(target) operations in \(drawLimit) draws under maxEdges \(config.maxEdges) "
                + "and maxWords \(config.maxWords.map(String.init) ?? "unset"); raise them or lower the op count")
    }
}

/// Acceptance rates already measured, shared by every validation in the process (the daemon's
/// socket threads validate concurrently).
final class AcceptanceCache: @unchecked Sendable {
    static let shared = AcceptanceCache()
    private let lock = NSLock()
    private var rates: [String: Double] = [:]

    func value(_ key: String) -> Double? {
        lock.lock()
        defer { lock.unlock() }
        return rates[key]
    }

    func store(_ key: String, _ rate: Double) {
        lock.lock()
        defer { lock.unlock() }
        if rates.count >= 4096 { rates.removeAll() }
        rates[key] = rate
    }
}
