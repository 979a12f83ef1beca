// TTSReport.swift: report.html of a tts trial (accuracy against N per method, overall and per
// difficulty bin; accuracy against FLOPs per problem with the greedy point; the paired
// comparisons; what each strategy costs) and the tts section of a summary report.

import Foundation

public enum TTSReport {
    static func pct(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "—" }
        return formatNumber(100 * v, significant: 3)
    }

    /// "mean [lo, hi]" in percent.
    static func cell(_ v: JSONValue?) -> String {
        guard let m = v?["mean"]?.doubleValue, m.isFinite else { return "—" }
        guard let lo = v?["lo"]?.doubleValue, let hi = v?["hi"]?.doubleValue, lo.isFinite, hi.isFinite else {
            return pct(m)
        }
        return "\(pct(m)) [\(pct(lo)), \(pct(hi))]"
    }

    static func keys(_ v: JSONValue?) -> [String] {
        if case let .object(f)? = v { return f.map(\.0) }
        return []
    }

    /// Accuracy against N: one series per strategy for `rule` (bon's majority added), from an
    /// accuracy object of results.json.
    static func accuracyChart(_ acc: JSONValue?, rule: String, title: String) -> LineChart {
        var series: [ChartSeries] = []
        for label in keys(acc) where label != "greedy" {
            for r in (label == "bon" ? ["majority", rule] : [rule]) {
                guard case let .object(ns)? = acc?[label]?[r] else { continue }
                series.append(
                    ChartSeries(
                        name: "\(label) \(r)",
                        points: ns.compactMap { n, v in
                            guard let x = Double(n), let y = v["mean"]?.doubleValue else { return nil }
                            return ChartPoint(
                                x: x, y: 100 * y, lo: v["lo"]?.doubleValue.map { 100 * $0 },
                                hi: v["hi"]?.doubleValue.map { 100 * $0 })
                        }))
            }
        }
        if let g = acc?["greedy"]?["mean"]?.doubleValue, let ns = series.first?.points.map(\.x), !ns.isEmpty {
            series.append(ChartSeries(name: "greedy", points: ns.map { ChartPoint(x: $0, y: 100 * g) }))
        }
        var chart = LineChart(title: title, xLabel: "N (generations)", yLabel: "accuracy (%)", series: series)
        chart.logX = true
        return chart
    }

    static func trialHTML(trial: Trial, results: JSONValue) -> String {
        let m = trial.manifest
        var r = HTMLReport(
            title: "\(m.name): trial \(trial.index)",
            subtitle: "\(trial.condition), seed \(m.seed) — vld \(results["vldVersion"]?.stringValue ?? "?")")
        func model(_ v: JSONValue?) -> String {
            guard let v, v != .null else { return "none" }
            return
                "\(v["checkpoint"]?.stringValue ?? "?"): \(v["arch"]?.stringValue ?? "?") d=\(formatNumber(v["dModel"]?.doubleValue ?? .nan)) "
                + "L=\(formatNumber(v["layers"]?.doubleValue ?? .nan)) schedule \(v["schedule"]?.stringValue ?? "?"), "
                + "P_total \(formatNumber(v["P_total"]?.doubleValue ?? .nan))"
        }
        let agg = results["search"]?["aggregation"]?.stringValue ?? "last"
        r.keyValues([
            ("policy", model(results["policy"])), ("PRM", model(results["prm"])),
            ("problems", formatNumber(results["problems"]?.doubleValue ?? .nan)),
            (
                "search",
                "temperature \(formatNumber(results["search"]?["temperature"]?.doubleValue ?? .nan)), at most "
                    + "\(formatNumber(results["search"]?["maxRounds"]?.doubleValue ?? .nan)) steps of "
                    + "\(formatNumber(results["search"]?["maxStepTokens"]?.doubleValue ?? .nan)) tokens, beams ranked by \(agg)"
            ),
            ("FLOPs (all problems)", formatNumber(results["flops"]?["total"]?.doubleValue ?? .nan, significant: 3)),
            ("wall time", formatDuration(results["timing"]?["wallSeconds"]?.doubleValue ?? .nan)),
        ])
        let acc = results["accuracy"]
        let hasPRM = results["prm"] != nil && results["prm"] != .null
        let rule = hasPRM ? "prm_vote.\(agg)" : "majority"
        r.heading("Accuracy against N")
        r.chart(
            accuracyChart(acc, rule: rule, title: "All problems (\(rule); bands: 95% bootstrap over problems)"),
            caption:
                "Each strategy's accuracy at N generations; best-of-N's majority vote and the greedy solution for reference."
        )
        var oracleBins: [(String, JSONValue)] = []
        if case let .object(f)? = results["byBin"]?["oracle"] { oracleBins = f }
        for (name, v) in oracleBins {
            let count = formatNumber(v["problems"]?.doubleValue ?? 0)
            r.chart(
                accuracyChart(v, rule: rule, title: "Oracle bin \(name) (\(count) problems)"), width: 480, height: 300)
        }
        r.paragraph(
            "Bins: the policy's pass@1 on its difficulty samples (easy ≥ 50%, medium 10–50%, hard < 10%), "
                + "Liu et al. 2025's thresholds. results.json has the same tables for the bins the PRM predicts.")
        // Accuracy against FLOPs per problem.
        var flopSeries: [ChartSeries] = []
        for label in keys(acc) where label != "greedy" {
            guard case let .object(ns)? = acc?[label]?[rule] else { continue }
            flopSeries.append(
                ChartSeries(
                    name: label,
                    points: ns.compactMap { n, v in
                        guard let y = v["mean"]?.doubleValue, let c = results["cost"]?[label]?[n],
                            let p = c["policyFlops"]?.doubleValue
                        else { return nil }
                        return ChartPoint(x: p + (c["prmFlops"]?.doubleValue ?? 0), y: 100 * y)
                    }))
        }
        if let g = acc?["greedy"]?["mean"]?.doubleValue, let f = results["cost"]?["greedy"]?["policyFlops"]?.doubleValue
        {
            flopSeries.append(ChartSeries(name: "greedy", points: [ChartPoint(x: f, y: 100 * g)]))
        }
        var flopChart = LineChart(
            title: "Accuracy against inference FLOPs per problem (policy + PRM)", xLabel: "FLOPs per problem",
            yLabel: "accuracy (%)", series: flopSeries)
        flopChart.logX = true
        r.chart(flopChart, caption: "Each point is one N; pruned branches and the PRM's forward passes are counted.")
        // The tables.
        r.heading("Accuracy (%), 95% bootstrap intervals over problems")
        let ns = { () -> [String] in
            if case let .object(f)? = acc?["bon"]?["majority"] { return f.map(\.0) }
            return []
        }()
        var rows: [[String]] = []
        if acc?["greedy"] != nil { rows.append(["greedy", ""] + ns.map { _ in cell(acc?["greedy"]) }) }
        for label in keys(acc) where label != "greedy" {
            for ruleKey in keys(acc?[label]) {
                rows.append([label, ruleKey] + ns.map { cell(acc?[label]?[ruleKey]?[$0]) })
            }
        }
        r.table(
            headers: ["strategy", "rule"] + ns.map { "N=\($0)" }, rows: rows, numericColumns: Set(2..<(2 + ns.count)))
        if case let .array(list)? = results["comparisons"], !list.isEmpty {
            r.heading("Paired differences (percentage points)")
            r.table(
                headers: ["a", "b", "N", "all", "easy", "medium", "hard"],
                rows: list.map { c in
                    func d(_ bin: String) -> String {
                        guard let x = c[bin]?["diff"]?.doubleValue, x.isFinite else { return "—" }
                        let lo = c[bin]?["lo"]?.doubleValue ?? .nan, hi = c[bin]?["hi"]?.doubleValue ?? .nan
                        return "\(pct(x)) [\(pct(lo)), \(pct(hi))]"
                    }
                    return [
                        c["a"]?.stringValue ?? "", c["b"]?.stringValue ?? "",
                        formatNumber(c["n"]?.doubleValue ?? .nan), d("all"), d("easy"), d("medium"), d("hard"),
                    ]
                }, numericColumns: Set(2...6),
                caption: "a − b on the same problems; the interval is a 95% bootstrap over problems.")
        }
        for bins in ["predicted", "oracle"] {
            guard let t = selectorTable(results, bins: bins) else { continue }
            r.heading("Compute-optimal selection (\(bins) bins)")
            r.table(
                headers: t.headers, rows: t.rows, numericColumns: [0, 4, 6, 7, 8, 9, 10],
                caption: "Per budget of N generations, the strategy chosen for each \(bins) "
                    + "difficulty bin (fitted on all problems), and accuracies (%) with 95% bootstrap intervals: the "
                    + "selector and the best single strategy by 2-fold cross-validation, best-of-N majority and PRM-vote "
                    + "at N, and Liu et al.'s rule (best-of-N on easy problems, beam search on the others). The "
                    + "last column adds the difficulty samples the bins cost.")
        }
        r.heading("Compute per problem")
        var costRows: [[String]] = []
        for label in keys(results["cost"]) {
            let c = results["cost"]?[label]
            if c?["policyFlops"] != nil {
                costRows.append([
                    label, "", formatNumber(c?["generations"]?.doubleValue ?? .nan),
                    formatNumber(c?["policyTokens"]?.doubleValue ?? .nan, significant: 4),
                    formatNumber(c?["policyFlops"]?.doubleValue ?? .nan, significant: 3),
                    formatNumber(c?["prmFlops"]?.doubleValue ?? .nan, significant: 3),
                ])
                continue
            }
            for n in keys(c) {
                let e = c?[n]
                costRows.append([
                    label, n, formatNumber(e?["generations"]?.doubleValue ?? .nan),
                    formatNumber(e?["policyTokens"]?.doubleValue ?? .nan, significant: 4),
                    formatNumber(e?["policyFlops"]?.doubleValue ?? .nan, significant: 3),
                    formatNumber(e?["prmFlops"]?.doubleValue ?? .nan, significant: 3),
                ])
            }
        }
        r.table(
            headers: ["strategy", "N", "generations", "policy tokens", "policy FLOPs", "PRM FLOPs"], rows: costRows,
            numericColumns: Set(1...5),
            caption:
                "Means per problem (specs/tts.md 8.5): the prompt's prefill, every node's added tokens after its cached prefix, pruned branches included."
        )
        return r.render()
    }

    /// The compute-optimal selector's table (results.json `selector`): per budget, the strategy
    /// deployed per bin, and the cross-validated accuracies of the selector and its baselines.
    public static func selectorTable(_ results: JSONValue, bins: String) -> (headers: [String], rows: [[String]])? {
        guard case let .array(budgets)? = results["selector"]?[bins]?["budgets"], !budgets.isEmpty else { return nil }
        let headers = [
            "budget N", "easy", "medium", "hard", "selector (CV)", "best single", "single (CV)", "majority",
            "bon vote", "Liu's rule", "generations +difficulty",
        ]
        let rows = budgets.map { b -> [String] in
            [
                formatNumber(b["budget"]?.doubleValue ?? .nan), b["table"]?["easy"]?.stringValue ?? "—",
                b["table"]?["medium"]?.stringValue ?? "—", b["table"]?["hard"]?.stringValue ?? "—",
                cell(b["selectorAccuracy"]), b["single"]?.stringValue ?? "—", cell(b["singleAccuracy"]),
                cell(b["majorityAccuracy"]), cell(b["bonVoteAccuracy"]), cell(b["liuRuleAccuracy"]),
                formatNumber(b["selectorGenerations"]?["withDifficulty"]?.doubleValue ?? .nan),
            ]
        }
        return (headers, rows)
    }

    /// The summary report's section: each condition's headline accuracies.
    static func summarySections(_ r: inout HTMLReport, conditions: [Summary.Condition]) {
        r.heading("Test-time scaling")
        let keys = conditions.flatMap { $0.stats.map(\.0) }.filter { $0.hasPrefix("tts.") }
        var unique: [String] = []
        for k in keys where !unique.contains(k) { unique.append(k) }
        let largest = unique.compactMap { k in k.split(separator: ".").last.flatMap { Int($0.dropFirst()) } }.max() ?? 0
        let shown = unique.filter {
            !$0.hasPrefix("tts.flops.") && ($0 == "tts.greedy" || $0.hasSuffix(".N\(largest)"))
        }
        r.table(
            headers: ["condition"] + shown.map { String($0.dropFirst(4)) },
            rows: conditions.map { c in [c.label] + shown.map { SummaryReport.cell(c.stat($0), percent: true) } },
            numericColumns: Set(1...max(1, shown.count)),
            caption: "Accuracy at the largest N (each trial's report has every N, bin and interval).")
        // Accuracy against inference FLOPs per problem: each condition's best-of-N over N (PRM-vote
        // at `last` where there is a PRM, else majority) and its greedy point.
        var series: [ChartSeries] = []
        for c in conditions {
            let labels = Set(
                c.stats.map(\.0).filter { $0.hasPrefix("tts.flops.") && $0 != "tts.flops.greedy" }
                    .compactMap { $0.dropFirst("tts.flops.".count).split(separator: ".").first.map(String.init) }
            ).sorted()
            // Best-of-N only here (every trial's report has its searches), so the chart stays legible.
            for label in labels where label == "bon" {
                let rule = c.stat("tts.\(label).prm_vote.last.N1") != nil ? "prm_vote.last" : "majority"
                var points: [ChartPoint] = []
                var n = 1
                while n <= 4096 {
                    if let f = c.stat("tts.flops.\(label).N\(n)")?.mean,
                        let a = c.stat("tts.\(label).\(rule).N\(n)")?.mean
                    {
                        points.append(ChartPoint(x: f, y: 100 * a))
                    }
                    n *= 2
                }
                if !points.isEmpty { series.append(ChartSeries(name: "\(c.label): \(label) \(rule)", points: points)) }
            }
            if let f = c.stat("tts.flops.greedy")?.mean, let a = c.stat("tts.greedy")?.mean {
                series.append(ChartSeries(name: "\(c.label): greedy", points: [ChartPoint(x: f, y: 100 * a)]))
            }
        }
        if !series.isEmpty {
            var chart = LineChart(
                title: "Accuracy against inference FLOPs per problem", xLabel: "FLOPs per problem (policy + PRM)",
                yLabel: "accuracy (%)", series: series)
            chart.logX = true
            r.chart(
                chart.svg(width: 900, height: 480),
                caption:
                    "Each line is one condition's best-of-N over N = 1, 2, 4, ...; single points are greedy decoding. "
                    + "Training costs (pretraining, the PRM's training and labelling) are in each trial's endToEnd.")
        }
    }
}
