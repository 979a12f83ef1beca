// SearchTests.swift: best-of-N, beam search and DVTS (Search.swift) on a small random policy:
// each method's invariants (outputs, slots, N/M children, subtrees kept apart, every token
// counted), and the prefix-shared KV cache against recomputation (greedy steps of every node
// equal a full forward pass over its parent's text).

import Testing
@testable import VLDExperiments
import VLDModel
import VLDTensor

private let separator: Int32 = 3, eos: Int32 = 4

/// A small policy trained for a few hundred steps on step-by-step texts: after <bos> (1), 3 to 5
/// steps of 1 to 3 tokens from 5...8, each ending with the separator, then <eos>. It writes steps
/// of its own, sampled or greedy, which is what the searches need.
private func policy() throws -> Transformer {
    let cfg = ModelConfig(
        arch: .llama, dModel: 16, layers: 2, heads: 2, kvHeads: 1, ffnHidden: 32, context: 96, vocab: 9,
        schedule: try LayerSchedule(parsing: "cyc(1)"))
    var rng = SeededRNG(seed: 11)
    let model = try Transformer(config: cfg, pool: ThreadPool(threads: 1), rng: &rng)
    let optimizer = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig())
    let B = 8, T = 24
    for _ in 0..<300 {
        var inputs: [Int32] = [], targets: [Int32] = []
        for _ in 0..<B {
            var doc: [Int32] = [1]
            for _ in 0..<(3 + rng.nextInt(3)) {
                doc += (0..<(1 + rng.nextInt(3))).map { _ in Int32(5 + rng.nextInt(4)) } + [separator]
            }
            doc.append(eos)
            let row = Array((doc + [Int32](repeating: eos, count: T + 1)).prefix(T + 1))
            inputs += row.prefix(T)
            targets += (1...T).map { $0 < doc.count ? row[$0] : -1 }
        }
        try model.trainStep(inputs: inputs, targets: targets, B: B, T: T, lr: 0.01, clip: 1, optimizer: optimizer)
    }
    return model
}

/// The share of even tokens up to each step end: a deterministic score in [0, 1].
private func scorer(_ prompt: [Int32], _ tokens: [Int32], _ ends: [Int]) -> [Double] {
    ends.map { e in Double(tokens[...e].filter { $0 % 2 == 0 }.count) / Double(e + 1) }
}

private func settings(temperature: Float) -> SearchSettings {
    var s = SearchSettings(separator: separator, eos: eos)
    s.temperature = temperature
    s.maxStepTokens = 8
    s.maxRounds = 4
    return s
}

/// Every token a search generated is counted once: a node adds its tokens past its parent's.
private func checkAccounting(_ o: SearchOutcome) {
    let byID = Dictionary(uniqueKeysWithValues: o.nodes.map { ($0.id, $0) })
    var added = 0
    for n in o.nodes {
        let parent = n.parent.map { byID[$0]!.tokens } ?? []
        #expect(Array(n.tokens.prefix(parent.count)) == parent, "node \(n.id) does not extend its parent")
        added += n.tokens.count - parent.count
        #expect(n.stepEnds.allSatisfy { n.tokens[$0] == separator || $0 == n.tokens.count - 1 })
        #expect(n.scores.count == n.stepEnds.count)
    }
    #expect(o.generatedTokens == added)
}

@Test func beamSearchKeepsItsSlotsAndExpandsMChildrenPerBeam() throws {
    let search = StepSearch(policy: try policy(), settings: settings(temperature: 1), scorer: scorer)
    var rng = SeededRNG(seed: 5)
    let o = try search.run(.beam(n: 8, m: 2), prompt: [1, 5, 6, 3], rng: &rng)
    // N/M = 4 slots, all filled at the end (finished beams and those the last round left open).
    #expect(o.outputs.count == 4)
    #expect(Set(o.outputs.map(\.id)).count == 4)
    let rounds = Set(o.nodes.map(\.round)).sorted()
    #expect(rounds.count >= 3, "the search should go past its first rounds: \(rounds)")
    #expect(o.nodes.filter { $0.round == 0 }.count == 8)
    var finished = 0
    for r in rounds {
        let these = o.nodes.filter { $0.round == r }
        let kept = these.filter(\.kept)
        #expect(kept.count == 4 - finished, "round \(r)")
        if r > 0 {
            let parents = o.nodes.filter { $0.round == r - 1 && $0.kept && !$0.done }
            #expect(these.count == 2 * parents.count)
            #expect(Set(these.compactMap(\.parent)) == Set(parents.map(\.id)))
        }
        // Survivors are the best by the last step's score.
        let worstKept = kept.map { $0.scores.last ?? -1 }.min() ?? 1
        let bestPruned = these.filter { !$0.kept }.map { $0.scores.last ?? -1 }.max() ?? -1
        #expect(worstKept >= bestPruned)
        finished += kept.filter(\.done).count
    }
    checkAccounting(o)
}

