// PRMMetricsTests.swift: the PRM's step metrics (PRMMetrics.swift) on hand-computed cases: AUC with
// ties against a brute-force count over pairs, F1, first-error localisation, reliability bins.

import Testing
@testable import VLDExperiments

@Test func prmStepMetricsOnHandComputedCandidates() {
    let a = ScoredSteps(scores: [0.9, 0.8, 0.3], labels: [1, 1, 0])  // first error at 2, found at 2
    let b = ScoredSteps(scores: [0.7, 0.6], labels: [1, 1])  // no error, none found
    let c = ScoredSteps(scores: [0.4, 0.8, 0.3], labels: [1, 0, 0])  // error at 1, rejected at 0
    let d = ScoredSteps(scores: [0.8, 0.8], labels: [1, 0])  // a tie between a right and a wrong step
    let m = PRMMetrics([a, b, c, d])
    #expect(m.steps == 10 && m.candidates == 4)
    // AUC: the share of (right, wrong) pairs ordered right over wrong, ties counting half.
    let all = [a, b, c, d].flatMap { zip($0.scores, $0.labels) }
    let right = all.filter { $0.1 == 1 }.map(\.0), wrong = all.filter { $0.1 == 0 }.map(\.0)
    var won = 0.0
    for r in right { for w in wrong { won += r > w ? 1 : r == w ? 0.5 : 0 } }
    let brute = won / Double(right.count * wrong.count)
    #expect(abs(m.auc! - brute) < 1e-12, "\(m.auc!) vs \(brute)")
    // At 0.5, 7 steps are predicted right (a: 0.9, 0.8; b: 0.7, 0.6; c: 0.8; d: 0.8, 0.8), 5 of them right;
    // right steps 6 (0.4 missed).
    #expect(abs(m.precision - 5.0 / 7) < 1e-12 && abs(m.recall - 5.0 / 6) < 1e-12)
    #expect(abs(m.f1 - 2 * (5.0 / 7) * (5.0 / 6) / (5.0 / 7 + 5.0 / 6)) < 1e-12)
    // a and b localised, c (rejected a step too early) and d (never rejected) not.
    #expect(m.firstErrorAccuracy == 0.5)
    // Bins of width 0.1: [0.3, 0.3] -> 0 right; [0.4] -> 1; [0.6]; [0.7]; [0.8 x5] -> 3 of 5; [0.9].
    #expect(m.bins.map(\.count) == [2, 1, 1, 1, 4, 1])
    #expect(m.bins[4].right == 0.5)
    let ece = m.bins.reduce(0.0) { $0 + Double($1.count) * abs($1.score - $1.right) } / 10
    #expect(abs(m.ece - ece) < 1e-12)
    // Only right steps: no AUC.
    #expect(PRMMetrics([b]).auc == nil)
    // A perfect ranker.
    #expect(PRMMetrics([ScoredSteps(scores: [0.9, 0.1], labels: [1, 0])]).auc == 1)
}
