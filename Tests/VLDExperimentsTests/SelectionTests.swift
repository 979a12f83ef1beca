// SelectionTests.swift: the selection rules of best-of-N (Selection.swift) on hand-made candidate
// sets (ties, candidates without an answer, none with one), the step aggregations, and pass@k
// against brute-force enumeration of every k-subset.

import Testing
@testable import VLDExperiments

@Test func selectionRulesOnHandMadeCandidates() {
    let set = [
        Candidate(answer: 3, scores: [0.9, 0.2]),
        Candidate(answer: nil, scores: [1, 1]),  // no answer: skipped by every rule
        Candidate(answer: 5, scores: [0.5, 0.6]),
        Candidate(answer: 5, scores: [0.4, 0.5]),
        Candidate(answer: 3, scores: [0.3, 0.3]),
        Candidate(answer: 1, scores: [0.95]),
    ]
    // Majority: 3 and 5 twice each; 3 occurs first.
    #expect(selectAnswer(set, rule: .majority) == 3)
    // PRM-max by the last score: 1 (0.95); by the minimum: 1 (0.95) again; by the mean: 1.
    #expect(selectAnswer(set, rule: .prmMax, aggregation: .last) == 1)
    #expect(selectAnswer(set, rule: .prmMax, aggregation: .min) == 1)
    // PRM-vote by the last score: 3 -> 0.2 + 0.3 = 0.5, 5 -> 0.6 + 0.5 = 1.1, 1 -> 0.95.
    #expect(selectAnswer(set, rule: .prmVote, aggregation: .last) == 5)
    // by the first-step-heavy product: 3 -> 0.18 + 0.09 = 0.27, 5 -> 0.30 + 0.20 = 0.50, 1 -> 0.95.
    #expect(selectAnswer(set, rule: .prmVote, aggregation: .prod) == 1)
    // Ties in PRM-max go to the first candidate.
    #expect(
        selectAnswer([Candidate(answer: 4, scores: [0.5]), Candidate(answer: 2, scores: [0.5])], rule: .prmMax) == 4)
    // A candidate without scores aggregates to -1.
    #expect(selectAnswer([Candidate(answer: 4), Candidate(answer: 2, scores: [0.1])], rule: .prmMax) == 2)
    // Nothing to choose from.
    #expect(selectAnswer([Candidate(answer: nil, scores: [0.9])], rule: .majority) == nil)
    #expect(selectAnswer([], rule: .prmVote) == nil)
    #expect(StepAggregation.mean.apply([0.2, 0.4, 0.9]) == (0.2 + 0.4 + 0.9) / 3)
    #expect(StepAggregation.min.apply([]) == -1)
}

@Test func passAtKMatchesEnumeratingEverySubset() {
    func subsets(_ n: Int, _ k: Int) -> [[Int]] {
        guard k > 0 else { return [[]] }
        guard n >= k else { return [] }
        return subsets(n - 1, k) + subsets(n - 1, k - 1).map { $0 + [n - 1] }
    }
    for n in 1...9 {
        for c in 0...n {
            for k in 1...n {
                // Samples 0..<c are right.
                let all = subsets(n, k)
                let hit = all.filter { $0.contains { $0 < c } }.count
                let brute = Double(hit) / Double(all.count)
                #expect(abs(passAtK(n: n, c: c, k: k) - brute) < 1e-12, "n \(n) c \(c) k \(k)")
            }
        }
    }
}
