// PhaseStats.swift: the estimators of the capability phase (issue 14, part 4; specs/phase.md 5(a)
// "Coupling estimators" and "Phase classification", 5(c) "width normalization"), as functions of
// per-item probe outcomes so that each is tested on tables with a known answer (PhaseStatsTests).
//
// A ladder is an ordered list of points (one model size each); each point holds one outcome table
// per seed. Every score is a mean over items; intervals come from a paired bootstrap that draws
// the items once per replicate for every point (all points answer the same probes) and the seeds
// once per replicate (seed s of every point, when every point has the same seeds), so that the
// differences between neighbouring points, which gamma divides, keep their pairing.

import Foundation
import VLDTasks

/// One checkpoint's outcomes on the world's probes, item by item (WorldEvaluation's scoring).
public struct ProbeOutcomes: Equatable, Sendable {
    /// 1 or 0 per knowledge probe.
    public var knowledge: [Double]
    /// Per truth probe: the truth ranks first (MC1); the truth's probability share (MC2); the
    /// misconception ranks first (I); the truth outranks the misconception (pairwise, chance 1/2).
    public var truthMC1: [Double]
    public var truthMC2: [Double]
    public var imitation: [Double]
    public var truthPair: [Double]
    /// Per reasoning probe: 1 or 0, nil when the model gets one of its two parts wrong.
    public var reasoning: [Double?]

    public init(
        knowledge: [Double], truthMC1: [Double], truthMC2: [Double], imitation: [Double], truthPair: [Double],
        reasoning: [Double?]
    ) {
        self.knowledge = knowledge
        self.truthMC1 = truthMC1
        self.truthMC2 = truthMC2
        self.imitation = imitation
        self.truthPair = truthPair
        self.reasoning = reasoning
    }
}

/// Which truthfulness score the coupling estimators use.
public enum TruthScore: String, Sendable, CaseIterable {
    case mc1 = "T_MC1", mc2 = "T_MC2"
}

/// K, R, T (and I) of one model or one bootstrap replicate.
public struct Scores: Equatable, Sendable {
    public var k: Double, r: Double, t: Double, i: Double
}

/// The phase of one ladder step (specs/phase.md 5(a)).
public enum Phase: String, Sendable {
    case tax = "TAX", bonus = "BONUS", transition = "TRANSITION"
    /// R moved less than epsilon: gamma is not defined.
    case undefined = "UNDEFINED"
}

enum PhaseStats {
    /// The scores of outcome tables averaged over `seeds`, on the items `k`, `t`, `r` (indices,
    /// repeats allowed: a bootstrap draw). R counts only the items whose parts a seed's model knows.
    static func scores(
        _ tables: [ProbeOutcomes], seeds: [Int], k: [Int], t: [Int], r: [Int], truth: TruthScore
    ) -> Scores {
        var out = Scores(k: 0, r: 0, t: 0, i: 0)
        var rSeeds = 0
        for s in seeds {
            let o = tables[s]
            out.k += k.isEmpty ? .nan : k.reduce(0) { $0 + o.knowledge[$1] } / Double(k.count)
            let tv = truth == .mc1 ? o.truthMC1 : o.truthMC2
            out.t += t.isEmpty ? .nan : t.reduce(0) { $0 + tv[$1] } / Double(t.count)
            out.i += t.isEmpty ? .nan : t.reduce(0) { $0 + o.imitation[$1] } / Double(t.count)
            let known = r.compactMap { o.reasoning[$0] }
            if !known.isEmpty {
                out.r += known.reduce(0, +) / Double(known.count)
                rSeeds += 1
            }
        }
        let n = Double(max(1, seeds.count))
        return Scores(k: out.k / n, r: rSeeds > 0 ? out.r / Double(rSeeds) : .nan, t: out.t / n, i: out.i / n)
    }

