// PhaseStatsTests.swift: each phase estimator on tables whose answer is known (issue 14, "Tests"):
// gamma's sign and phase on planted ladders, Pearson and partial r, the width normalization's null
// flagging random scores, N_c of a planted quadratic, the centered against the uncentered cosine on
// planted directions, and the mass-mean probe on separated clusters.

import Foundation
import Testing
import VLDTasks
@testable import VLDExperiments

/// A model whose items score `k`, `t`, `r` on average: 200 items each, 1 for the first share and
/// 0 after (every seed the same, up to `jitter` items).
private func table(k: Double, t: Double, r: Double, items: Int = 200, jitter: Int = 0) -> ProbeOutcomes {
    func ones(_ p: Double) -> [Double] {
        let n = min(items, max(0, Int((p * Double(items)).rounded()) + jitter))
        return (0..<items).map { $0 < n ? 1 : 0 }
    }
    let tv = ones(t)
    return ProbeOutcomes(
        knowledge: ones(k), truthMC1: tv, truthMC2: tv, imitation: tv.map { 1 - $0 }, truthPair: tv,
        reasoning: ones(r).map { Optional($0) })
}

@Test func statsKnownAnswers() throws {
    #expect(Stats.auc(scores: [0.1, 0.4, 0.35, 0.8], labels: [false, true, false, true]) == 1)
    #expect(Stats.auc(scores: [1, 1, 1, 1], labels: [false, true, false, true]) == 0.5)
    #expect(Stats.auc(scores: [1, 2], labels: [true, true]) == nil)
    #expect(abs(Stats.pearson([1, 2, 3, 4], [2, 4, 6, 8]) - 1) < 1e-12)
    #expect(abs(Stats.pearson([1, 2, 3, 4], [8, 6, 4, 2]) + 1) < 1e-12)
    #expect(Stats.pearson([1, 2, 3], [5, 5, 5]).isNaN)
    // x and y both follow z; given z they are independent: raw r high, partial r near 0.
    var rng = TaskRNG(seed: 7)
    let z = (0..<400).map { _ in rng.unit() * 10 }
    let x = z.map { $0 + rng.unit() - 0.5 }, y = z.map { $0 + rng.unit() - 0.5 }
    #expect(Stats.pearson(x, y) > 0.95)
    #expect(abs(Stats.partialR(x, y, given: [z])) < 0.15)
    // Too few distinct rows for the covariates: no partial r (it would be +-1 whatever the data).
    #expect(
        Stats.partialR([1, 2, 3, 4, 1, 2], [4, 1, 3, 2, 4, 1], given: [[1, 2, 3, 5, 1, 2], [0, 1, 1, 0, 0, 1]]).isNaN)
    // Two groups with opposite within-group slopes around shifted means: the pooled r is set
    // by the means, the within-group r by the slopes.
    let gx: [Double] = [0, 1, 2, 10, 11, 12], gy: [Double] = [2, 1, 0, 12, 11, 10]
    #expect(Stats.pearson(gx, gy) > 0.9)
    #expect(abs(Stats.withinGroupR(gx, gy, groups: [0, 0, 0, 1, 1, 1]) + 1) < 1e-12)
    let fit = try #require(Stats.leastSquares([1, 3, 5, 7], columns: [[0, 1, 2, 3]]))
    #expect(abs(fit[0] - 1) < 1e-9 && abs(fit[1] - 2) < 1e-9)
}

