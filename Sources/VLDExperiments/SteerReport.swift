// SteerReport.swift: report.html of a steer trial (issue 14, parts 5-6; specs/phase.md 5(e).5):
// per model, heatmaps of the change in T, R and K and of the KL cost over layer x alpha when
// steering along the truth direction, the same for the random-direction control, the best setting
// chosen on dev and reported on test beside its controls, and the cross-effect matrix C with kappa.
// Inline SVG, no scripts.

import Foundation

enum SteerReport {
    /// A layer x alpha heatmap of `value` (diverging around 0 unless `sequential`), every cell
    /// labelled with its value.
    static func heatmap(
        title: String, layers: [Int], alphas: [Double], value: (Int, Double) -> Double?, sequential: Bool = false
    ) -> String {
        let cell = 48.0, left = 64.0, top = 34.0, height = top + cell * Double(layers.count) + 44
        let width = left + cell * Double(alphas.count) + 20
        let values = layers.flatMap { l in alphas.compactMap { value(l, $0) } }.filter(\.isFinite)
        let extent = max(values.map(abs).max() ?? 1, 1e-9)
        func colour(_ v: Double) -> String {
            let t = min(1, abs(v) / extent)
            if sequential {
                let c = Int(255 - 155 * t)
                return "rgb(\(c),\(c),255)"
            }
            let fade = Int(255 - 200 * t)
            return v >= 0 ? "rgb(255,\(fade),\(fade))" : "rgb(\(fade),\(fade),255)"
        }
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">"
        svg += "<text x=\"\(left)\" y=\"20\" font-size=\"13\" font-weight=\"bold\">\(htmlEscape(title))</text>"
        for (i, l) in layers.enumerated() {
            let y = top + cell * Double(i)
            svg += "<text x=\"\(left - 8)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"end\">layer \(l)</text>"
            for (j, a) in alphas.enumerated() {
                let x = left + cell * Double(j)
                let v = value(l, a)
                let fill = v.map { $0.isFinite ? colour($0) : "#eee" } ?? "#eee"
                svg +=
                    "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell - 2)\" height=\"\(cell - 2)\" fill=\"\(fill)\" stroke=\"#ccc\"/>"
                svg +=
                    "<text x=\"\(x + cell / 2 - 1)\" y=\"\(y + cell / 2 + 4)\" text-anchor=\"middle\">\(PhaseReport.num(v, 2))</text>"
            }
        }
        let yAxis = top + cell * Double(layers.count) + 16
        for (j, a) in alphas.enumerated() {
            svg +=
                "<text x=\"\(left + cell * Double(j) + cell / 2 - 1)\" y=\"\(yAxis)\" text-anchor=\"middle\">\(PhaseReport.num(a, 3))</text>"
        }
        svg +=
            "<text x=\"\(left + cell * Double(alphas.count) / 2)\" y=\"\(yAxis + 18)\" text-anchor=\"middle\">alpha</text>"
        return svg + "</svg>"
    }

