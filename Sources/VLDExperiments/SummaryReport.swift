// SummaryReport.swift: report.html of a grid: conditions side by side with seed spreads.

import Foundation

enum SummaryReport {
    static func html(
        experiment: Experiment, conditions: [Summary.Condition], results: [TrialResult], vldVersion: String
    ) -> String {
        var r = HTMLReport(
            title: "\(experiment.name): summary",
            subtitle: "\(results.count) of \(experiment.trials.count) trials complete — vld \(vldVersion)")
        let seeds = Set(results.map { $0.trial.manifest.seed }).sorted()
        var facts: [(String, String)] = [
            ("grid axes", experiment.axes.isEmpty ? "none" : experiment.axes.joined(separator: ", "))
        ]
        if !experiment.stages.isEmpty {
            facts = [
                (
                    "stages",
                    experiment.stages.map { s in
                        let kind = experiment.trials[s.trials.lowerBound].manifest.kind
                        return "\(s.name) (\(kind), \(s.trials.count))"
                    }.joined(separator: " → ")
                ),
                (
                    "grid axes",
                    experiment.stages.contains { !$0.axes.isEmpty }
                        ? experiment.stages.filter { !$0.axes.isEmpty }
                            .map { "\($0.name): \($0.axes.joined(separator: ", "))" }.joined(separator: "; ") : "none"
                ),
            ]
        }
        r.keyValues(
            facts + [
                ("conditions", "\(conditions.count)"), ("seeds", seeds.map(String.init).joined(separator: ", ")),
                ("error bars", "95% bootstrap CI (≥ 3 seeds), else min–max"),
            ])
        let metricKeys: [String] = {
            var keys: [String] = []
            for c in conditions { for (k, _) in c.stats where !keys.contains(k) { keys.append(k) } }
            return keys
        }()
        let headline = metricKeys.filter(HeadlineMetrics.contains)
        func cell(_ s: MetricStats?, percent: Bool = false) -> String {
            guard let s else { return "—" }
            let f: (Double) -> String = {
                percent ? String(format: "%.1f", 100 * $0) : formatNumber($0, significant: 4)
            }
            var text = f(s.mean)
            if s.min == s.max { return text }  // the same in every seed (sizes, FLOPs): no interval to show
            if let ci = s.ci95 { text += " [\(f(ci.0)), \(f(ci.1))]" } else if s.n > 1 { text += " ± \(f(s.std))" }
            return text
        }
        r.heading("Conditions")
        let base = conditions.first { $0.label.contains("schedule=base") }
        r.table(
            headers: ["condition", "seeds", "D", "P_total", "train FLOPs"]
                + headline.map { HeadlineMetrics.isPercent($0) ? $0 + " (%)" : $0 },
            rows: conditions.map { c in
                [c.label, "\(c.trials.count)", cell(c.stat("D")), cell(c.stat("P_total")), cell(c.stat("trainFlops"))]
                    + headline.map { cell(c.stat($0), percent: HeadlineMetrics.isPercent($0)) }
            }, numericColumns: Set(1..<(5 + headline.count)))
        r.paragraph(
            "Cells are the mean over seeds, with the 95% bootstrap interval in brackets when there are 3 or more seeds (± the standard deviation with 2)."
        )

        // Accuracy against difficulty, for each reasoning task present: iGSM-lite by operation
        // count, chain by chain length.
        var firstAccuracyKey: String?
        for family in SummaryReport.accuracyFamilies {
            let accKeys = metricKeys.filter { $0.hasPrefix(family.prefix) }
                .sorted { Int($0.dropFirst(family.prefix.count)) ?? 0 < Int($1.dropFirst(family.prefix.count)) ?? 0 }
            guard let first = accKeys.first else { continue }
            if firstAccuracyKey == nil { firstAccuracyKey = first }
            func level(_ k: String) -> String { family.level + " " + k.dropFirst(family.prefix.count) }
            r.heading(family.title)
            r.chart(
                BarChart(
                    title: "Accuracy by condition and \(family.axis)", yLabel: "accuracy",
                    seriesNames: accKeys.map(level),
                    groups: conditions.map { c in
                        BarGroup(label: c.label, bars: accKeys.map { k in point(c.stat(k)) })
                    },
                    referenceLine: base.flatMap { b in b.stat(first).map { ($0.mean, "base, \(level(first))") } }
                ).svg(width: 760, height: 380),
                caption: family.caption)
            r.chart(
                LineChart(
                    title: "Accuracy against \(family.axis)", xLabel: family.axis, yLabel: "accuracy",
                    series: conditions.map { c in
                        ChartSeries(
                            name: c.label,
                            points: accKeys.compactMap { k in
                                guard let s = c.stat(k), let x = Double(k.dropFirst(family.prefix.count)) else {
                                    return nil
                                }
                                let iv = s.interval
                                return ChartPoint(x: x, y: s.mean, lo: s.n > 1 ? iv.0 : nil, hi: s.n > 1 ? iv.1 : nil)
                            })
                    }
                ).svg(width: 760, height: 380))
        }
        for (key, title, unit) in [
            ("bios.bitsPerParam", "Knowledge capacity (bioS-lite)", "bits per parameter"),
            ("random.bitsPerNonEmbParamCE", "Random-token memorisation (ΔH_ce)", "bits per non-embedding parameter"),
            ("evalLoss", "Held-out loss", "cross-entropy (nats/token)"),
        ] where metricKeys.contains(key) {
            r.heading(title)
            r.chart(
                BarChart(
                    title: title + " by condition", yLabel: unit, seriesNames: [key],
                    groups: conditions.map { BarGroup(label: $0.label, bars: [point($0.stat(key))]) },
                    referenceLine: base.flatMap { b in b.stat(key).map { ($0.mean, "base") } }
                ).svg(width: 760, height: 360))
        }
        // Mean held-out loss curve per condition.
        r.heading("Training curves")
        r.chart(
            LineChart(
                title: "Held-out loss during training (mean over seeds)", xLabel: "step",
                yLabel: "cross-entropy (nats/token)",
                series: conditions.map { c in meanCurve(c, key: "evalLoss") }
            ).svg(width: 760, height: 380))
        if let k = firstAccuracyKey {
            r.chart(
                LineChart(
                    title: "Accuracy at \(k) during training (mean over seeds)", xLabel: "step", yLabel: "accuracy",
                    series: conditions.map { c in meanCurve(c, key: k) }
                ).svg(width: 760, height: 380))
        }
        // What only some kinds have (distillation: the teacher beside its students).
        for entry in Kinds.registry {
            let mine = conditions.filter { $0.trials.first?.trial.manifest.kind == entry.name }
            if !mine.isEmpty { entry.reportSections(&r, mine) }
        }
        r.heading("Trials")
        r.table(
            headers: ["trial", "condition", "seed", "directory"],
            rows: results.map { ["\($0.trial.index)", $0.trial.condition, "\($0.trial.manifest.seed)", $0.directory] },
            numericColumns: [0, 2])
        return r.render()
    }

