// PRMMetrics.swift: how well a process reward model's step scores match the oracle's step labels
// (specs/tts.md 8.6, Evaluation): step-level AUC and F1, first-error localisation (ProcessBench,
// Zheng et al. 2024: the earliest step the PRM rejects against the earliest wrong step, "none" when
// every step is right), and calibration in reliability bins with the expected calibration error.

/// One scored candidate: the PRM's scores and the oracle's labels (0 or 1) at the same positions.
public struct ScoredSteps: Equatable, Sendable {
    public var scores: [Double]
    public var labels: [Double]
    public init(scores: [Double], labels: [Double]) {
        precondition(scores.count == labels.count, "one label per score")
        self.scores = scores
        self.labels = labels
    }
}

public struct PRMMetrics: Equatable, Sendable {
    /// The probability that a right step scores above a wrong one (ties count half); nil without
    /// both kinds of step.
    public var auc: Double?
    /// F1 of "right step" at `threshold`, precision and recall with it.
    public var f1: Double, precision: Double, recall: Double
    /// Share of candidates whose first step scored below the threshold is their first wrong step
    /// (or that have neither).
    public var firstErrorAccuracy: Double
    /// Reliability bins over [0, 1]: (mean score, share labelled right, steps) per non-empty bin.
    public var bins: [(score: Double, right: Double, count: Int)]
    /// Expected calibration error: the steps' mean |score - right| gap over the bins.
    public var ece: Double
    public var steps: Int, candidates: Int

    public static func == (a: PRMMetrics, b: PRMMetrics) -> Bool {
        a.auc == b.auc && a.f1 == b.f1 && a.firstErrorAccuracy == b.firstErrorAccuracy && a.ece == b.ece
            && a.bins.map { [$0.score, $0.right, Double($0.count)] }
                == b.bins.map { [$0.score, $0.right, Double($0.count)] }
    }

    public init(_ candidates: [ScoredSteps], threshold: Double = 0.5, binCount: Int = 10) {
        let pairs = candidates.flatMap { zip($0.scores, $0.labels).map { (s: $0, right: $1 >= 0.5) } }
        steps = pairs.count
        self.candidates = candidates.count
        let positives = Double(pairs.filter(\.right).count)
        auc = Stats.auc(scores: pairs.map(\.s), labels: pairs.map(\.right))
        let tp = Double(pairs.filter { $0.right && $0.s >= threshold }.count)
        let predicted = Double(pairs.filter { $0.s >= threshold }.count)
        precision = predicted > 0 ? tp / predicted : 0
        recall = positives > 0 ? tp / positives : 0
        f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
        let located = candidates.filter { c in
            c.scores.firstIndex { $0 < threshold } == c.labels.firstIndex { $0 < 0.5 }
        }.count
        firstErrorAccuracy = candidates.isEmpty ? 0 : Double(located) / Double(candidates.count)
        var sums: [(score: Double, right: Double, count: Int)] = Array(repeating: (0, 0, 0), count: binCount)
        for p in pairs {
            let b = min(binCount - 1, max(0, Int(p.s * Double(binCount))))
            sums[b].score += p.s
            sums[b].right += p.right ? 1 : 0
            sums[b].count += 1
        }
        bins = sums.filter { $0.count > 0 }.map { ($0.score / Double($0.count), $0.right / Double($0.count), $0.count) }
        ece =
            pairs.isEmpty
            ? 0 : bins.reduce(0) { $0 + Double($1.count) * abs($1.score - $1.right) } / Double(pairs.count)
    }
}
