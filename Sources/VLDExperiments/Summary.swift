// Summary.swift: comparing the trials of a grid: summary.json, summary.csv and report.html.
//
// Trials are grouped by condition (their grid values other than the seed). Each metric gets the
// mean, the sample standard deviation, min and max over seeds, and with at least 3 seeds a 95%
// percentile-bootstrap interval of the mean (Efron and Tibshirani, "An Introduction to the
// Bootstrap", 1993, ch. 13; 10,000 resamples from a fixed seed, so the interval is reproducible).

import Foundation
import VLDTasks

/// A finished trial as the summary sees it.
public struct TrialResult {
    public var trial: Trial
    public var directory: String
    public var results: JSONValue
    public var metrics: [JSONValue]
    public init(trial: Trial, directory: String, results: JSONValue, metrics: [JSONValue]) {
        self.trial = trial
        self.directory = directory
        self.results = results
        self.metrics = metrics
    }

    /// Every scalar of the result worth comparing, in a stable order (the kind names them).
    var scalars: [(String, Double)] { trial.manifest.body.summaryScalars(results) }
}

/// Mean, spread and (n >= 3) a bootstrap interval of one metric over seeds.
public struct MetricStats: Equatable, Sendable {
    public var n: Int
    public var mean: Double
    public var std: Double
    public var min: Double
    public var max: Double
    public var ci95: (Double, Double)?

    public static func == (a: MetricStats, b: MetricStats) -> Bool {
        a.n == b.n && a.mean == b.mean && a.std == b.std && a.min == b.min && a.max == b.max
            && a.ci95?.0 == b.ci95?.0 && a.ci95?.1 == b.ci95?.1
    }

    public init(_ values: [Double]) {
        n = values.count
        mean = values.reduce(0, +) / Double(Swift.max(1, n))
        let m = mean
        std = n > 1 ? (values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(n - 1)).squareRoot() : 0
        min = values.min() ?? .nan
        max = values.max() ?? .nan
        ci95 = n >= 3 ? MetricStats.bootstrap(values) : nil
    }

    /// 95% percentile-bootstrap interval of the mean.
    static func bootstrap(_ values: [Double], resamples: Int = 10_000) -> (Double, Double) {
        var rng = TaskRNG(seed: 0x5EED_B007)
        let n = values.count
        var means = [Double](repeating: 0, count: resamples)
        for r in 0..<resamples {
            var s = 0.0
            for _ in 0..<n { s += values[rng.int(n)] }
            means[r] = s / Double(n)
        }
        means.sort()
        return (means[Int(0.025 * Double(resamples))], means[Int(0.975 * Double(resamples)) - 1])
    }

    var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("n", JSONValue(n)), ("mean", JSONValue(mean)), ("std", JSONValue(std)),
            ("min", JSONValue(min)), ("max", JSONValue(max)),
        ]
        if let ci95 { f.append(("ci95", .array([JSONValue(ci95.0), JSONValue(ci95.1)]))) }
        return .object(f)
    }

    /// Error-bar extent for plots: the bootstrap interval, else min...max.
    var interval: (Double, Double) { ci95 ?? (min, max) }
}

public enum Summary {
    /// The comparison's files, in the directory `write` is given.
    public static let jsonFile = "summary.json", csvFile = "summary.csv", reportFile = "report.html"

    public struct Condition {
        public var label: String
        public var trials: [TrialResult]
        public var stats: [(String, MetricStats)]
        public func stat(_ key: String) -> MetricStats? { stats.first { $0.0 == key }?.1 }
    }

    public static func conditions(_ results: [TrialResult]) -> [Condition] {
        var order: [String] = []
        var groups: [String: [TrialResult]] = [:]
        for r in results {
            let c = r.trial.condition
            if groups[c] == nil { order.append(c) }
            groups[c, default: []].append(r)
        }
        return order.map { label in
            let trials = groups[label]!
            var keys: [String] = []
            for t in trials { for (k, _) in t.scalars where !keys.contains(k) { keys.append(k) } }
            let stats = keys.map { key in
                (key, MetricStats(trials.compactMap { t in t.scalars.first { $0.0 == key }?.1 }))
            }
            return Condition(label: label, trials: trials, stats: stats)
        }
    }