@Test func gammaSignAndPhaseOnPlantedLadders() throws {
    // R rises 0.2 per point; T falls 0.1 per point, then rises 0.1: TAX, TAX, BONUS, BONUS.
    let rs = [0.2, 0.4, 0.6, 0.8, 0.95], ts = [0.6, 0.5, 0.4, 0.5, 0.6]
    let ladder = zip(rs, ts).map { r, t in (0..<3).map { s in table(k: 0.9, t: t, r: r, jitter: s) } }
    let points = PhaseStats.pointScores(ladder, truth: .mc1)
    let reps = PhaseStats.bootstrap(ladder, truth: .mc1, resamples: 400, seed: 1)
    var phases: [Phase] = []
    for j in 0..<(ladder.count - 1) {
        let g = try #require(PhaseStats.gamma(points[j], points[j + 1], epsilon: 0.005))
        let ci = try #require(Stats.interval95(reps.map { PhaseStats.gamma($0[j], $0[j + 1], epsilon: 0.005) ?? .nan }))
        #expect(ci.0 <= g && g <= ci.1)
        phases.append(PhaseStats.classify(g, interval: ci, band: 0.1))
    }
    #expect(phases == [.tax, .tax, .bonus, .bonus])
    #expect(PhaseStats.criticalPoint(phases) == 2)
    #expect(PhaseStats.criticalPoint([.bonus, .tax, .transition]) == nil)
    // R that does not move: gamma is undefined, not huge.
    #expect(PhaseStats.gamma(points[0], Scores(k: 0.9, r: points[0].r + 0.001, t: 0.1, i: 0), epsilon: 0.005) == nil)
    // Inside the dead band, or an interval spanning 0: TRANSITION.
    #expect(PhaseStats.classify(0.05, interval: (0.01, 0.09), band: 0.1) == .transition)
    #expect(PhaseStats.classify(-0.5, interval: (-0.9, 0.2), band: 0.1) == .transition)
    #expect(PhaseStats.classify(nil, interval: nil, band: 0.1) == .undefined)
}

@Test func reasoningCountsOnlyItemsWhosePartsAreKnown() {
    let o = ProbeOutcomes(
        knowledge: [1], truthMC1: [0], truthMC2: [0.2], imitation: [1], truthPair: [0], reasoning: [1, nil, 0, nil])
    let s = PhaseStats.pointScores([[o]], truth: .mc2)[0]
    #expect(s.r == 0.5 && s.t == 0.2 && s.i == 1)
}

@Test func widthNormalizationIsFlaggedOnRandomScores() {
    // Scores with no relation to each other or to width: the division by width alone makes them
    // correlate; the permutation null reaches the same r, so the result is flagged.
    var rng = TaskRNG(seed: 3)
    let widths: [Double] = [16, 32, 64, 128, 256].flatMap { [$0, $0, $0] }
    let r = widths.map { _ in 0.3 + 0.4 * rng.unit() }, t = widths.map { _ in 0.3 + 0.4 * rng.unit() }
    let w = PhaseStats.widthNormalization(r: r, t: t, widths: widths, permutations: 2000, seed: 9)
    #expect(w.normalizedR > 0.8, "dividing by width correlates anything: \(w.normalizedR)")
    #expect(w.nullR95 > 0.8)
    #expect(!w.informative)
    #expect(abs(w.constantR - 1) < 1e-9, "constant scores give r = 1 after the transform")
    #expect(w.nullRs.count == 2000)
    // A real relation survives its null: T = R exactly.
    let strong = PhaseStats.widthNormalization(r: r, t: r, widths: widths, permutations: 2000, seed: 9)
    #expect(strong.informative && abs(strong.rawR - 1) < 1e-12)
}

@Test func quadraticVertexOfAPlantedDip() throws {
    // T = (log10 N - 5)^2 / 10 + 0.2 over N = 10^3 ... 10^7: the vertex is N = 10^5, a > 0.
    let x: [Double] = [3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7]
    let fit = try #require(PhaseStats.quadraticVertex(logN: x, t: x.map { ($0 - 5) * ($0 - 5) / 10 + 0.2 }))
    #expect(fit.a > 0)
    #expect(abs(try #require(fit.vertex) / 1e5 - 1) < 1e-6)
    #expect(PhaseStats.quadraticVertex(logN: [1, 1, 2], t: [0, 1, 2]) == nil)
}

@Test func centeredCosineIgnoresTheSharedMeanDirection() {
    // Every activation carries a large shared mean (+50 on axis 0); truth separates on axis 1,
    // reasoning on axis 2: orthogonal directions (centered 0), raw means nearly parallel.
    var rng = TaskRNG(seed: 5)
    func cluster(_ axis: Int, _ sign: Double, _ n: Int = 100) -> [[Double]] {
        (0..<n).map { _ in
            var h = (0..<8).map { _ in rng.unit() - 0.5 }
            h[0] += 50
            h[axis] += sign * 2
            return h
        }
    }
    let c = PhaseStats.coupling(
        reasoningPositive: cluster(2, 1), reasoningNegative: cluster(2, -1), truthPositive: cluster(1, 1),
        truthNegative: cluster(1, -1))
    #expect(abs(c.centered) < 0.15)
    #expect(c.uncentered > 0.99)
    // Planted parallel directions: centered near 1.
    let p = PhaseStats.coupling(
        reasoningPositive: cluster(1, 1), reasoningNegative: cluster(1, -1), truthPositive: cluster(1, 1),
        truthNegative: cluster(1, -1))
    #expect(p.centered > 0.95)
}

