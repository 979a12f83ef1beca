// ChartFrame.swift: what line and bar charts share on the canvas: title, legend, axes and
// gridlines, laid out so that labels never overlap the plot.
import Foundation

// MARK: - Shared frame (title, legend, axes)

struct LegendItem {
    enum Swatch { case line(index: Int, band: Bool, marker: Bool), box(index: Int), dashed }
    var label: String
    var swatch: Swatch
}

struct ChartFrame {
    static let pad = 10.0
    static let titleSize = 14.0
    static let tickSize = 11.0
    static let labelSize = 12.0
    static let legendSize = 12.0
    static let legendRow = 18.0
    static let swatchW = 24.0

    var width: Double
    var height: Double
    var title = ""
    var note = ""
    var noteOwnRow = false
    var legendRows: [[(item: LegendItem, x: Double)]] = []
    var legendTop = 0.0
    var top = 0.0

    /// Lays out title, note (count of omitted values) and legend; sets `top`, where the plot starts.
    /// The legend flows in rows; when that would take more than about a third of the height it is
    /// laid out in columns with truncated labels instead.
    mutating func layoutHeader(
        title rawTitle: String, note rawNote: String?, legend: [LegendItem], extraTop: Double = 0
    ) {
        let avail = width - 2 * Self.pad
        var y = Self.pad
        note = rawNote.map { SVGText.fit($0, maxWidth: avail, size: 10) } ?? ""
        let noteW = note.isEmpty ? 0 : SVGText.width(note, size: 10) + 16
        let titleW = SVGText.width(rawTitle, size: Self.titleSize)
        noteOwnRow = !note.isEmpty && !rawTitle.isEmpty && titleW + noteW > avail
        title = SVGText.fit(
            rawTitle, maxWidth: noteOwnRow || note.isEmpty ? avail : avail - noteW, size: Self.titleSize)
        if !title.isEmpty || !note.isEmpty { y += 20 }
        if noteOwnRow { y += 14 }
        legendTop = y + 4

        func itemWidth(_ it: LegendItem) -> Double { Self.swatchW + 6 + SVGText.width(it.label, size: Self.legendSize) }
        var rows: [[(item: LegendItem, x: Double)]] = []
        var row: [(item: LegendItem, x: Double)] = []
        var x = 0.0
        for item in legend {
            var it = item
            it.label = SVGText.fit(item.label, maxWidth: max(40, avail - Self.swatchW - 6), size: Self.legendSize)
            let w = itemWidth(it)
            if !row.isEmpty && x + w > avail {
                rows.append(row)
                row = []
                x = 0
            }
            row.append((it, x))
            x += w + 16
        }
        if !row.isEmpty { rows.append(row) }
        let maxRows = max(1, Int(height * 0.3 / Self.legendRow))
        if rows.count > maxRows {
            let columns = min(
                legend.count, max(1, Int(avail / 110)), Int((Double(legend.count) / Double(maxRows)).rounded(.up)))
            let colW = avail / Double(columns)
            let perColumn = Int((Double(legend.count) / Double(columns)).rounded(.up))
            rows = Array(repeating: [], count: perColumn)
            for (i, item) in legend.enumerated() {
                var it = item
                it.label = SVGText.fit(item.label, maxWidth: colW - Self.swatchW - 6 - 10, size: Self.legendSize)
                rows[i % perColumn].append((it, colW * Double(i / perColumn)))
            }
        }
        legendRows = rows
        if !rows.isEmpty { y += 4 + Double(rows.count) * Self.legendRow }
        top = y + 10 + extraTop
    }

    func drawHeader(_ w: inout SVGWriter) {
        if !title.isEmpty {
            w.text(Self.pad, Self.pad + 13, title, size: Self.titleSize, weight: "bold")
        }
        if !note.isEmpty {
            if noteOwnRow {
                w.text(Self.pad, Self.pad + 30, note, size: 10, fill: SVGText.muted)
            } else {
                w.text(
                    title.isEmpty ? Self.pad : width - Self.pad, Self.pad + 12, note, size: 10,
                    anchor: title.isEmpty ? .start : .end, fill: SVGText.muted)
            }
        }
        var y = legendTop
        for row in legendRows {
            let cy = y + Self.legendRow / 2
            for (item, x0) in row {
                let x = Self.pad + x0
                switch item.swatch {
                case let .line(index, band, marker):
                    let c = ChartPalette.color(index)
                    if band { w.rect(x, cy - 6, Self.swatchW, 12, fill: c, extra: " fill-opacity=\"0.18\"") }
                    w.line(x, cy, x + Self.swatchW, cy, stroke: c, width: 2, dash: ChartPalette.dash(index))
                    if marker { w.raw(markerSVG(index, x: x + Self.swatchW / 2, y: cy, r: 3.4, color: c)) }
                case let .box(index):
                    w.rect(x + 5, cy - 6, 14, 12, fill: ChartPalette.color(index))
                case .dashed:
                    w.line(x, cy, x + Self.swatchW, cy, stroke: SVGText.ink, width: 1.4, dash: "5 3")
                }
                w.text(x + Self.swatchW + 6, cy, item.label, size: Self.legendSize, vcenter: true)
            }
            y += Self.legendRow
        }
    }

    static func noData(_ w: inout SVGWriter, x0: Double, y0: Double, x1: Double, y1: Double) {
        w.rect(x0, y0, x1 - x0, y1 - y0, fill: "#fafafa", extra: " stroke=\"#d0d0d0\" stroke-width=\"1\"")
        w.text((x0 + x1) / 2, (y0 + y1) / 2, "No data", size: 13, anchor: .middle, fill: SVGText.muted, vcenter: true)
    }

    /// Every k-th label so that labels of the given widths don't collide at the given spacing.
    static func labelStride(widths: [Double], spacing: Double) -> Int {
        guard let maxW = widths.max(), spacing > 0 else { return 1 }
        var k = 1
        while Double(k) * spacing < maxW + 10 && k < widths.count { k += 1 }
        return k
    }

    /// Draws the y axis (grid, ticks, labels, axis title).
    static func drawYAxis(
        _ w: inout SVGWriter, scale: ChartScale, x0: Double, x1: Double, y0: Double, y1: Double,
        label: String, height: Double
    ) {
        func py(_ v: Double) -> Double { y1 - scale.t(v) * (y1 - y0) }
        w.raw("<g shape-rendering=\"crispEdges\">\n")
        for v in scale.minor { w.line(x0, py(v), x1, py(v), stroke: SVGText.minorGrid) }
        for v in scale.ticks { w.line(x0, py(v), x1, py(v), stroke: SVGText.grid) }
        w.raw("</g>\n")
        for (v, s) in zip(scale.ticks, scale.labels) {
            w.line(x0 - 4, py(v), x0, py(v), stroke: SVGText.axisInk)
            w.text(x0 - 7, py(v), s, size: tickSize, anchor: .end, fill: "#333333", vcenter: true)
        }
        if !label.isEmpty {
            let t = SVGText.fit(label, maxWidth: y1 - y0 + 20, size: labelSize)
            w.text(pad + 11, (y0 + y1) / 2, t, size: labelSize, anchor: .middle, rotate: true)
        }
    }

    static func yTickLabelWidth(_ scale: ChartScale) -> Double {
        scale.labels.map { SVGText.width($0, size: tickSize) }.max() ?? 0
    }
}
