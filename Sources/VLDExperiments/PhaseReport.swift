// PhaseReport.swift: report.html of a phase trial (issue 14, part 6, the dashboard's phase
// panels; specs/phase.md 5(e) 1-4 and 7), computed only from the trial's measurements: the phase
// diagram (R against T per ladder), gamma per step with its interval, dead band and N_c, loss and
// K/R/T against log N in one panel, the width normalization beside its nulls, the layer plot
// (centered and uncentered cosine, probe AUROCs) and R/T/K/I over training. Inline SVG, no scripts.

import Foundation

enum PhaseReport {
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
        var diagram = LineChart(
            title: "Truthfulness against reasoning along each ladder (points in ladder order)",
            xLabel: "R (reasoning accuracy, parts known)", yLabel: "\(truth)",
            series: a.families.map { f in
                ChartSeries(name: f.name, points: f.points.map { ChartPoint(x: $0.scores.r, y: $0.scores.t) })
            })
        diagram.logX = false
        r.chart(
            diagram,
            caption: "Each point is a ladder point (mean over its seeds); the table below gives its size and phase.")
        for f in a.families {
            r.subheading("Ladder \(f.name)")
            let rows: [[String]] = f.points.enumerated().map { j, p in
                let step = j < f.steps.count ? f.steps[j] : nil
                return [
                    num(p.order, 6), num(p.params, 6), "\(p.members.count)", num(p.evalLoss),
                    num(p.scores.k) + interval(p.intervals["K"]), num(p.scores.r) + interval(p.intervals["R"]),
                    num(p.scores.t) + interval(p.intervals["T"]), num(p.scores.i) + interval(p.intervals["I"]),
                    step.map { "\(num($0.gamma)) \(interval($0.interval)) \($0.phase.rawValue)" } ?? "",
                ]
            }
            r.table(
                headers: [
                    a.orderBy.rawValue, "params", "seeds", "eval loss", "K", "R", truth, "I",
                    "γ to the next point, phase",
                ], rows: rows, numericColumns: [0, 1, 2, 3])
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
                            label: String(format: "%.1f", -1 + (Double(i) + 0.5) / 10),
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
        var layerChart = LineChart(
            title: "Centered cos(v_R, v_T) and the uncentered cosine of mean activations, last layer",
            xLabel: "parameters",
            yLabel: "cosine", series: [])
        for f in a.families {
            let pts = f.points.map { p -> (Double, Double, Double) in
                let last = p.members.compactMap { a.checkpoints[$0].layerMeasures.last }
                return (p.params, Stats.mean(last.map(\.centered)), Stats.mean(last.map(\.uncentered)))
            }
            layerChart.series.append(
                ChartSeries(name: "\(f.name) centered", points: pts.map { ChartPoint(x: $0.0, y: $0.1) }))
            layerChart.series.append(
                ChartSeries(name: "\(f.name) uncentered", points: pts.map { ChartPoint(x: $0.0, y: $0.2) }))
        }
        layerChart.logX = true
        r.chart(layerChart)
        r.table(
            headers: [
                "ladder", "d", "seed", "layer", "centered cos", "null 95%", "uncentered cos", "AUROC facts",
                "AUROC misconceptions",
            ], rows: rows, numericColumns: [1, 2, 3, 4, 5, 6, 7, 8],
            caption:
                "Directions read at the answer word of true and false statements (residual stream after each block). Centered: cos of the two difference-of-means directions, with the 95th percentile of |cos| under shuffled labels; uncentered: cos of the two statement sets' raw mean activations. AUROC: a mass-mean truth probe fitted on facts without misconceptions, tested on held-out facts and on the truth against the misconception."
        )

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
}