    /// Standalone SVGs laid out two per row in one SVG (each keeps its own size).
    static func grid(_ panels: [String]) -> String {
        func size(_ svg: String, _ key: String) -> Double {
            guard let r = svg.range(of: "\(key)=\""), let end = svg[r.upperBound...].firstIndex(of: "\"") else {
                return 0
            }
            return Double(svg[r.upperBound..<end]) ?? 0
        }
        let w = panels.map { size($0, "width") }.max() ?? 0, h = panels.map { size($0, "height") }.max() ?? 0
        let rows = (panels.count + 1) / 2
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(2 * w))\" height=\"\(Int(Double(rows) * h))\" viewBox=\"0 0 \(Int(2 * w)) \(Int(Double(rows) * h))\">"
        for (i, p) in panels.enumerated() {
            let x = Double(i % 2) * w, y = Double(i / 2) * h
            out += p.replacingOccurrences(
                of: "<svg xmlns=", with: "<svg x=\"\(Int(x))\" y=\"\(Int(y))\" xmlns=", options: [],
                range: p.range(of: "<svg xmlns="))
        }
        return out + "</svg>"
    }

    static func html(trial: Trial, results: JSONValue) -> String {
        let m = trial.manifest
        var r = HTMLReport(
            title: "\(m.name): steer trial \(trial.index)",
            subtitle: "\(trial.condition), seed \(m.seed) — vld \(results["vldVersion"]?.stringValue ?? "?")")
        for model in results["models"]?.arrayValue ?? [] { modelSections(&r, model: model) }
        return r.render()
    }

    /// One steered model's sections: its heatmaps, the best setting beside its controls, C.
    static func modelSections(_ r: inout HTMLReport, model: JSONValue) {
        let steered = model["steered"]
        r.heading(
            "\(model["ref"]?.stringValue ?? "?"): d = \(model["dModel"]?.intValue ?? 0), \(model["params"]?.intValue ?? 0) parameters"
        )
        r.keyValues([
            ("site", steered?["site"]?.stringValue ?? "?"),
            ("positions", steered?["positions"]?.stringValue ?? "?"),
            ("tokens steered", steered?["tokens"]?.stringValue ?? "?"),
            ("mode", steered?["mode"]?.stringValue ?? "?"),
            ("scale of alpha", steered?["scale"]?.stringValue ?? "?"),
            (
                "direction",
                "\(steered?["method"]?.stringValue ?? "?"), read at the \(steered?["read"]?.stringValue ?? "?")"
            ),
            ("model hash", model["modelHash"]?.stringValue ?? "?"),
        ])
        let sweep = model["sweep"]?.arrayValue ?? []
        let layers = Array(Set(sweep.compactMap { $0["layer"]?.intValue })).sorted()
        let alphas = Array(Set(sweep.compactMap { $0["alpha"]?.doubleValue })).sorted()
        func value(_ direction: String, _ key: String) -> (Int, Double) -> Double? {
            { l, a in
                sweep.first {
                    $0["direction"]?.stringValue == direction && $0["layer"]?.intValue == l
                        && $0["alpha"]?.doubleValue == a
                }?[key]?.doubleValue
            }
        }
        for direction in ["T", "T-random"]
        where sweep.contains(where: { $0["direction"]?.stringValue == direction }) {
            r.subheading(
                direction == "T"
                    ? "Steering along the truth direction (test split)"
                    : "Control: a random direction of the same size")
            r.chart(
                grid(
                    [
                        ("deltaT", "ΔT (T_MC2)"), ("deltaR", "ΔR"), ("deltaK", "ΔK"),
                        ("kl", "KL to the unsteered model"),
                    ].map { key, label in
                        heatmap(
                            title: "\(label), \(direction)", layers: layers, alphas: alphas,
                            value: value(direction, key), sequential: key == "kl")
                    }))
        }
        let best = model["best"]
        func row(_ name: String, _ v: JSONValue?) -> [String] {
            [name] + ["deltaT", "deltaR", "deltaK", "kl"].map { PhaseReport.num(v?[$0]?.doubleValue) }
        }
        var rows = [row("T direction", best?["test"])]
        for c in ["T-random", "T-shuffled"] { if best?[c] != nil { rows.append(row(c, best?[c])) } }
        if let cape = best?["capeLayer"] {
            rows.append(row("T direction at layer ⌊L/4⌋ = \(cape["layer"]?.intValue ?? 0)", cape["test"]))
        }
        r.table(
            headers: ["at the best dev setting", "ΔT", "ΔR", "ΔK", "KL"], rows: rows, numericColumns: [1, 2, 3, 4],
            caption:
                "Best layer \(best?["layer"]?.intValue ?? -1), alpha \(PhaseReport.num(best?["alpha"]?.doubleValue)) (chosen on the dev half, reported on the test half). Out of template ΔT: \(PhaseReport.num(best?["outOfTemplateDeltaT"]?.doubleValue)). Anti-steerable items: \(PhaseReport.num(model["slopes"]?["antiSteerable"]?.doubleValue.map { 100 * $0 }))%."
        )
        if case let .object(cRows)? = model["C"] {
            r.table(
                headers: ["steer along", "layer", "∂R/∂α", "∂T/∂α", "∂K/∂α"],
                rows: cRows.map { i, v in
                    ["v_\(i)", "\(v["layer"]?.intValue ?? 0)"]
                        + ["R", "T", "K"].map { PhaseReport.num(v[$0]?.doubleValue) }
                }, numericColumns: [1, 2, 3, 4],
                caption:
                    "Cross-effects C_ij = (S_j(+α) − S_j(−α)) / 2α; κ = C_RT / √|C_RR C_TT| = \(PhaseReport.num(model["kappa"]?.doubleValue))."
            )
        }
    }
}