    /// Point estimates of a ladder (every item, every seed).
    static func pointScores(_ ladder: [[ProbeOutcomes]], truth: TruthScore) -> [Scores] {
        ladder.map { tables in
            let o = tables[0]
            return scores(
                tables, seeds: Array(tables.indices), k: Array(o.knowledge.indices), t: Array(o.truthMC1.indices),
                r: Array(o.reasoning.indices), truth: truth)
        }
    }

    /// `resamples` bootstrap replicates of a ladder's scores, paired across points (see the file
    /// comment). Deterministic in `seed`.
    static func bootstrap(_ ladder: [[ProbeOutcomes]], truth: TruthScore, resamples: Int, seed: UInt64) -> [[Scores]] {
        guard let first = ladder.first?.first else { return [] }
        let nk = first.knowledge.count, nt = first.truthMC1.count, nr = first.reasoning.count
        let seedCounts = ladder.map(\.count)
        let paired = Set(seedCounts).count == 1
        var rng = TaskRNG(seed: seed, stream: 0xB0075, index: 0)
        func draw(_ n: Int) -> [Int] { (0..<n).map { _ in rng.int(n) } }
        var out: [[Scores]] = []
        out.reserveCapacity(resamples)
        for _ in 0..<resamples {
            let k = draw(nk), t = draw(nt), r = draw(nr)
            let shared = paired ? draw(seedCounts[0]) : []
            out.append(
                ladder.map { tables in
                    scores(tables, seeds: paired ? shared : draw(tables.count), k: k, t: t, r: r, truth: truth)
                })
        }
        return out
    }

    /// Local gamma between two points: dT / dR, nil when |dR| < epsilon (specs: 0.5 pp).
    static func gamma(_ a: Scores, _ b: Scores, epsilon: Double) -> Double? {
        let dr = b.r - a.r
        guard dr.isFinite, (b.t - a.t).isFinite, abs(dr) >= epsilon else { return nil }
        return (b.t - a.t) / dr
    }

    /// TAX: gamma < -band and its interval below 0; BONUS: gamma > band and its interval above 0;
    /// TRANSITION otherwise (inside the dead band, or an interval that spans 0 or is missing).
    static func classify(_ gamma: Double?, interval: (Double, Double)?, band: Double) -> Phase {
        guard let g = gamma else { return .undefined }
        if let ci = interval {
            if g < -band && ci.1 < 0 { return .tax }
            if g > band && ci.0 > 0 { return .bonus }
        }
        return .transition
    }

    /// The phase of a replicate's step, by the dead band alone (a replicate has no interval).
    static func classifyPoint(_ gamma: Double?, band: Double) -> Phase {
        guard let g = gamma else { return .undefined }
        return g < -band ? .tax : (g > band ? .bonus : .transition)
    }

    /// N_c: the index of the ladder point where the first BONUS step after a TAX step starts
    /// (step j runs from point j to j + 1); nil when no TAX is followed by a BONUS.
    static func criticalPoint(_ phases: [Phase]) -> Int? {
        guard let tax = phases.firstIndex(of: .tax) else { return nil }
        return phases[(tax + 1)...].firstIndex(of: .bonus)
    }

    /// The least-squares parabola T = a x^2 + b x + c over x = log10 N, and its vertex 10^(-b/2a)
    /// (the paper's estimate of N_c; a > 0 is a dip and recovery). Nil with fewer than 3 distinct x.
    static func quadraticVertex(logN x: [Double], t: [Double]) -> (a: Double, b: Double, c: Double, vertex: Double?)? {
        guard Set(x).count >= 3, let f = Stats.leastSquares(t, columns: [x.map { $0 * $0 }, x]) else { return nil }
        let (c, a, b) = (f[0], f[1], f[2])
        return (a, b, c, a != 0 ? pow(10, -b / (2 * a)) : nil)
    }

    /// The paper's width normalization next to its null controls (specs/phase.md 5(c)).
    struct WidthNormalization: Equatable {
        /// r(R, T) and r(R d_ref / d, T d_ref / d) with d_ref the smallest width.
        var rawR: Double
        var normalizedR: Double
        /// The same transform applied after shuffling T across models: the 95th percentile of its
        /// r over `permutations` shuffles, and the shuffles' r values.
        var nullR95: Double
        var nullRs: [Double]
        /// The transform applied to constant scores (every model R = T = the mean): the r that
        /// the division by width produces on its own.
        var constantR: Double
        /// r(R, T | log d).
        var partialR: Double
        /// normalizedR > nullR95: otherwise the normalization says nothing about the models.
        var informative: Bool
    }

