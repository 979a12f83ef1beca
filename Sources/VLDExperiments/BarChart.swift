// BarChart.swift: grouped bar charts for vld reports (error bars, negative values, a reference
// line); the shared axes, legend and SVG writing are in SVGChart.swift.
import Foundation

// MARK: - Bar chart

public struct BarGroup: Equatable, Sendable {
    public var label: String
    /// y = value, lo/hi = error bar; x unused.
    public var bars: [ChartPoint]

    public init(label: String, bars: [ChartPoint]) {
        self.label = label
        self.bars = bars
    }
}

public struct BarChart: Sendable {
    public var title: String
    public var yLabel: String
    /// One colour per bar position within a group (legend).
    public var seriesNames: [String]
    /// x-axis categories.
    public var groups: [BarGroup]
    /// Optional horizontal dashed line (e.g. the base model), shown in the legend.
    public var referenceLine: (value: Double, label: String)?
    /// Print each bar's value above (or, for negative bars, below) it.
    public var showValues: Bool
    /// Optional x-axis title under the category labels (empty: none).
    public var xLabel: String

    public init(
        title: String, yLabel: String, seriesNames: [String], groups: [BarGroup],
        referenceLine: (value: Double, label: String)? = nil, showValues: Bool = false, xLabel: String = ""
    ) {
        self.title = title
        self.yLabel = yLabel
        self.seriesNames = seriesNames
        self.groups = groups
        self.referenceLine = referenceLine
        self.showValues = showValues
        self.xLabel = xLabel
    }

    /// A condition label with each `key=value` word reduced to its value.
    static func valuesOnly(_ label: String) -> String {
        label.split(separator: " ").map { w in
            w.firstIndex(of: "=").map { String(w[w.index(after: $0)...]) } ?? String(w)
        }
        .joined(separator: " ")
    }

    struct BarGeometry {
        var group: Int
        var index: Int
        var x: Double
        var width: Double
        var y: Double  // top edge of the rect
        var height: Double
        var value: Double
        var whisker: (lo: Double, hi: Double)?  // pixel y of lo/hi
    }

    struct Layout {
        var scale: ChartScale
        var left: Double, right: Double, top: Double, bottom: Double
        var zeroY: Double
        var bars: [BarGeometry]
        var missing: [(group: Int, index: Int, x: Double, width: Double)]
        var groupCenters: [Double]
        var rotateLabels: Bool
    }

    var legendItems: [LegendItem] {
        var items: [LegendItem] = []
        let maxBars = groups.map(\.bars.count).max() ?? 0
        if !(seriesNames.count <= 1 && maxBars <= 1 && (seriesNames.first ?? "").isEmpty) {
            for i in 0..<max(seriesNames.count, maxBars) {
                let n = i < seriesNames.count && !seriesNames[i].isEmpty ? seriesNames[i] : "series \(i + 1)"
                items.append(LegendItem(label: n, swatch: .box(index: i)))
            }
        }
        if let ref = referenceLine, ref.value.isFinite {
            let label =
                ref.label.isEmpty ? formatNumber(ref.value) : "\(ref.label) (\(svgNumber(formatNumber(ref.value))))"
            items.append(LegendItem(label: label, swatch: .dashed))
        }
        return items
    }

    /// Geometry of the chart; nil when there is nothing to draw.
    func layout(width W: Double, height H: Double, top: Double) -> Layout? {
        var values: [Double] = []
        for g in groups {
            for b in g.bars where b.y.isFinite {
                values.append(b.y)
                if let lo = b.lo, let hi = b.hi, lo.isFinite, hi.isFinite { values += [lo, hi] }
            }
        }
        guard !groups.isEmpty, !values.isEmpty else { return nil }
        if let ref = referenceLine, ref.value.isFinite { values.append(ref.value) }
        if showValues, let lo = values.min(), let hi = values.max() {
            // Headroom for the value labels printed beyond the bar ends.
            let span = max(hi, 0) - min(lo, 0)
            if lo < 0 { values.append(lo - span * 0.08) }
        }
        let scale = ChartScale.linear(min: values.min()!, max: values.max()!, includeZero: true)
        let pad = ChartFrame.pad
        let left = pad + (yLabel.isEmpty ? 0 : 20) + ChartFrame.yTickLabelWidth(scale) + 11
        let right = W - pad - 6
        let slot = (right - left) / Double(groups.count)
        let labelWidths = groups.map { SVGText.width($0.label, size: ChartFrame.tickSize) }
        let rotate = (labelWidths.max() ?? 0) > slot - 6
        let maxLabel = min(labelWidths.max() ?? 0, H * 0.3)
        let labelBand = rotate ? maxLabel * 0.71 + 16 : 20
        let bottom = H - pad - labelBand - (xLabel.isEmpty ? 0 : 20)
        guard right - left > 20, bottom - top > 20 else { return nil }
        func py(_ v: Double) -> Double { bottom - scale.t(v) * (bottom - top) }
        let zeroY = py(0)
        let nBars = max(1, groups.map(\.bars.count).max() ?? 1, seriesNames.count)
        let barW = min(56, slot * 0.8 / Double(nBars))
        let gap = min(3, barW * 0.15)
        var bars: [BarGeometry] = []
        var missing: [(group: Int, index: Int, x: Double, width: Double)] = []
        var centers: [Double] = []
        for (gi, g) in groups.enumerated() {
            let cx = left + slot * (Double(gi) + 0.5)
            centers.append(cx)
            let x0 = cx - barW * Double(nBars) / 2
            for (bi, b) in g.bars.enumerated() {
                let x = x0 + barW * Double(bi) + gap / 2
                let w = barW - gap
                guard b.y.isFinite else {
                    missing.append((gi, bi, x, w))
                    continue
                }
                let yv = py(b.y)
                var whisker: (lo: Double, hi: Double)?
                if let lo = b.lo, let hi = b.hi, lo.isFinite, hi.isFinite {
                    whisker = (py(min(lo, hi)), py(max(lo, hi)))
                }
                bars.append(
                    BarGeometry(
                        group: gi, index: bi, x: x, width: w, y: min(yv, zeroY),
                        height: abs(yv - zeroY), value: b.y, whisker: whisker))
            }
        }
        return Layout(
            scale: scale, left: left, right: right, top: top, bottom: bottom, zeroY: zeroY,
            bars: bars, missing: missing, groupCenters: centers, rotateLabels: rotate)
    }

