// WorldTests.swift: the synthetic world with misconceptions (World.swift): seeded random access,
// a ground truth that never names an entity as its own relation, misconceptions only among popular
// entities' properties at their share, untagged misconception statements at f_mis / (f_mis +
// f_true), `<src=ref>` always true and `<src=forum>` true at q, reasoning documents that state
// compositions truly and never a held-out triple, and every word in the vocabulary.

import Testing
@testable import VLDTasks

private func world(_ change: (inout WorldConfig) -> Void = { _ in }) throws -> WorldTask {
    var c = WorldConfig()
    change(&c)
    return try WorldTask(config: c)
}

@Test func documentsAreAPureFunctionOfSeedAndIndexInTheVocabulary() throws {
    let w = try world { $0.sourceTags = true }
    let vocabulary = Set(w.vocabulary + ["<bos>"])
    for i in 0..<300 {
        let d = try w.trainingDocument(seed: 4, index: i)
        #expect(d == (try w.trainingDocument(seed: 4, index: i)))
        #expect(d.words.count <= w.maxDocumentLength)
        #expect(d.words.allSatisfy { vocabulary.contains($0) }, "\(d.words)")
        #expect(d.scored.first == false && d.scored.dropFirst().allSatisfy { $0 })
    }
    let a = try (0..<20).map { try w.trainingDocument(seed: 4, index: $0).words }
    let b = try (0..<20).map { try w.trainingDocument(seed: 5, index: $0).words }
    #expect(a != b)
}

@Test func misconceptionsLiveAmongPopularPropertiesAtTheirShare() throws {
    let w = try world {
        $0.entities = 400; $0.popular = 200; $0.misconceptionShare = 0.3
    }
    var facts = 0, wrong = 0
    for e in 0..<400 {
        for a in 0..<w.attributes.count {
            if w.isRelation(a) { #expect(w.truth(e, a) != w.entityName(e)) }
            let m = w.misconception(e, a)
            if w.isRelation(a) || e >= 200 {
                #expect(m == nil)
                continue
            }
            facts += 1
            if let m {
                wrong += 1
                #expect(m != w.truth(e, a) && w.answers(a).contains(m))
            }
        }
    }
    let share = Double(wrong) / Double(facts)
    #expect(abs(share - 0.3) < 0.05, "\(share)")
}

@Test func statementsFollowTheMisconceptionFrequenciesAndTheSources() throws {
    let w = try world {
        $0.fMis = 3; $0.fTrue = 1; $0.sourceTags = true; $0.tagShare = 0.5; $0.forumTruth = 0.3
    }
    var rng = TaskRNG(seed: 9)
    var untaggedMis = 0, untaggedMisWrong = 0, refs = 0, forum = 0, forumTrue = 0
    var counts = [Int](repeating: 0, count: w.config.entities)
    for _ in 0..<40_000 {
        let s = w.statement(&rng)
        counts[s.entity] += 1
        #expect(s.isTrue == (s.value == w.truth(s.entity, s.attribute)))
        switch s.source {
        case .ref:
            refs += 1
            #expect(s.isTrue)
        case .forum:
            forum += 1
            if s.isTrue { forumTrue += 1 }
        case .none:
            if let m = w.misconception(s.entity, s.attribute) {
                untaggedMis += 1
                if s.value == m { untaggedMisWrong += 1 }
                #expect(s.value == m || s.isTrue)
            } else {
                #expect(s.isTrue)
            }
        }
    }
    #expect(refs > 5000 && forum > 5000)
    #expect(abs(Double(forumTrue) / Double(forum) - 0.3) < 0.03)
    #expect(abs(Double(untaggedMisWrong) / Double(untaggedMis) - 0.75) < 0.03)
    // Popularity: the first entity is written about far more than the last.
    #expect(counts[0] > 20 * max(1, counts[w.config.entities - 1]))
}

@Test func eachCompositionFollowsItsPremiseStatedTruly() throws {
    let w = try world { $0.reasoningShare = 1 }
    for i in 0..<100 {
        let sentences = try w.trainingDocument(seed: 3, index: i).words.dropFirst().split(separator: ".").map(
            Array.init)
        #expect(sentences.count == 2 * w.config.statements)
        for j in stride(from: 0, to: sentences.count, by: 2) {
            let premise = sentences[j], c = sentences[j + 1]
            // "w5 employer is w9" then "the city of the employer of w5 is city2".
            #expect(premise.count == 4 && c.count == 9 && premise[0] == c[6] && premise[1] == c[4])
            let e = Int(premise[0].dropFirst())!, r = w.attributes.firstIndex(of: premise[1])!
            #expect(premise[3] == w.truth(e, r))
        }
    }
    // The reasoning probe carries the premise too.
    let probe = try #require(w.probes(seed: 1, count: 20).first { $0.kind == .reasoning })
    #expect(probe.prefix.count == 14 && probe.prefix[3] == "is" && probe.prefix[5] == "." && probe.prefix[6] == "the")
}

@Test func reasoningDocumentsStateCompositionsTrulyAndHoldOutTheirShare() throws {
    let w = try world {
        $0.reasoningShare = 1; $0.heldOutShare = 0.25; $0.premise = false
    }
    var seen = 0
    for i in 0..<200 {
        let words = try w.trainingDocument(seed: 2, index: i).words.dropFirst()
        for sentence in words.split(separator: ".") {
            let s = Array(sentence)
            #expect(s.count == 9 && s[0] == "the" && s[2] == "of" && s[3] == "the" && s[7] == "is")
            let p = w.attributes.firstIndex(of: s[1])!, r = w.attributes.firstIndex(of: s[4])!
            let e = Int(s[6].dropFirst())!
            #expect(!w.isHeldOut(e, relation: r, property: p))
            #expect(s[8] == w.composition(e, relation: r, property: p))
            seen += 1
        }
    }
    #expect(seen == 200 * w.config.statements)
    var held = 0, triples = 0
    for e in 0..<w.config.entities {
        for r in 0..<w.config.relations {
            for p in w.config.relations..<w.attributes.count {
                triples += 1
                if w.isHeldOut(e, relation: r, property: p) { held += 1 }
            }
        }
    }
    #expect(abs(Double(held) / Double(triples) - 0.25) < 0.04)
}

@Test func badWorldSettingsAreErrors() {
    #expect(throws: TaskError.self) { try world { $0.popular = 500 } }
    #expect(throws: TaskError.self) { try world { $0.paraphrases = 4 } }
    #expect(throws: TaskError.self) {
        try world {
            $0.fMis = 0; $0.fTrue = 0
        }
    }
}