    /// A condition's mean and interval as text (as in the conditions table).
    static func cell(_ s: MetricStats?, percent: Bool = false) -> String {
        guard let s else { return "—" }
        let f: (Double) -> String = { percent ? String(format: "%.1f", 100 * $0) : formatNumber($0, significant: 4) }
        var text = f(s.mean)
        if s.min == s.max { return text }
        if let ci = s.ci95 { text += " [\(f(ci.0)), \(f(ci.1))]" } else if s.n > 1 { text += " ± \(f(s.std))" }
        return text
    }

    static let accuracyFamilies: [(prefix: String, title: String, level: String, axis: String, caption: String)] = [
        (
            "igsm.acc.op", "Reasoning: iGSM-lite exact-match accuracy, held-out templates", "op", "operation count",
            "Problems whose templates training never showed (with split none: fresh problems); op counts above the training maximum are out of distribution."
        ),
        (
            "igsm.accIn.op", "Reasoning: iGSM-lite exact-match accuracy, training templates", "op", "operation count",
            "Fresh problems whose templates are on the training side of the split."
        ),
        (
            "chain.acc.k", "Reasoning: chain exact-match accuracy", "k", "chain length k",
            "Greedy exact match of the answer on held-out problems; lengths above the training maxK are out of distribution."
        ),
    ]

    static func point(_ s: MetricStats?) -> ChartPoint {
        guard let s else { return ChartPoint(x: 0, y: .nan) }
        let iv = s.interval
        return ChartPoint(x: 0, y: s.mean, lo: s.n > 1 ? iv.0 : nil, hi: s.n > 1 ? iv.1 : nil)
    }

    /// The mean of `key` over a condition's trials at each logged step they share.
    static func meanCurve(_ c: Summary.Condition, key: String) -> ChartSeries {
        var sums: [Double: (Double, Int)] = [:]
        for t in c.trials {
            for row in t.metrics {
                guard case let .number(s)? = row["step"], case let .number(y)? = row[key] else { continue }
                let e = sums[s] ?? (0, 0)
                sums[s] = (e.0 + y, e.1 + 1)
            }
        }
        let n = c.trials.count
        let points = sums.filter { $0.value.1 == n }.sorted { $0.key < $1.key }.map {
            ChartPoint(x: $0.key, y: $0.value.0 / Double(n))
        }
        return ChartSeries(name: c.label, points: points)
    }
}
