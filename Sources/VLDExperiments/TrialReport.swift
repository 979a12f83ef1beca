// TrialReport.swift: report.html of one trial: what ran, the loss curves and each task's metric
// over training.

import Foundation

enum TrialReport {
    static func html(trial: Trial, results: JSONValue, metrics: [JSONValue]) -> String {
        let m = trial.manifest, body = m.body as? TrainBody
        var r = HTMLReport(
            title: "\(m.name): trial \(trial.index)",
            subtitle: "\(trial.condition), seed \(m.seed) — vld \(string(results["vldVersion"]))")
        let model = results["model"], training = results["training"], flops = results["flops"],
            timing = results["timing"]
        r.keyValues([
            (
                "model",
                "\(string(model?["arch"])) d=\(number(model?["dModel"])) L=\(number(model?["layers"])) heads=\(number(model?["heads"])) context=\(number(model?["context"])) vocab=\(number(model?["vocab"]))"
            ),
            ("schedule", "\(string(model?["schedule"])) (D=\(number(model?["D"])), D_VLD=\(number(model?["D_VLD"])))"),
            ("P_total / P_non-embedding", "\(number(model?["P_total"])) / \(number(model?["P_nonEmbedding"]))"),
            (
                "training",
                "\(number(training?["steps"])) steps, batch \(body.map { String($0.train.batch) } ?? "?"), \(number(training?["tokensSeen"])) tokens, lr \(body.map { formatNumber($0.train.lr) } ?? "?")"
            ),
            ("training FLOPs", number(flops?["train"])),
            ("eval loss", number(training?["evalLoss"])),
            (
                "wall time",
                formatDuration(value(timing?["wallSeconds"]) ?? .nan) + " on \(number(results["threads"])) threads"
            ),
        ])
        let steps = metrics.compactMap { value($0["step"]) }
        func series(_ key: String, name: String) -> ChartSeries {
            ChartSeries(
                name: name,
                points: metrics.compactMap { row in
                    guard let s = value(row["step"]), let y = value(row[key]) else { return nil }
                    return ChartPoint(x: s, y: y)
                })
        }
        if !steps.isEmpty {
            r.chart(
                LineChart(
                    title: "Loss", xLabel: "step", yLabel: "cross-entropy (nats/token)",
                    series: [series("trainLoss", name: "train"), series("evalLoss", name: "held-out")]
                ).svg(),
                caption: "Training loss is the mean over the steps since the previous evaluation.")
        }
        let keys =
            metrics.last.map { row -> [String] in
                if case let .object(f) = row { return f.map(\.0) }
                return []
            } ?? []
        let accKeys = keys.filter { $0.hasPrefix("igsm.acc.op") }
        if !accKeys.isEmpty {
            r.heading("iGSM-lite reasoning")
            r.chart(
                LineChart(
                    title: "Exact-match accuracy during training", xLabel: "step", yLabel: "accuracy",
                    series: accKeys.map { series($0, name: "op " + $0.dropFirst("igsm.acc.op".count)) }
                ).svg(),
                caption: "Greedy decoding on test-split (held-out template) problems at each operation count.")
            if case let .object(acc)? = results["tasks"]?["igsm"]?["accuracy"],
                case let .object(val)? = results["tasks"]?["igsm"]?["validity"]
            {
                let accIn = results["tasks"]?["igsm"]?["accuracyInTemplate"],
                    valIn = results["tasks"]?["igsm"]?["validityInTemplate"]
                r.table(
                    headers: ["ops", "accuracy", "valid", "accuracy, train templates", "valid, train templates"],
                    rows: acc.map { op, a in
                        [
                            op, percent(value(a)), percent(value(val.first { $0.0 == op }?.1)),
                            accIn.map { percent(value($0[op])) } ?? "—", valIn.map { percent(value($0[op])) } ?? "—",
                        ]
                    },
                    numericColumns: [0, 1, 2, 3, 4])
                r.paragraph(
                    "Accuracy: the final answer; valid: every step of the solution right (the checker). The first pair is on "
                        + "problems whose templates training never showed, the second on fresh problems from training templates "
                        + "(absent with split none).")
            }
        }
        let chainKeys = keys.filter { $0.hasPrefix("chain.acc.k") }
        if !chainKeys.isEmpty {
            r.heading("Chain reasoning")
            r.chart(
                LineChart(
                    title: "Exact-match accuracy during training", xLabel: "step", yLabel: "accuracy",
                    series: chainKeys.map { series($0, name: "k " + $0.dropFirst("chain.acc.k".count)) }
                ).svg(),
                caption: "Greedy decoding on held-out problems at each chain length k.")
            if case let .object(acc)? = results["tasks"]?["chain"]?["accuracy"] {
                let val = results["tasks"]?["chain"]?["validity"], pass = results["tasks"]?["chain"]?["sampledPass1"]
                let guess = results["tasks"]?["chain"]?["constantGuess"]
                r.table(
                    headers: ["k", "greedy accuracy", "guessing a constant", "all steps right", "sampled pass@1"],
                    rows: acc.map { k, a in
                        [
                            k, percent(value(a)), guess.map { percent(value($0[k])) } ?? "—",
                            val.map { percent(value($0[k])) } ?? "—", pass.map { percent(value($0[k])) } ?? "—",
                        ]
                    },
                    numericColumns: [0, 1, 2, 3, 4])
                r.paragraph(
                    "Guessing a constant: the accuracy of answering with the value of a constant statement picked at random, "
                        + "the floor a model reaches without binding names to their statements.")
            }
        }
        if keys.contains("world.K") {
            r.heading("World: knowledge, truthfulness, reasoning")
            r.chart(
                LineChart(
                    title: "Forced-choice scores during training", xLabel: "step", yLabel: "share of probes",
                    series: [
                        series("world.K", name: "K (facts)"), series("world.T_MC1", name: "T (MC1)"),
                        series("world.I", name: "I (misconception wins)"), series("world.R", name: "R (known parts)"),
                        series("world.R_all", name: "R (all held-out)"),
                    ] + (keys.contains("world.G") ? [series("world.G", name: "G (ref - neutral)")] : [])
                ).svg(),
                caption:
                    "specs/phase.md 5(a): each probe's answer is the model's next word restricted to its choices.")
            if case let .object(ci)? = results["tasks"]?["world"]?["ci95"] {
                r.table(
                    headers: ["score", "final", "95% interval over probes"],
                    rows: ci.map { key, v in
                        let interval: String
                        if case let .array(b) = v, b.count == 2 {
                            interval = "[\(number(b[0])), \(number(b[1]))]"
                        } else {
                            interval = "—"
                        }
                        return [key, number(results["metrics"]?[key]), interval]
                    }, numericColumns: [1])
            }
        }
        if keys.contains("bios.bitsAttributes") {
            r.heading("bioS-lite knowledge")
            r.chart(
                LineChart(
                    title: "Knowledge stored", xLabel: "step", yLabel: "bits",
                    series: [
                        series("bios.bitsAttributes", name: "attributes"),
                        series("bios.bitsClipped", name: "attributes, clipped per attribute"),
                        series("bios.bitsName", name: "names"),
                    ]
                ).svg(),
                caption: "Bits of knowledge (specs/vld.md 6.2, K2), teacher-forced over every person.")
            if case let .object(f)? = results["tasks"]?["bios"] {
                r.table(
                    headers: ["quantity", "value"],
                    rows: f.filter {
                        if case .object = $0.1 { return false }; return true
                    }
                    .map { [$0.0, number($0.1)] }, numericColumns: [1])
            }
        }
        if keys.contains("random.deltaCE") {
            r.heading("Random-token memorisation")
            r.chart(
                LineChart(
                    title: "Memorised information", xLabel: "step", yLabel: "bits",
                    series: [series("random.deltaCE", name: "ΔH_ce"), series("random.deltaEnt", name: "ΔH_ent")]
                ).svg(),
                caption:
                    "ΔH = H1 − H2 over every predicted position of every window (specs/vld.md 6.2, K1); ΔH_ce is the primary metric."
            )
            if case let .object(f)? = results["tasks"]?["random-tokens"] {
                r.table(headers: ["quantity", "value"], rows: f.map { [$0.0, number($0.1)] }, numericColumns: [1])
            }
        }
        r.heading("Manifest (resolved)")
        r.preformatted(m.json.serialized())
        return r.render()
    }

    static func value(_ v: JSONValue?) -> Double? {
        if case let .number(n)? = v { return n }
        return nil
    }

    static func number(_ v: JSONValue?) -> String {
        switch v {
        case let .number(n)?: return formatNumber(n)
        case let .string(s)?: return s
        case nil, .null?: return "—"
        case let x?: return x.serialized(pretty: false)
        }
    }

    static func string(_ v: JSONValue?) -> String {
        if case let .string(s)? = v { return s }
        return number(v)
    }

    static func percent(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "—" }
        return String(format: "%.1f%%", 100 * v)
    }
}