@Test func massMeanProbeSeparatesPlantedClusters() throws {
    var rng = TaskRNG(seed: 11)
    func cluster(_ shift: Double, _ n: Int) -> [[Double]] {
        (0..<n).map { _ in (0..<6).map { j in rng.unit() - 0.5 + (j == 3 ? shift : 0) } }
    }
    let auc = try #require(
        PhaseStats.massMeanAUROC(
            fitPositive: cluster(2, 50), fitNegative: cluster(-2, 50), testPositive: cluster(2, 40),
            testNegative: cluster(-2, 40)))
    #expect(auc == 1)
    let none = try #require(
        PhaseStats.massMeanAUROC(
            fitPositive: cluster(2, 50), fitNegative: cluster(-2, 50), testPositive: cluster(0, 200),
            testNegative: cluster(0, 200)))
    #expect(abs(none - 0.5) < 0.1)
}

@Test func anAnalysisOfPlantedRecordsFindsItsCriticalPointAndDrawsIt() throws {
    // Four widths, two seeds: R rises, T falls then rises: TAX, TAX, BONUS; N_c at the third point.
    let rs = [0.2, 0.45, 0.7, 0.95], ts = [0.6, 0.45, 0.3, 0.5]
    var records: [JSONValue] = []
    for (j, d) in [16, 32, 64, 128].enumerated() {
        for seed in 1...2 {
            let o = table(k: 0.9, t: ts[j], r: rs[j], jitter: seed - 1)
            func list(_ a: [Double]) -> JSONValue { .array(a.map { JSONValue($0) }) }
            records.append(
                .object([
                    ("family", .string("w")), ("index", JSONValue(records.count)),
                    ("ref", .string("@w/\(records.count)")),
                    ("seed", JSONValue(seed)), ("dModel", JSONValue(d)), ("layers", JSONValue(2)),
                    ("params", JSONValue(d * d * 30)),
                    (
                        "outcomes",
                        .object([
                            ("knowledge", list(o.knowledge)), ("truthMC1", list(o.truthMC1)),
                            ("truthMC2", list(o.truthMC2)),
                            ("imitation", list(o.imitation)), ("truthPair", list(o.truthPair)),
                            ("reasoning", .array(o.reasoning.map { JSONValue($0!) })),
                            ("reasoningAll", list(o.reasoning.map { $0! })),
                            ("truthRef", .array([])),
                        ])
                    ),
                ]))
        }
    }
    var spec = PhaseSpec()
    spec.resamples = 300
    spec.permutations = 500
    let body = PhaseBody(
        ladders: [PhaseBody.Family(name: "w", refs: [])], orderBy: .dModel,
        tasks: [.world(WorldConfig(), weight: 1, evalItems: 10)], phase: spec)
    let analysis = try PhaseAnalysis(records: records, body: body)
    let results = analysis.results()
    #expect(
        results["families"]?["w"]?["steps"]?.arrayValue?.map { $0["phase"]?.stringValue } == ["TAX", "TAX", "BONUS"])
    #expect(results["families"]?["w"]?["N_cPoint"] == .number(2))
    #expect(results["families"]?["w"]?["N_c"] == .number(64 * 64 * 30))
    #expect(results["families"]?["w"]?["quadratic"]?["shape"] == .string("dip then recovery"))
    let e = try Experiment.parse(
        Data(
            #"{"name": "p", "kind": "phase", "ladders": {"w": ["/a", "/b", "/c"]}, "task": {"type": "world"}}"#.utf8),
        cores: 2)
    let html = PhaseReport.html(trial: e.trials[0], results: results, analysis: analysis)
    #expect(html.contains("N_c w") && html.contains("TAX") && html.contains("BONUS"))
    #expect(!html.contains("<script"))
}
