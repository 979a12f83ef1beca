// LineChart.swift: line charts for vld reports (optional error bands, log axes); the shared
// axes, legend and SVG writing are in SVGChart.swift.
import Foundation

// MARK: - Line chart

public struct LineChart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [ChartSeries]
    public var logY: Bool = false
    public var logX: Bool = false

    public init(
        title: String, xLabel: String, yLabel: String, series: [ChartSeries],
        logY: Bool = false, logX: Bool = false
    ) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
        self.logX = logX
    }

    /// A point after validation: nil entries are gaps (the line breaks there).
    struct Valid {
        var x: Double
        var y: Double
        var band: (lo: Double, hi: Double)?
    }

    struct Prepared {
        var series: [[Valid?]]
        var omitted: Int
        var xScale: ChartScale?
        var yScale: ChartScale?
    }

    /// Drops undrawable points and computes both axes (nil when nothing is left).
    func prepare() -> Prepared {
        var omitted = 0
        var xs: [Double] = [], ys: [Double] = []
        var out: [[Valid?]] = []
        for s in series {
            var row: [Valid?] = []
            for p in s.points {
                let okX = p.x.isFinite && (!logX || p.x > 0)
                let okY = p.y.isFinite && (!logY || p.y > 0)
                guard okX && okY else {
                    omitted += 1
                    row.append(nil)
                    continue
                }
                var band: (lo: Double, hi: Double)?
                if let lo = p.lo, let hi = p.hi, lo.isFinite, hi.isFinite, !logY || (lo > 0 && hi > 0) {
                    band = (min(lo, hi), max(lo, hi))
                    ys.append(lo)
                    ys.append(hi)
                }
                xs.append(p.x)
                ys.append(p.y)
                row.append(Valid(x: p.x, y: p.y, band: band))
            }
            out.append(row)
        }
        guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else {
            return Prepared(series: out, omitted: omitted, xScale: nil, yScale: nil)
        }
        let xScale = logX ? ChartScale.logarithmic(min: x0, max: x1) : ChartScale.linear(min: x0, max: x1)
        let yScale = logY ? ChartScale.logarithmic(min: y0, max: y1) : ChartScale.linear(min: y0, max: y1)
        return Prepared(series: out, omitted: omitted, xScale: xScale, yScale: yScale)
    }

    /// Shaded band where lo/hi are given; markers when a series has fewer than 30 drawable points.
    public func svg(width: Int = 640, height: Int = 360) -> String {
        let W = Double(max(width, 240)), H = Double(max(height, 160))
        let prep = prepare()
        var w = SVGWriter(width: W, height: H, title: title)
        let pad = ChartFrame.pad

        var legend: [LegendItem] = []
        for (i, s) in series.enumerated() {
            let valid = prep.series[i].compactMap { $0 }
            let name = s.name.isEmpty ? "series \(i + 1)" : s.name
            legend.append(
                LegendItem(
                    label: valid.isEmpty ? name + " (no data)" : name,
                    swatch: .line(
                        index: i, band: valid.contains { $0.band != nil },
                        marker: !valid.isEmpty && valid.count < 30)))
        }
        if series.count == 1 && series[0].name.isEmpty { legend = [] }
        var frame = ChartFrame(width: W, height: H)
        let note: String? =
            prep.omitted == 0
            ? nil
            : "\(prep.omitted) point\(prep.omitted == 1 ? "" : "s") omitted (non-finite\((logX || logY) ? " or ≤ 0 on log axis" : ""))"
        frame.layoutHeader(title: title, note: note, legend: legend)

        let bottom = H - pad - (xLabel.isEmpty ? 0 : 20) - 22
        guard let xs = prep.xScale, let ys = prep.yScale else {
            frame.drawHeader(&w)
            ChartFrame.noData(&w, x0: pad + 40, y0: frame.top, x1: W - pad - 10, y1: bottom)
            return w.finish()
        }
        let left = pad + (yLabel.isEmpty ? 0 : 20) + ChartFrame.yTickLabelWidth(ys) + 11
        let lastXW = SVGText.width(xs.labels.last ?? "", size: ChartFrame.tickSize)
        let right = W - max(pad + 8, lastXW / 2 + pad)
        let top = frame.top
        guard right - left > 20, bottom - top > 20 else {
            frame.drawHeader(&w)
            return w.finish()
        }
        func px(_ v: Double) -> Double { left + xs.t(v) * (right - left) }
        func py(_ v: Double) -> Double { bottom - ys.t(v) * (bottom - top) }

        frame.drawHeader(&w)

        // Grid and y axis.
        w.raw("<g shape-rendering=\"crispEdges\">\n")
        for v in xs.minor { w.line(px(v), top, px(v), bottom, stroke: SVGText.minorGrid) }
        for v in xs.ticks { w.line(px(v), top, px(v), bottom, stroke: SVGText.grid) }
        w.raw("</g>\n")
        ChartFrame.drawYAxis(&w, scale: ys, x0: left, x1: right, y0: top, y1: bottom, label: yLabel, height: H)

        // Bands, then lines, then markers (so markers sit on top of every line).
        for (i, row) in prep.series.enumerated() {
            let c = ChartPalette.color(i)
            var run: [Valid] = []
            func flush() {
                if run.count == 1, let b = run[0].band {
                    let x = px(run[0].x)
                    w.line(x, py(b.lo), x, py(b.hi), stroke: c, width: 1.4)
                    w.line(x - 4, py(b.lo), x + 4, py(b.lo), stroke: c, width: 1.4)
                    w.line(x - 4, py(b.hi), x + 4, py(b.hi), stroke: c, width: 1.4)
                } else if run.count > 1 {
                    var pts: [String] = []
                    for v in run { pts.append("\(svgCoord(px(v.x))),\(svgCoord(py(v.band!.hi)))") }
                    for v in run.reversed() { pts.append("\(svgCoord(px(v.x))),\(svgCoord(py(v.band!.lo)))") }
                    w.raw(
                        "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n"
                    )
                }
                run = []
            }
            for v in row {
                if let v, v.band != nil { run.append(v) } else { flush() }
            }
            flush()
        }
        for (i, row) in prep.series.enumerated() {
            let c = ChartPalette.color(i)
            var d = ""
            var pen = false
            var segmentLength = 0
            var lone: [Valid] = []
            var prev: Valid?
            for v in row {
                guard let v else {
                    if segmentLength == 1, let p = prev { lone.append(p) }
                    pen = false
                    segmentLength = 0
                    continue
                }
                d += (pen ? "L" : (d.isEmpty ? "M" : " M")) + "\(svgCoord(px(v.x))),\(svgCoord(py(v.y)))"
                pen = true
                segmentLength += 1
                prev = v
            }
            if segmentLength == 1, let p = prev { lone.append(p) }
            if d.contains("L") {
                var attrs =
                    " fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.8\" stroke-linejoin=\"round\" stroke-linecap=\"round\""
                if let dash = ChartPalette.dash(i) { attrs += " stroke-dasharray=\"\(dash)\"" }
                w.raw("<path d=\"\(d)\"\(attrs)/>\n")
            }
            let valid = row.compactMap { $0 }
            if valid.count < 30 {
                for v in valid { w.raw(markerSVG(i, x: px(v.x), y: py(v.y), r: 3.4, color: c)) }
            } else {
                // Isolated points between gaps would otherwise be invisible.
                for v in lone { w.raw(markerSVG(i, x: px(v.x), y: py(v.y), r: 2.5, color: c)) }
            }
        }

        // Axes, x ticks and labels.
        w.raw("<g shape-rendering=\"crispEdges\">\n")
        w.line(left, top, left, bottom, stroke: SVGText.axisInk)
        w.line(left, bottom, right, bottom, stroke: SVGText.axisInk)
        w.raw("</g>\n")
        let widths = xs.labels.map { SVGText.width($0, size: ChartFrame.tickSize) }
        let spacing = xs.ticks.count > 1 ? (right - left) / Double(xs.ticks.count - 1) : right - left
        let stride = ChartFrame.labelStride(widths: widths, spacing: spacing)
        for (k, (v, s)) in zip(xs.ticks, xs.labels).enumerated() {
            w.line(px(v), bottom, px(v), bottom + 4, stroke: SVGText.axisInk)
            if k % stride == 0 || k == xs.ticks.count - 1 && stride == 1 {
                w.text(px(v), bottom + 17, s, size: ChartFrame.tickSize, anchor: .middle, fill: "#333333")
            }
        }
        if !xLabel.isEmpty {
            let t = SVGText.fit(xLabel, maxWidth: W - 2 * pad, size: ChartFrame.labelSize)
            w.text((left + right) / 2, H - pad - 3, t, size: ChartFrame.labelSize, anchor: .middle)
        }
        return w.finish()
    }
}
