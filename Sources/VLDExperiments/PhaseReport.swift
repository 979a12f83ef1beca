// PhaseReport.swift: report.html of a phase trial (issue 14, part 6, the dashboard's phase
// panels; specs/phase.md 5(e) 1-4 and 7), computed only from the trial's measurements: the phase
// diagram (R against T per ladder), gamma per step with its interval, dead band and N_c, loss and
// K/R/T against log N in one panel, the width normalization beside its nulls, the layer plot
// (centered and uncentered cosine, probe AUROCs) and R/T/K/I over training. Inline SVG, no scripts.

import Foundation

public enum PhaseReport {
    static func num(_ v: Double?, _ digits: Int = 3) -> String {
        guard let v, v.isFinite else { return "—" }
        return formatNumber(v, significant: digits)
    }

    static func interval(_ p: (Double, Double)?) -> String {
        guard let p else { return "" }
        return " [\(num(p.0)), \(num(p.1))]"
    }

    static func html(trial: Trial, results: JSONValue, analysis a: PhaseAnalysis) -> String {
        let m = trial.manifest
        var r = HTMLReport(
            title: "\(m.name): phase trial \(trial.index)",
            subtitle: "\(trial.condition), seed \(m.seed) — vld \(results["vldVersion"]?.stringValue ?? "?")")
        let truth = a.spec.truth.rawValue
        r.keyValues([
            ("checkpoints", "\(a.checkpoints.count) in \(a.families.count) ladder\(a.families.count == 1 ? "" : "s")"),
            ("ladder order", a.orderBy.rawValue), ("truthfulness score", truth),
            ("gamma", "ΔT / ΔR between neighbouring points; undefined where |ΔR| < \(num(a.spec.epsilon * 100)) pp"),
            (
                "phase",
                "TAX γ < −\(num(a.spec.band)), BONUS γ > +\(num(a.spec.band)), each with a 95% interval excluding 0; TRANSITION otherwise"
            ),
            ("intervals", "\(a.spec.resamples) bootstrap replicates over probe items and seeds (paired across points)"),
        ])

        r.heading("Phase diagram")
        r.chart(
            phaseDiagram(a),
            caption:
                "One line per ladder in ladder order (mean over seeds); each point is coloured by the phase of the step that reaches it and labelled with its parameter count. The tables below give the intervals."
        )
        for f in a.families {
            r.subheading("Ladder \(f.name)")
            let rows: [[String]] = f.points.enumerated().map { j, p in
                let step = j < f.steps.count ? f.steps[j] : nil
                return [
                    num(p.order, 6), size(p.params), "\(p.members.count)", num(p.evalLoss),
                    num(p.scores.k) + interval(p.intervals["K"]), num(p.scores.r) + interval(p.intervals["R"]),
                    num(p.scores.t) + interval(p.intervals["T"]), num(p.scores.i) + interval(p.intervals["I"]),
                    num(p.g, 2) + " / " + num(p.gProbe, 2),
                    step.map { "\(num($0.gamma)) \(interval($0.interval)) \($0.phase.rawValue)" } ?? "",
                ]
            }
            r.table(
                headers: [
                    a.orderBy.rawValue, "params", "seeds", "eval loss", "K", "R", truth, "I", "G / G_probe",
                    "γ to the next point, phase",
                ], rows: rows, numericColumns: [0, 1, 2, 3],
                caption:
                    "G: T_MC1 after <src=ref> minus without (knows vs says, with source tags); G_probe: the mass-mean truth probe's AUROC on the misconception items minus the model's pairwise truth accuracy (— where the probe does not separate held-out facts, AUROC below 0.6)."
            )
            let dist = f.criticalDistribution.sorted { $0.key < $1.key }.map { k, n in
                (k < 0 ? "none" : "point \(k + 1) (\(num(f.points[k].params, 6)) params)") + ": "
                    + num(100 * Double(n) / Double(max(1, a.spec.resamples))) + "%"
            }
            var text =
                "N_c (first BONUS step after a TAX step): "
                + (f.critical.map { "point \($0 + 1), \(num(f.points[$0].params, 6)) parameters" } ?? "none")
                + ". Bootstrap distribution: \(dist.joined(separator: ", "))."
            if let q = f.quadratic {
                text +=
                    " Quadratic fit of \(truth) on log10 N (the paper's estimate): a = \(num(q.a)), "
                    + (q.a > 0 ? "a dip with its vertex" : "a peak, not a dip, at") + " N = \(num(q.vertex, 3))."
            }
            r.paragraph(text)
        }

        r.heading("Gamma along the ladder")
        var gamma = LineChart(
            title: "Local γ per step (at the step's upper point), 95% interval; dead band ±\(num(a.spec.band))",
            xLabel: "parameters (upper point of the step)", yLabel: "γ = ΔT / ΔR",
            series: a.families.map { f in
                ChartSeries(
                    name: f.name,
                    points: f.steps.map { s in
                        ChartPoint(
                            x: f.points[s.to].params, y: s.gamma ?? .nan, lo: s.interval?.0, hi: s.interval?.1)
                    })
            })
        if let xs = a.families.first.map({ $0.points.map(\.params) }), let lo = xs.first, let hi = xs.last {
            gamma.series.append(
                ChartSeries(
                    name: "+band", points: [ChartPoint(x: lo, y: a.spec.band), ChartPoint(x: hi, y: a.spec.band)]))
            gamma.series.append(
                ChartSeries(
                    name: "−band", points: [ChartPoint(x: lo, y: -a.spec.band), ChartPoint(x: hi, y: -a.spec.band)]))
        }
        // N_c of each ladder as a vertical line over the gammas' range.
        let ys =
            a.families.flatMap { f in f.steps.flatMap { [$0.gamma, $0.interval?.0, $0.interval?.1].compactMap { $0 } } }
            .filter(\.isFinite) + [a.spec.band, -a.spec.band]
        for f in a.families {
            guard let c = f.critical, let lo = ys.min(), let hi = ys.max() else { continue }
            gamma.series.append(
                ChartSeries(
                    name: "N_c \(f.name)",
                    points: [ChartPoint(x: f.points[c].params, y: lo), ChartPoint(x: f.points[c].params, y: hi)]))
        }
        gamma.logX = true
        r.chart(gamma)

        r.heading("Loss is smooth; is coupling?")
        var scores = LineChart(
            title: "K, R, \(truth), I and held-out loss against parameters", xLabel: "parameters",
            yLabel: "score (loss ÷ its maximum)", series: [])
        let maxLoss = a.families.flatMap { $0.points.compactMap(\.evalLoss) }.max() ?? 1
        for f in a.families {
            func s(_ name: String, _ v: (PhaseAnalysis.Point) -> Double?) -> ChartSeries {
                ChartSeries(
                    name: "\(f.name) \(name)", points: f.points.map { ChartPoint(x: $0.params, y: v($0) ?? .nan) })
            }
            scores.series += [
                s("K") { $0.scores.k }, s("R") { $0.scores.r }, s(truth) { $0.scores.t }, s("I") { $0.scores.i },
                s("loss") { $0.evalLoss.map { $0 / maxLoss } },
            ]
        }
        scores.logX = true
        r.chart(scores)

        r.heading("Correlation across the panel, and width normalization against its nulls")
        var pairs: [(String, String)] = [
            ("r(R, \(truth)) over \(a.checkpoints.count) checkpoints", num(a.panelR) + interval(a.panelInterval)),
            ("partial r given log N and log d", num(a.partialR)), ("r within ladders (demeaned)", num(a.withinFamilyR)),
        ]
        if let w = a.width {
            pairs += [
                ("width-normalized r (scores × d_ref / d)", num(w.normalizedR)),
                ("95th percentile of its permutation null (\(w.nullRs.count) shuffles)", num(w.nullR95)),
                ("r of constant scores after the transform", num(w.constantR)),
                ("partial r given log d", num(w.partialR)),
                ("verdict", w.informative ? "informative" : "uninformative (the null reaches it)"),
            ]
            var bins = [Int](repeating: 0, count: 20)
            for x in w.nullRs where x.isFinite { bins[min(19, max(0, Int((x + 1) / 2 * 20)))] += 1 }
            r.keyValues(pairs)
            r.chart(
                BarChart(
                    title: "Width-normalized r under the permutation null (shuffles per bin of r)", yLabel: "shuffles",
                    seriesNames: ["permutation null"],
                    groups: bins.enumerated().map { i, n in
                        BarGroup(
                            label: String(format: "%.2f", -1 + (Double(i) + 0.5) / 10),
                            bars: [ChartPoint(x: 0, y: Double(n))])
                    }, xLabel: "r (bin centre)"),
                caption:
                    "The observed width-normalized r is \(num(w.normalizedR)); the null's 95th percentile \(num(w.nullR95))."
            )
        } else {
            r.keyValues(pairs)
        }

        r.heading("Layers: the reasoning and truth directions")
        var rows: [[String]] = []
        for c in a.checkpoints {
            for l in c.layerMeasures {
                rows.append([
                    c.family, "\(c.dModel)", c.seed.map(String.init) ?? "—", "\(l.v)", num(l.centered),
                    num(l.null95), num(l.uncentered), num(l.aucKnowledge), num(l.aucMisconception),
                ])
            }
        }
        for f in a.families {
            let D = f.points.flatMap { p in p.members.map { a.checkpoints[$0].layerMeasures.count } }.max() ?? 0
            func series(_ name: String, _ v: @escaping (PhaseAnalysis.LayerMeasure) -> Double?) -> [ChartSeries] {
                (0..<D).map { l in
                    ChartSeries(
                        name: "layer \(l) \(name)",
                        points: f.points.map { p in
                            let x = p.members.compactMap { m -> Double? in
                                let ms = a.checkpoints[m].layerMeasures
                                return l < ms.count ? v(ms[l]) : nil
                            }.filter(\.isFinite)
                            return ChartPoint(x: p.params, y: x.isEmpty ? .nan : Stats.mean(x))
                        })
                }
            }
            var cos = LineChart(
                title: "\(f.name): cos(v_R, v_T) per layer, centered and uncentered", xLabel: "parameters",
                yLabel: "cosine",
                series: series("centered") { $0.centered } + series("uncentered") { $0.uncentered }
                    + series("null 95%") { $0.null95 })
            cos.logX = true
            r.chart(cos)
            var auc = LineChart(
                title: "\(f.name): mass-mean truth probe AUROC per layer", xLabel: "parameters", yLabel: "AUROC",
                series: series("held-out facts") { $0.aucKnowledge } + series("misconceptions") { $0.aucMisconception })
            auc.logX = true
            r.chart(auc)
        }
        r.paragraph(
            "Directions are read at the answer word of true and false statements (the residual stream after each block). Centered: the cosine of the two difference-of-means directions, beside the 95th percentile of its absolute value under shuffled labels; uncentered: the cosine of the two statement sets' raw mean activations. AUROC: a mass-mean truth probe fitted on facts without misconceptions, tested on held-out facts and on the truth against the misconception. Every checkpoint's values per layer are in results.json (checkpoints[].layerMeasures)."
        )

        let students = a.families.filter { f in
            f.points.contains { p in p.members.contains { a.checkpoints[$0].distill != nil } }
        }
        if !students.isEmpty {
            r.heading("Distilled students")
            var rows: [[String]] = []
            for f in students {
                for (j, p) in f.points.enumerated() {
                    let d = p.members.compactMap { a.checkpoints[$0].distill }.first
                    let loss =
                        d.map { cfg -> String in
                            guard case let .object(fields) = cfg else { return "?" }
                            return fields.filter { $0.0 != "cacheTeacher" }
                                .map { "\($0.0) \($0.1.serialized(pretty: false))" }.joined(separator: ", ")
                        } ?? "—"
                    rows.append([
                        f.name, loss, size(p.params), num(p.scores.k), num(p.scores.r), num(p.scores.t),
                        num(p.gProbe, 2), j > 0 ? "\(num(f.steps[j - 1].gamma)) \(f.steps[j - 1].phase.rawValue)" : "—",
                        num(p.klToTeacher), p.tokens.map { num($0 / p.params, 3) } ?? "—",
                    ])
                }
            }
            r.table(
                headers: [
                    "ladder", "loss", "params", "K", "R", truth, "G_probe", "γ from the previous size", "KL to teacher",
                    "tokens / param",
                ], rows: rows, numericColumns: [2, 3, 4, 5, 6, 8, 9],
                caption: "KL(teacher ‖ student) per next-word prediction on 16 held-out documents.")
        }
        if let steering = a.steering {
            r.heading("Steering along the truth direction")
            let models = steering["models"]?.arrayValue ?? []
            // Models of one size (its seeds) are averaged; the band is their range.
            func line(_ name: String, _ v: (JSONValue) -> Double?) -> ChartSeries {
                var bySize: [Double: [Double]] = [:]
                for m in models {
                    guard let n = m["params"]?.doubleValue, let y = v(m), y.isFinite else { continue }
                    bySize[n, default: []].append(y)
                }
                return ChartSeries(
                    name: name,
                    points: bySize.keys.sorted().map { n in
                        let ys = bySize[n]!
                        return ChartPoint(
                            x: n, y: Stats.mean(ys), lo: ys.count > 1 ? ys.min() : nil,
                            hi: ys.count > 1 ? ys.max() : nil)
                    })
            }
            var effects = LineChart(
                title: "Best steering (chosen on dev) on test, beside a random direction of the same size",
                xLabel: "parameters", yLabel: "change (test)",
                series: [
                    line("ΔT, truth direction") { $0["best"]?["test"]?["deltaT"]?.doubleValue },
                    line("ΔT, random direction") { $0["best"]?["T-random"]?["deltaT"]?.doubleValue },
                    line("ΔT, shuffled labels") { $0["best"]?["T-shuffled"]?["deltaT"]?.doubleValue },
                    line("ΔR, truth direction") { $0["best"]?["test"]?["deltaR"]?.doubleValue },
                    line("ΔK, truth direction") { $0["best"]?["test"]?["deltaK"]?.doubleValue },
                ])
            effects.logX = true
            r.chart(effects)
            var cross = LineChart(
                title: "Cross-effects: C_TR (steer T, effect on R) and C_RT (steer R, effect on T)",
                xLabel: "parameters", yLabel: "∂S/∂α",
                series: [
                    line("C_TR") { $0["C"]?["T"]?["R"]?.doubleValue },
                    line("C_RT") { $0["C"]?["R"]?["T"]?.doubleValue },
                    line("C_TT") { $0["C"]?["T"]?["T"]?.doubleValue },
                ])
            cross.logX = true
            r.chart(
                cross,
                caption:
                    "Means over the models of each size (bands: their range). Antagonism is C_TR < 0 or C_RT < 0. Heatmaps per model follow."
            )
            for m in models { SteerReport.modelSections(&r, model: m) }
        }

        r.heading("Over training")
        for f in a.families {
            var chart = LineChart(
                title: "\(f.name): K, R, \(truth) and I over training (mean over seeds, per width)", xLabel: "step",
                yLabel: "score", series: [])
            for p in f.points {
                let traces = p.members.map { a.checkpoints[$0].traces }
                guard let steps = traces.first?.map(\.step), !steps.isEmpty else { continue }
                func series(_ name: String, _ v: (PhaseAnalysis.Trace) -> Double) -> ChartSeries {
                    ChartSeries(
                        name: "\(num(p.order, 6)) \(name)",
                        points: steps.indices.map { i in
                            ChartPoint(
                                x: Double(steps[i]), y: Stats.mean(traces.compactMap { i < $0.count ? v($0[i]) : nil }))
                        })
                }
                chart.series += [
                    series("R") { $0.r }, series(truth) { a.spec.truth == .mc1 ? $0.t1 : $0.t2 }, series("I") { $0.i },
                ]
            }
            r.chart(chart)
        }
        return r.render()
    }
    static let phaseColors: [Phase: String] = [
        .tax: "#c0392b", .bonus: "#1e8449", .transition: "#7f8c8d", .undefined: "#bdc3c7",
    ]