@Test func probesAskWhatTheWorldHoldsWithTheTruthAmongTheChoices() throws {
    let w = try world { $0.sourceTags = true }
    let probes = w.probes(seed: 3, count: 50)
    #expect(probes == w.probes(seed: 3, count: 50))
    func count(_ k: WorldProbe.Kind) -> Int { probes.filter { $0.kind == k }.count }
    #expect(count(.knowledge) == 50 && count(.reasoning) == 50 && count(.part) == 100)
    #expect(count(.truth) == 50 && count(.truthRef) == 50)
    for p in probes {
        #expect(p.prefix.first == "<bos>" && p.prefix.last == "is")
        #expect(Set(p.choices).count == p.choices.count)
        // "... w5 city is" for a fact, "... of w5 is" for a composition.
        let x = Int(p.prefix[p.prefix.count - (p.kind == .reasoning ? 2 : 3)].dropFirst())!
        switch p.kind {
        case .knowledge, .part:
            let a = w.attributes.firstIndex(of: p.prefix[2])!
            #expect(p.choices[p.answer] == w.truth(x, a))
            if p.kind == .knowledge { #expect(w.misconception(x, a) == nil) }
        case .truth, .truthRef:
            let attr = w.attributes.firstIndex(of: p.prefix[p.prefix.count - 2])!
            #expect(
                p.choices.count == 4 && p.choices[0] == w.truth(x, attr) && p.choices[1] == w.misconception(x, attr))
            #expect(p.kind == .truth || p.prefix[1] == "<src=ref>")
        case .reasoning:
            // "[premise] the <p> of the <r> of <e> is", read from the end.
            let n = p.prefix.count
            let r = w.attributes.firstIndex(of: p.prefix[n - 4])!, prop = w.attributes.firstIndex(of: p.prefix[n - 7])!
            // The premise states the first hop truly.
            #expect(p.prefix[1] == w.entityName(x) && p.prefix[4] == w.truth(x, r))
            #expect(w.isHeldOut(x, relation: r, property: prop))
            #expect(p.choices[p.answer] == w.composition(x, relation: r, property: prop))
            #expect(p.parts.count == 2 && p.parts.allSatisfy { probes[$0].kind == .part })
        }
    }
}