@Test func dvtsSubtreesGrowApartAndEachGivesItsLastMCandidates() throws {
    let search = StepSearch(policy: try policy(), settings: settings(temperature: 1), scorer: scorer)
    var rng = SeededRNG(seed: 6)
    let o = try search.run(.dvts(n: 8, m: 2), prompt: [1, 5, 6, 3], rng: &rng)
    #expect(o.outputs.count == 8)
    #expect(Set(o.nodes.map(\.round)).count >= 3)
    let byID = Dictionary(uniqueKeysWithValues: o.nodes.map { ($0.id, $0) })
    for s in 0..<4 {
        let mine = o.nodes.filter { $0.subtree == s }
        // A subtree's nodes descend from its own nodes only, M per round, one kept per round.
        #expect(mine.allSatisfy { n in n.parent.map { byID[$0]!.subtree == s } ?? true })
        for r in Set(mine.map(\.round)) {
            let round = mine.filter { $0.round == r }
            #expect(round.count == 2 && round.filter(\.kept).count == 1)
        }
        #expect(o.outputs.filter { $0.subtree == s }.count == 2)
    }
    checkAccounting(o)
}

@Test func bestOfNWritesNWholeSolutions() throws {
    let search = StepSearch(policy: try policy(), settings: settings(temperature: 1), scorer: scorer)
    var rng = SeededRNG(seed: 7)
    let o = try search.run(.bestOfN(n: 6), prompt: [1, 5, 6, 3], rng: &rng)
    #expect(o.outputs.count == 6 && o.nodes.count == 6)
    #expect(o.outputs.allSatisfy { $0.done && $0.stepEnds.count <= 4 && $0.parent == nil })
    // Not all the same solution at temperature 1.
    #expect(Set(o.outputs.map(\.tokens)).count > 1)
    checkAccounting(o)
}

/// Greedy steps written from a forked cache row equal those of a full forward pass over the
/// prompt and the parent's tokens, for every node of a beam search and of DVTS.
@Test func prefixSharedStepsEqualRecomputedOnes() throws {
    let model = try policy()
    let s = settings(temperature: 0)
    let search = StepSearch(policy: model, settings: s, scorer: scorer)
    let prompt: [Int32] = [1, 5, 6, 3]
    for method in [SearchMethod.beam(n: 4, m: 2), .dvts(n: 4, m: 2)] {
        var rng = SeededRNG(seed: 1)
        let o = try search.run(method, prompt: prompt, rng: &rng)
        let byID = Dictionary(uniqueKeysWithValues: o.nodes.map { ($0.id, $0) })
        #expect(o.nodes.filter { $0.parent != nil }.count >= 4, "\(method): too few expansions to compare")
        for n in o.nodes {
            var seq = prompt + (n.parent.map { byID[$0]!.tokens } ?? [])
            var step: [Int32] = []
            while true {
                try model.forward(inputs: seq, B: 1, T: seq.count)
                let row = model.logits(row: seq.count - 1)
                let t = Int32(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!)
                step.append(t)
                seq.append(t)
                if t == separator || t == eos || step.count >= s.maxStepTokens { break }
            }
            let parentCount = n.parent.map { byID[$0]!.tokens.count } ?? 0
            #expect(Array(n.tokens.dropFirst(parentCount)) == step, "\(method) node \(n.id)")
        }
    }
}

/// The KV-cached PRM (RewardScorer: forked with its search's rows, fed only the tokens a
/// candidate added) gives every node the scores a full forward pass over prompt + candidate
/// gives, in every method, and runs fewer tokens than rescoring whole candidates would.
@Test func incrementalRewardScoringEqualsWholeSequenceScoring() throws {
    let model = try policy()
    var hr = SeededRNG(seed: 3)
    let head = RewardHead(dModel: model.config.dModel, rng: &hr)
    let prm = try Transformer(config: model.config, pool: ThreadPool(threads: 1), rng: &hr)
    prm.params.load(model.params.array())
    let scorer = RewardScorer(model: prm, head: head, rows: 8, capacity: model.config.context)
    let search = StepSearch(policy: model, settings: settings(temperature: 1), scoring: scorer)
    let prompt: [Int32] = [1]
    for method in [SearchMethod.bestOfN(n: 8), .beam(n: 8, m: 2), .dvts(n: 8, m: 4)] {
        var rng = SeededRNG(seed: 21)
        let o = try search.run(method, prompt: prompt, rng: &rng)
        let reference = try prm.rewardScores(
            o.nodes.map { prompt + $0.tokens }, positions: o.nodes.map { $0.stepEnds.map { $0 + prompt.count } },
            head: head)
        for (n, want) in zip(o.nodes, reference) {
            #expect(n.scores.count == want.count)
            for (a, b) in zip(n.scores, want) {
                #expect(abs(a - b) < 1e-4, "\(String(describing: method)) node \(n.id): \(a) vs \(b)")
            }
        }
        let whole = o.nodes.reduce(0) { $0 + prompt.count + $1.tokens.count }
        #expect(o.scoredTokens > 0 && o.scoredTokens <= whole)
        if case .beam = method { #expect(o.scoredTokens < whole) }
    }
}