    static func size(_ n: Double) -> String {
        n >= 1e6 ? "\(num(n / 1e6, 3))M" : (n >= 1e3 ? "\(num(n / 1e3, 3))k" : num(n, 3))
    }

    /// R against T per ladder (the paper's Fig. 1a analogue): points coloured by the phase of the
    /// step into them, labelled by size.
    static func phaseDiagram(_ a: PhaseAnalysis) -> String {
        let W = 760.0, H = 460.0, left = 64.0, right = 180.0, top = 34.0, bottom = 52.0
        let pts = a.families.flatMap { $0.points.map(\.scores) }.filter { $0.r.isFinite && $0.t.isFinite }
        let rs = pts.map(\.r), ts = pts.map(\.t)
        let (xa, xb) = ChartAxis.widen(max(0, (rs.min() ?? 0) - 0.02), min(1, (rs.max() ?? 1) + 0.02))
        let (ya, yb) = ChartAxis.widen((ts.min() ?? 0) - 0.01, (ts.max() ?? 1) + 0.01)
        let xTicks = ChartAxis.niceTicks(xa, xb), yTicks = ChartAxis.niceTicks(ya, yb)
        let x0 = xTicks.first ?? xa, x1 = xTicks.last ?? xb, y0 = yTicks.first ?? ya, y1 = yTicks.last ?? yb
        func px(_ v: Double) -> Double { left + (v - x0) / max(x1 - x0, 1e-9) * (W - left - right) }
        func py(_ v: Double) -> Double { H - bottom - (v - y0) / max(y1 - y0, 1e-9) * (H - top - bottom) }
        var svg = SVGWriter(width: W, height: H, title: "phase diagram")
        svg.text(
            left, 20, "Truthfulness (\(a.spec.truth.rawValue)) against reasoning (R) along each ladder", size: 14,
            weight: "bold")
        for t in xTicks {
            svg.line(px(t), top, px(t), H - bottom, stroke: "#eeeeee")
            svg.text(px(t), H - bottom + 16, num(t, 2), size: 11, anchor: .middle)
        }
        for t in yTicks {
            svg.line(left, py(t), W - right, py(t), stroke: "#eeeeee")
            svg.text(left - 6, py(t), num(t, 2), size: 11, anchor: .end, vcenter: true)
        }
        svg.line(left, H - bottom, W - right, H - bottom, stroke: "#555555")
        svg.line(left, top, left, H - bottom, stroke: "#555555")
        svg.text((left + W - right) / 2, H - 12, "R (reasoning accuracy, parts known)", anchor: .middle)
        svg.text(16, (top + H - bottom) / 2, a.spec.truth.rawValue, anchor: .middle, rotate: true)
        for (i, f) in a.families.enumerated() {
            let color = ChartPalette.color(i)
            let p = f.points.filter { $0.scores.r.isFinite && $0.scores.t.isFinite }
            for j in p.indices.dropFirst() {
                svg.line(
                    px(p[j - 1].scores.r), py(p[j - 1].scores.t), px(p[j].scores.r), py(p[j].scores.t), stroke: color,
                    width: 1.5, dash: ChartPalette.dash(i))
            }
            for (j, point) in f.points.enumerated() where point.scores.r.isFinite && point.scores.t.isFinite {
                let phase = j == 0 ? nil : f.steps[j - 1].phase
                let fill = phase.map { phaseColors[$0]! } ?? "#ffffff"
                svg.raw(
                    "<circle cx=\"\(svgCoord(px(point.scores.r)))\" cy=\"\(svgCoord(py(point.scores.t)))\" r=\"5\" fill=\"\(fill)\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                )
                svg.text(px(point.scores.r) + 7, py(point.scores.t) - 7, size(point.params), size: 10, halo: true)
            }
            // Legend: the ladder's line.
            let ly = top + 10 + Double(i) * 18
            svg.line(W - right + 14, ly, W - right + 38, ly, stroke: color, width: 2, dash: ChartPalette.dash(i))
            svg.text(W - right + 44, ly, f.name, size: 12, vcenter: true)
        }
        var ly = top + 10 + Double(a.families.count) * 18 + 12
        for (phase, label) in [
            (Phase.tax, "TAX"), (.bonus, "BONUS"), (.transition, "TRANSITION"), (.undefined, "undefined"),
        ] {
            svg.raw(
                "<circle cx=\"\(svgCoord(W - right + 26))\" cy=\"\(svgCoord(ly))\" r=\"5\" fill=\"\(phaseColors[phase]!)\"/>\n"
            )
            svg.text(W - right + 44, ly, label, size: 12, vcenter: true)
            ly += 18
        }
        svg.raw(
            "<circle cx=\"\(svgCoord(W - right + 26))\" cy=\"\(svgCoord(ly))\" r=\"5\" fill=\"#ffffff\" stroke=\"#555\"/>\n"
        )
        svg.text(W - right + 44, ly, "first point", size: 12, vcenter: true)
        return svg.finish()
    }
}

extension PhaseReport {
    /// The tables `vldctl results` prints for a phase or steer trial, read from its results.json:
    /// per ladder its points with gamma and phase, the panel's correlations and the width
    /// normalization's verdict; per steered model its best setting beside the random direction.
    public static func textTables(_ results: JSONValue) -> [(title: String, headers: [String], rows: [[String]])] {
        var out: [(String, [String], [[String]])] = []
        func n(_ v: JSONValue?) -> String { num(v?.doubleValue) }
        if case let .object(families)? = results["families"] {
            for (name, f) in families {
                let points = f["points"]?.arrayValue ?? [], steps = f["steps"]?.arrayValue ?? []
                let rows: [[String]] = points.enumerated().map { j, p in
                    let s = j < steps.count ? steps[j] : nil
                    return [
                        n(p["order"]), n(p["params"]), n(p["K"]), n(p["R"]), n(p["T"]), n(p["I"]),
                        s.map {
                            "\(n($0["gamma"])) [\(n($0["ci95"]?.arrayValue?.first)), \(n($0["ci95"]?.arrayValue?.last))]"
                        }
                            ?? "",
                        s?["phase"]?.stringValue ?? "",
                    ]
                }
                let nc = f["N_c"]?.doubleValue.map { "N_c \(num($0, 6)) parameters" } ?? "no N_c"
                out.append(
                    (
                        "ladder \(name) (\(nc))", ["order", "params", "K", "R", "T", "I", "gamma to next", "phase"],
                        rows
                    ))
            }
            let panel = results["panel"], w = panel?["widthNormalization"]
            out.append(
                (
                    "panel", ["measure", "value"],
                    [
                        ["r(R, T)", n(panel?["r"])], ["partial r | log N, log d", n(panel?["partialRGivenLogNLogD"])],
                        ["r within ladders", n(panel?["withinFamilyR"])], ["width-normalized r", n(w?["normalizedR"])],
                        ["its permutation null, 95th percentile", n(w?["nullR95"])],
                        ["verdict", w?["informative"]?.boolValue == true ? "informative" : "uninformative"],
                    ]
                ))
        }
        let models =
            results["kind"] == .string("steer")
            ? results["models"]?.arrayValue : results["steering"]?["models"]?.arrayValue
        if let models, !models.isEmpty {
            out.append(
                (
                    "steering along the truth direction (best on dev, reported on test)",
                    ["model", "d", "layer", "alpha", "dT", "dT random", "dR", "dK", "KL", "C_TR", "C_RT"],
                    models.map { m in
                        let b = m["best"]
                        return [
                            m["ref"]?.stringValue ?? "?", n(m["dModel"]), n(b?["layer"]), n(b?["alpha"]),
                            n(b?["test"]?["deltaT"]), n(b?["T-random"]?["deltaT"]), n(b?["test"]?["deltaR"]),
                            n(b?["test"]?["deltaK"]), n(b?["test"]?["kl"]), n(m["C"]?["T"]?["R"]),
                            n(m["C"]?["R"]?["T"]),
                        ]
                    }
                ))
        }
        return out
    }
}