    /// Error bars are drawn as whiskers; values are printed when `showValues` is set.
    public func svg(width: Int = 640, height: Int = 360) -> String {
        let W = Double(max(width, 240)), H = Double(max(height, 160))
        var w = SVGWriter(width: W, height: H, title: title)
        var frame = ChartFrame(width: W, height: H)
        let omitted = groups.reduce(0) { $0 + $1.bars.filter { !$0.y.isFinite }.count }
        let note: String? = omitted == 0 ? nil : "\(omitted) value\(omitted == 1 ? "" : "s") missing (n/a)"
        frame.layoutHeader(title: title, note: note, legend: legendItems, extraTop: showValues ? 10 : 0)
        frame.drawHeader(&w)
        guard let L = layout(width: W, height: H, top: frame.top) else {
            ChartFrame.noData(
                &w, x0: ChartFrame.pad + 40, y0: frame.top, x1: W - ChartFrame.pad - 10,
                y1: H - ChartFrame.pad - 24)
            return w.finish()
        }
        ChartFrame.drawYAxis(
            &w, scale: L.scale, x0: L.left, x1: L.right, y0: L.top, y1: L.bottom, label: yLabel, height: H)

        for b in L.bars {
            w.rect(b.x, b.y, b.width, b.height, fill: ChartPalette.color(b.index))
        }
        for m in L.missing where m.width >= 12 {
            w.text(m.x + m.width / 2, L.zeroY - 4, "n/a", size: 9, anchor: .middle, fill: SVGText.muted)
        }
        // Zero line (solid) when the axis goes below zero; otherwise it is the x axis.
        w.raw("<g shape-rendering=\"crispEdges\">\n")
        w.line(L.left, L.top, L.left, L.bottom, stroke: SVGText.axisInk)
        w.line(L.left, L.bottom, L.right, L.bottom, stroke: SVGText.axisInk)
        if abs(L.zeroY - L.bottom) > 0.5 { w.line(L.left, L.zeroY, L.right, L.zeroY, stroke: SVGText.axisInk) }
        w.raw("</g>\n")
        for b in L.bars {
            guard let wh = b.whisker else { continue }
            let cx = b.x + b.width / 2, cap = min(b.width * 0.35, 7)
            w.line(cx, wh.lo, cx, wh.hi, stroke: SVGText.ink, width: 1.3)
            w.line(cx - cap, wh.lo, cx + cap, wh.lo, stroke: SVGText.ink, width: 1.3)
            w.line(cx - cap, wh.hi, cx + cap, wh.hi, stroke: SVGText.ink, width: 1.3)
        }
        if let ref = referenceLine, ref.value.isFinite {
            let y = L.bottom - L.scale.t(ref.value) * (L.bottom - L.top)
            w.line(L.left, y, L.right, y, stroke: SVGText.ink, width: 1.4, dash: "5 3")
        }
        let valueTexts = L.bars.map { svgNumber(formatNumber($0.value, significant: 3)) }
        let valuesFit = zip(L.bars, valueTexts).allSatisfy { SVGText.width($0.1, size: 10) <= $0.0.width + 2 }
        if showValues && valuesFit {
            for (b, s) in zip(L.bars, valueTexts) {
                let cx = b.x + b.width / 2
                if b.value >= 0 {
                    let y = min(b.y, b.whisker?.hi ?? b.y) - 4
                    w.text(cx, y, s, size: 10, anchor: .middle, fill: "#333333", halo: true)
                } else {
                    let y = max(b.y + b.height, b.whisker?.lo ?? 0) + 12
                    w.text(cx, y, s, size: 10, anchor: .middle, fill: "#333333", halo: true)
                }
            }
        }
        // Category labels; when a full label does not fit, every label drops its grid keys
        // ("student schedule=base loss=ce" -> "student base ce"), which keeps conditions apart
        // where cutting the full labels would leave the same few words.
        let maxLabel = H * 0.3
        let compact = groups.contains { SVGText.width($0.label, size: ChartFrame.tickSize) > maxLabel }
        for (gi, g) in groups.enumerated() {
            let cx = L.groupCenters[gi]
            if L.rotateLabels {
                let label = compact ? BarChart.valuesOnly(g.label) : g.label
                let t = SVGText.fit(label, maxWidth: maxLabel, size: ChartFrame.tickSize)
                w.raw(
                    "<text transform=\"translate(\(svgCoord(cx + 4)),\(svgCoord(L.bottom + 12))) rotate(-45)\" font-size=\"11\" text-anchor=\"end\" fill=\"#333333\">\(htmlEscape(t))</text>\n"
                )
            } else {
                w.text(cx, L.bottom + 17, g.label, size: ChartFrame.tickSize, anchor: .middle, fill: "#333333")
            }
        }
        if !xLabel.isEmpty {
            let t = SVGText.fit(xLabel, maxWidth: W - 2 * ChartFrame.pad, size: ChartFrame.labelSize)
            w.text((L.left + L.right) / 2, H - ChartFrame.pad - 3, t, size: ChartFrame.labelSize, anchor: .middle)
        }
        return w.finish()
    }
}