    /// Writes summary.json, summary.csv and report.html into `dir` (each atomically).
    public static func write(experiment: Experiment, results: [TrialResult], to dir: URL, vldVersion: String) throws {
        let conds = conditions(results)
        let json = JSONValue.object([
            ("name", .string(experiment.name)), ("vldVersion", .string(vldVersion)),
            ("axes", .array(experiment.axes.map { .string($0) })),
            ("trialsCompleted", JSONValue(results.count)), ("trialsTotal", JSONValue(experiment.trials.count)),
            (
                "conditions",
                .array(
                    conds.map { c in
                        .object([
                            ("condition", .string(c.label)),
                            ("seeds", .array(c.trials.map { JSONValue(Int($0.trial.manifest.seed)) })),
                            ("metrics", .object(c.stats.map { ($0.0, $0.1.json) })),
                        ])
                    })
            ),
            (
                "trials",
                .array(
                    results.map { r in
                        .object([
                            ("trial", JSONValue(r.trial.index)), ("condition", .string(r.trial.condition)),
                            ("seed", JSONValue(Int(r.trial.manifest.seed))), ("directory", .string(r.directory)),
                            ("metrics", .object(r.scalars.map { ($0.0, JSONValue($0.1)) })),
                        ])
                    })
            ),
        ])
        try writeAtomically(json.serialized() + "\n", to: dir.appendingPathComponent(jsonFile))
        try writeAtomically(csv(results), to: dir.appendingPathComponent(csvFile))
        try writeAtomically(
            SummaryReport.html(experiment: experiment, conditions: conds, results: results, vldVersion: vldVersion),
            to: dir.appendingPathComponent(reportFile))
    }

    /// One row per trial: trial, condition, seed, then every metric (RFC 4180 quoting).
    static func csv(_ results: [TrialResult]) -> String {
        var keys: [String] = []
        for r in results { for (k, _) in r.scalars where !keys.contains(k) { keys.append(k) } }
        func field(_ s: String) -> String {
            s.contains(where: { ",\"\n".contains($0) })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var lines = [(["trial", "condition", "seed", "schedule"] + keys).map(field).joined(separator: ",")]
        for r in results {
            let s = r.scalars
            let cells =
                [
                    String(r.trial.index), r.trial.condition, String(r.trial.manifest.seed),
                    (r.trial.manifest.body as? TrainBody)?.model.schedule.description ?? "",
                ]
                + keys.map { k in s.first { $0.0 == k }.map { "\($0.1)" } ?? "" }
            lines.append(cells.map(field).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// The metrics that summaries lead with (the comparison table of `vldctl run` and the quickstart,
/// and the headline table of the summary report), and which of them are shares shown as percent.
public enum HeadlineMetrics {
    public static func contains(_ key: String) -> Bool {
        key == "evalLoss" || key == "distill.klTeacherStudent" || key.hasPrefix("igsm.acc.")
            || key.hasPrefix("igsm.accIn.") || key.hasPrefix("chain.acc.")
            || key == "chain.guess.k1" || key == "bios.bitsPerParam" || key == "bios.bitsAttributes"
            || key == "random.deltaCE" || key == "random.bitsPerNonEmbParamCE"
    }

    /// Shares shown as percent: accuracies and validities of iGSM per op count (held-out and
    /// in-template), of the chain per k (greedy, sampled), and the chain's guessing floor.
    public static func isPercent(_ key: String) -> Bool {
        [
            "igsm.acc.", "igsm.accIn.", "igsm.valid.", "igsm.validIn.", "chain.acc.", "chain.valid.", "chain.sampled.",
            "chain.guess.",
        ]
        .contains { key.hasPrefix($0) }
    }
}