    static func widthNormalization(
        r: [Double], t: [Double], widths: [Double], permutations: Int, seed: UInt64
    ) -> WidthNormalization {
        let ref = widths.min() ?? 1
        func transform(_ v: [Double]) -> [Double] { v.indices.map { v[$0] * ref / widths[$0] } }
        let raw = Stats.pearson(r, t)
        let normalized = Stats.pearson(transform(r), transform(t))
        var rng = TaskRNG(seed: seed, stream: 0x5117F, index: 0)
        let rt = transform(r)
        var nulls: [Double] = []
        nulls.reserveCapacity(permutations)
        for _ in 0..<permutations {
            var shuffled = t
            shuffled.shuffle(using: &rng)
            nulls.append(Stats.pearson(rt, transform(shuffled)))
        }
        let sorted = nulls.filter { $0.isFinite }.sorted()
        let p95 = Stats.quantile(sorted: sorted, 0.95)
        let cr = Stats.mean(r), ct = Stats.mean(t)
        let constant = Stats.pearson(
            transform([Double](repeating: cr, count: r.count)), transform([Double](repeating: ct, count: t.count)))
        let partial = Stats.partialR(r, t, given: [widths.map { log($0) }])
        return WidthNormalization(
            rawR: raw, normalizedR: normalized, nullR95: p95, nullRs: nulls, constantR: constant, partialR: partial,
            informative: normalized.isFinite && p95.isFinite && normalized > p95)
    }

    /// A mass-mean probe (Marks & Tegmark, "The Geometry of Truth"): the direction from the
    /// negatives' mean to the positives' mean of `fit`, and the AUROC of its projections on `test`.
    static func massMeanAUROC(
        fitPositive: [[Double]], fitNegative: [[Double]], testPositive: [[Double]], testNegative: [[Double]]
    ) -> Double? {
        guard !fitPositive.isEmpty, !fitNegative.isEmpty else { return nil }
        let direction = zip(meanVector(fitPositive), meanVector(fitNegative)).map { $0 - $1 }
        func project(_ h: [Double]) -> Double { zip(h, direction).reduce(0) { $0 + $1.0 * $1.1 } }
        return Stats.auc(
            scores: testPositive.map(project) + testNegative.map(project),
            labels: testPositive.map { _ in true } + testNegative.map { _ in false })
    }

    static func meanVector(_ rows: [[Double]]) -> [Double] {
        guard let width = rows.first?.count else { return [] }
        var m = [Double](repeating: 0, count: width)
        for row in rows { for j in 0..<width { m[j] += row[j] } }
        return m.map { $0 / Double(rows.count) }
    }

    /// The coupling of two directions read at one layer (specs/phase.md 5(a).3): `centered` is
    /// cos(v_R, v_T) with v = mean(positives) - mean(negatives), which no shared mean direction can
    /// inflate; `uncentered` is the cosine of the two sets' raw mean activations (what a coupling
    /// read from mean activations measures: mostly the direction every activation shares).
    static func coupling(
        reasoningPositive: [[Double]], reasoningNegative: [[Double]], truthPositive: [[Double]],
        truthNegative: [[Double]]
    ) -> (centered: Double, uncentered: Double) {
        let vR = zip(meanVector(reasoningPositive), meanVector(reasoningNegative)).map { $0 - $1 }
        let vT = zip(meanVector(truthPositive), meanVector(truthNegative)).map { $0 - $1 }
        let centered = Stats.cosine(vR, vT)
        let uncentered = Stats.cosine(
            meanVector(reasoningPositive + reasoningNegative), meanVector(truthPositive + truthNegative))
        return (centered, uncentered)
    }
}
