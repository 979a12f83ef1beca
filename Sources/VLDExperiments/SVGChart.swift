// Dependency-free SVG charts for vld reports: line charts (with optional error bands) and grouped
// bar charts (with optional error bars and a reference line).
//
// Output is self-contained SVG 1.1 (well-formed XML, no ids, no scripts, no external resources),
// deterministic (same input, same bytes) and safe for hostile text (everything is escaped).
// Values that cannot be drawn (NaN, ±inf, and non-positive values on a log axis) are skipped and
// counted in a small note on the chart; when nothing drawable is left the chart says "No data".
import Foundation

// MARK: - Data

/// One data point. `lo`/`hi` are an optional error band (line charts) or error bar (bar charts).
public struct ChartPoint: Equatable, Sendable {
    public var x: Double
    public var y: Double
    public var lo: Double?
    public var hi: Double?

    public init(x: Double, y: Double, lo: Double? = nil, hi: Double? = nil) {
        self.x = x
        self.y = y
        self.lo = lo
        self.hi = hi
    }
}

public struct ChartSeries: Equatable, Sendable {
    public var name: String
    public var points: [ChartPoint]

    public init(name: String, points: [ChartPoint]) {
        self.name = name
        self.points = points
    }
}

// MARK: - Palette

/// Okabe–Ito colour-blind-safe palette, ordered for contrast on white (yellow last).
public enum ChartPalette {
    public static let colors: [String] = [
        "#0072B2",  // blue
        "#D55E00",  // vermillion
        "#009E73",  // bluish green
        "#CC79A7",  // reddish purple
        "#E69F00",  // orange
        "#56B4E9",  // sky blue
        "#000000",  // black
        "#F0E442",  // yellow
    ]

    public static func color(_ index: Int) -> String {
        colors[((index % colors.count) + colors.count) % colors.count]
    }

    /// Dash pattern used once the colours have cycled (series 9+), so lines stay distinguishable.
    static func dash(_ index: Int) -> String? {
        let patterns: [String?] = [nil, "6 3", "2 2", "8 3 2 3"]
        return patterns[(max(index, 0) / colors.count) % patterns.count]
    }
}

// MARK: - Axis ticks

/// Tick selection shared by the charts; public so reports and tests can reuse it.
public enum ChartAxis {
    /// "Nice" linear ticks (steps of 1, 2 or 5 × 10^k) covering `lo...hi`, first tick ≤ lo and
    /// last tick ≥ hi. About `target` intervals. Equal bounds are widened to a sensible range.
    /// Returns [] for non-finite input.
    public static func niceTicks(_ lo: Double, _ hi: Double, target: Int = 5) -> [Double] {
        niceTickSpec(lo, hi, target: target)?.values ?? []
    }

    /// Decade ticks (1, 10, 100, ...) covering `lo...hi` (both must be > 0), with the 2× and 5×
    /// ticks added when the range spans at most two decades. Returns [] for invalid input.
    public static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
        logTickSpec(lo, hi)?.labelled ?? []
    }

    struct LinearSpec {
        var values: [Double]
        var stepExponent: Int
    }

    struct LogSpec {
        var lo: Double
        var hi: Double
        var labelled: [Double]
        var minor: [Double]
    }

    /// 10^k, exact for |k| ≤ 22.
    static func pow10(_ k: Int) -> Double {
        if k >= 0 && k <= 22 {
            var v = 1.0
            for _ in 0..<k { v *= 10 }
            return v
        }
        return pow(10.0, Double(k))
    }

    /// m × 10^k computed so that e.g. 3×2×10^-1 is exactly the literal 0.6.
    static func scaled(_ m: Int, _ k: Int) -> Double {
        if k >= 0 { return Double(m) * pow10(k) }
        if k >= -22 { return Double(m) / pow10(-k) }
        return Double(m) * pow(10.0, Double(k))
    }

    static func widen(_ lo: Double, _ hi: Double) -> (Double, Double) {
        var a = min(lo, hi), b = max(lo, hi)
        let scale = max(abs(a), abs(b))
        if b - a <= scale * 1e-12 {
            let d = scale == 0 ? 1.0 : scale * 0.1
            a -= d
            b += d
        }
        return (a, b)
    }

    static func niceTickSpec(_ lo: Double, _ hi: Double, target: Int = 5) -> LinearSpec? {
        guard lo.isFinite, hi.isFinite else { return nil }
        let (a, b) = widen(lo, hi)
        let span = b - a
        guard span.isFinite, span > 0, a.isFinite, b.isFinite else {
            return LinearSpec(values: [a, b].filter(\.isFinite), stepExponent: 0)
        }
        let raw = span / Double(max(1, target))
        var exp = Int(floor(log10(raw)))
        let frac = raw / pow10(exp)
        let m: Int
        if frac <= 1 + 1e-9 {
            m = 1
        } else if frac <= 2 + 1e-9 {
            m = 2
        } else if frac <= 5 + 1e-9 {
            m = 5
        } else {
            m = 1
            exp += 1
        }
        let step = scaled(m, exp)
        let f0 = floor(a / step + 1e-9), f1 = ceil(b / step - 1e-9)
        guard step > 0, f0.isFinite, f1.isFinite, abs(f0) < 1e15, abs(f1) < 1e15, f1 - f0 <= 100 else {
            return LinearSpec(values: [a, b], stepExponent: exp)
        }
        let i0 = Int(f0), i1 = Int(f1)
        var values: [Double] = []
        for i in i0...max(i0 + 1, i1) {
            values.append(scaled(i * m, exp))
        }
        return LinearSpec(values: values, stepExponent: exp)
    }

    static func logTickSpec(_ lo: Double, _ hi: Double) -> LogSpec? {
        guard lo.isFinite, hi.isFinite, lo > 0, hi > 0 else { return nil }
        let a = min(lo, hi), b = max(lo, hi)
        var d0 = Int(floor(log10(a) + 1e-9))
        var d1 = Int(ceil(log10(b) - 1e-9))
        if d1 <= d0 { d1 = d0 + 1 }
        // Values just above a decade boundary sometimes round down; make sure the range covers.
        while pow10(d0) > a && d0 > -320 { d0 -= 1 }
        while pow10(d1) < b && d1 < 320 { d1 += 1 }
        let decades = d1 - d0
        let stride = max(1, Int(ceil(Double(decades) / 8)))
        var labelled: [Double] = []
        var minor: [Double] = []
        var k = d0
        while k <= d1 {
            labelled.append(scaled(1, k))
            k += stride
        }
        if labelled.last.map({ $0 < scaled(1, d1) }) ?? true { labelled.append(scaled(1, d1)) }
        if decades <= 2 {
            var extra: [Double] = []
            for k in d0..<d1 { extra.append(scaled(2, k)); extra.append(scaled(5, k)) }
            labelled = (labelled + extra).sorted()
        }
        if decades <= 5 {
            for k in d0..<d1 {
                for m in 2...9 where !(decades <= 2 && (m == 2 || m == 5)) {
                    minor.append(scaled(m, k))
                }
            }
        }
        return LogSpec(lo: scaled(1, d0), hi: scaled(1, d1), labelled: labelled, minor: minor)
    }
}

// MARK: - Axis scale

struct ChartScale {
    var lo: Double
    var hi: Double
    var log: Bool
    var ticks: [Double]
    var labels: [String]
    var minor: [Double]

    /// Position of `v` in 0...1 along the axis.
    func t(_ v: Double) -> Double {
        let r: Double
        if log {
            let l0 = log10(lo), l1 = log10(hi)
            r = v > 0 ? (log10(v) - l0) / (l1 - l0) : 0
        } else {
            r = (v - lo) / (hi - lo)
        }
        return r.isFinite ? r : 0
    }

    static func linear(min a: Double, max b: Double, includeZero: Bool = false) -> ChartScale {
        var a = a, b = b
        if includeZero { a = Swift.min(a, 0); b = Swift.max(b, 0) }
        let spec = ChartAxis.niceTickSpec(a, b) ?? ChartAxis.LinearSpec(values: [0, 1], stepExponent: 0)
        var ticks = spec.values
        if ticks.count < 2 { ticks = [0, 1] }
        let maxAbs = ticks.map { abs($0) }.max() ?? 1
        let lead = maxAbs > 0 ? Int(floor(log10(maxAbs))) : 0
        let digits = Swift.min(15, Swift.max(1, lead - spec.stepExponent + 1))
        let labels = ticks.map { svgNumber(formatNumber($0, significant: digits)) }
        return ChartScale(lo: ticks.first!, hi: ticks.last!, log: false, ticks: ticks, labels: labels, minor: [])
    }

    static func logarithmic(min a: Double, max b: Double) -> ChartScale {
        guard let spec = ChartAxis.logTickSpec(a, b) else {
            return ChartScale(lo: 1, hi: 10, log: true, ticks: [1, 10], labels: ["1", "10"], minor: [])
        }
        let labels = spec.labelled.map { svgNumber(formatNumber($0, significant: 2)) }
        return ChartScale(lo: spec.lo, hi: spec.hi, log: true, ticks: spec.labelled, labels: labels, minor: spec.minor)
    }
}

/// Typographic minus for numbers shown in charts.
func svgNumber(_ s: String) -> String {
    s.hasPrefix("-") ? "\u{2212}" + s.dropFirst() : s
}

// MARK: - SVG writing helpers

enum SVGText {
    static let fontFamily = "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif"
    static let ink = "#1a1a1a"
    static let axisInk = "#4d4d4d"
    static let muted = "#666666"
    static let grid = "#e3e3e3"
    static let minorGrid = "#f1f1f1"

    /// Rough advance width of `s` in a Helvetica/Arial-like font, in px (errs on the wide side).
    static func width(_ s: String, size: Double) -> Double {
        var w = 0.0
        for ch in s.unicodeScalars {
            switch ch {
            case "i", "j", "l", "!", "|", ".", ",", ":", ";", "'", "I", " ", "(", ")", "[", "]", "f", "t", "r":
                w += 0.32
            case "m", "w", "M", "W", "%", "@":
                w += 0.88
            case "A"..."Z", "—", "\u{2212}", "±", "×":
                w += 0.68
            case "0"..."9", "a"..."z":
                w += 0.57
            default:
                w += ch.value < 0x80 ? 0.58 : 0.8
            }
        }
        return w * size
    }

    /// `s` shortened with an ellipsis so that it fits in `maxWidth`.
    static func fit(_ s: String, maxWidth: Double, size: Double) -> String {
        if width(s, size: size) <= maxWidth { return s }
        var chars = Array(s)
        while !chars.isEmpty && width(String(chars) + "…", size: size) > maxWidth {
            chars.removeLast()
        }
        return chars.isEmpty ? "" : String(chars) + "…"
    }
}

/// Formats an SVG coordinate: at most 2 decimals, never NaN/inf, no "-0".
func svgCoord(_ v: Double) -> String {
    guard v.isFinite else { return "0" }
    let c = min(max(v, -1e6), 1e6)
    let r = (c * 100).rounded() / 100
    if r == r.rounded() {
        let i = Int(r)
        return String(i)
    }
    var s = String(format: "%.2f", r)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s == "-0" ? "0" : s
}

struct SVGWriter {
    var out = ""
    let width: Double
    let height: Double

    init(width: Double, height: Double, title: String) {
        self.width = width
        self.height = height
        let w = svgCoord(width), h = svgCoord(height)
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\""
        out += " role=\"img\" font-family=\"\(SVGText.fontFamily)\" font-size=\"12\" fill=\"\(SVGText.ink)\">\n"
        if !title.isEmpty { out += "<title>\(htmlEscape(title))</title>\n" }
        out += "<rect x=\"0\" y=\"0\" width=\"\(w)\" height=\"\(h)\" fill=\"#ffffff\"/>\n"
    }

    mutating func raw(_ s: String) { out += s }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String,
                       width: Double = 1, dash: String? = nil, extra: String = "") {
        out += "<line x1=\"\(svgCoord(x1))\" y1=\"\(svgCoord(y1))\" x2=\"\(svgCoord(x2))\" y2=\"\(svgCoord(y2))\""
        out += " stroke=\"\(stroke)\" stroke-width=\"\(svgCoord(width))\""
        if let dash { out += " stroke-dasharray=\"\(dash)\"" }
        out += extra
        out += "/>\n"
    }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, extra: String = "") {
        out += "<rect x=\"\(svgCoord(x))\" y=\"\(svgCoord(y))\" width=\"\(svgCoord(max(0, w)))\" height=\"\(svgCoord(max(0, h)))\" fill=\"\(fill)\"\(extra)/>\n"
    }

    enum Anchor: String { case start, middle, end }

    /// Text; `text` is escaped here. `vcenter` centres it vertically on `y`.
    mutating func text(_ x: Double, _ y: Double, _ text: String, size: Double = 12, anchor: Anchor = .start,
                       fill: String? = nil, weight: String? = nil, vcenter: Bool = false, rotate: Bool = false,
                       halo: Bool = false) {
        out += "<text"
        if rotate {
            out += " transform=\"translate(\(svgCoord(x)),\(svgCoord(y))) rotate(-90)\""
        } else {
            out += " x=\"\(svgCoord(x))\" y=\"\(svgCoord(y))\""
        }
        if vcenter { out += " dy=\"0.35em\"" }
        if size != 12 { out += " font-size=\"\(svgCoord(size))\"" }
        if anchor != .start { out += " text-anchor=\"\(anchor.rawValue)\"" }
        if let fill { out += " fill=\"\(fill)\"" }
        if let weight { out += " font-weight=\"\(weight)\"" }
        if halo { out += " stroke=\"#ffffff\" stroke-width=\"3\" stroke-linejoin=\"round\" paint-order=\"stroke\"" }
        out += ">\(htmlEscape(text))</text>\n"
    }

    mutating func finish() -> String {
        out += "</svg>\n"
        return out
    }
}

/// Marker shapes per series index (circle, square, triangle, diamond, inverted triangle).
func markerSVG(_ index: Int, x: Double, y: Double, r: Double, color: String) -> String {
    let style = " fill=\"\(color)\" stroke=\"#ffffff\" stroke-width=\"0.8\""
    func pts(_ p: [(Double, Double)]) -> String {
        p.map { "\(svgCoord(x + $0.0)),\(svgCoord(y + $0.1))" }.joined(separator: " ")
    }
    switch ((index % 5) + 5) % 5 {
    case 0:
        return "<circle cx=\"\(svgCoord(x))\" cy=\"\(svgCoord(y))\" r=\"\(svgCoord(r))\"\(style)/>\n"
    case 1:
        let s = r * 0.9
        return "<rect x=\"\(svgCoord(x - s))\" y=\"\(svgCoord(y - s))\" width=\"\(svgCoord(2 * s))\" height=\"\(svgCoord(2 * s))\"\(style)/>\n"
    case 2:
        let s = r * 1.2
        return "<polygon points=\"\(pts([(0, -s), (s * 0.95, s * 0.7), (-s * 0.95, s * 0.7)]))\"\(style)/>\n"
    case 3:
        let s = r * 1.25
        return "<polygon points=\"\(pts([(0, -s), (s, 0), (0, s), (-s, 0)]))\"\(style)/>\n"
    default:
        let s = r * 1.2
        return "<polygon points=\"\(pts([(0, s), (s * 0.95, -s * 0.7), (-s * 0.95, -s * 0.7)]))\"\(style)/>\n"
    }
}

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
    mutating func layoutHeader(title rawTitle: String, note rawNote: String?, legend: [LegendItem], extraTop: Double = 0) {
        let avail = width - 2 * Self.pad
        var y = Self.pad
        note = rawNote.map { SVGText.fit($0, maxWidth: avail, size: 10) } ?? ""
        let noteW = note.isEmpty ? 0 : SVGText.width(note, size: 10) + 16
        let titleW = SVGText.width(rawTitle, size: Self.titleSize)
        noteOwnRow = !note.isEmpty && !rawTitle.isEmpty && titleW + noteW > avail
        title = SVGText.fit(rawTitle, maxWidth: noteOwnRow || note.isEmpty ? avail : avail - noteW, size: Self.titleSize)
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
            let columns = min(legend.count, max(1, Int(avail / 110)), Int((Double(legend.count) / Double(maxRows)).rounded(.up)))
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
                w.text(title.isEmpty ? Self.pad : width - Self.pad, Self.pad + 12, note, size: 10,
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
    static func drawYAxis(_ w: inout SVGWriter, scale: ChartScale, x0: Double, x1: Double, y0: Double, y1: Double,
                          label: String, height: Double) {
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

// MARK: - Line chart

public struct LineChart: Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [ChartSeries]
    public var logY: Bool = false
    public var logX: Bool = false

    public init(title: String, xLabel: String, yLabel: String, series: [ChartSeries],
                logY: Bool = false, logX: Bool = false) {
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
            legend.append(LegendItem(label: valid.isEmpty ? name + " (no data)" : name,
                                     swatch: .line(index: i, band: valid.contains { $0.band != nil },
                                                   marker: !valid.isEmpty && valid.count < 30)))
        }
        if series.count == 1 && series[0].name.isEmpty { legend = [] }
        var frame = ChartFrame(width: W, height: H)
        let note: String? = prep.omitted == 0 ? nil
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
                    w.raw("<polygon points=\"\(pts.joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.18\" stroke=\"none\"/>\n")
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
                var attrs = " fill=\"none\" stroke=\"\(c)\" stroke-width=\"1.8\" stroke-linejoin=\"round\" stroke-linecap=\"round\""
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

    public init(title: String, yLabel: String, seriesNames: [String], groups: [BarGroup],
                referenceLine: (value: Double, label: String)? = nil, showValues: Bool = false, xLabel: String = "") {
        self.title = title
        self.yLabel = yLabel
        self.seriesNames = seriesNames
        self.groups = groups
        self.referenceLine = referenceLine
        self.showValues = showValues
        self.xLabel = xLabel
    }

    struct BarGeometry {
        var group: Int
        var index: Int
        var x: Double
        var width: Double
        var y: Double       // top edge of the rect
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
            let label = ref.label.isEmpty ? formatNumber(ref.value) : "\(ref.label) (\(svgNumber(formatNumber(ref.value))))"
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
                bars.append(BarGeometry(group: gi, index: bi, x: x, width: w, y: min(yv, zeroY),
                                        height: abs(yv - zeroY), value: b.y, whisker: whisker))
            }
        }
        return Layout(scale: scale, left: left, right: right, top: top, bottom: bottom, zeroY: zeroY,
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
            ChartFrame.noData(&w, x0: ChartFrame.pad + 40, y0: frame.top, x1: W - ChartFrame.pad - 10,
                              y1: H - ChartFrame.pad - 24)
            return w.finish()
        }
        ChartFrame.drawYAxis(&w, scale: L.scale, x0: L.left, x1: L.right, y0: L.top, y1: L.bottom, label: yLabel, height: H)

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
        // Category labels.
        let maxLabel = H * 0.3
        for (gi, g) in groups.enumerated() {
            let cx = L.groupCenters[gi]
            if L.rotateLabels {
                let t = SVGText.fit(g.label, maxWidth: maxLabel, size: ChartFrame.tickSize)
                w.raw("<text transform=\"translate(\(svgCoord(cx + 4)),\(svgCoord(L.bottom + 12))) rotate(-45)\" font-size=\"11\" text-anchor=\"end\" fill=\"#333333\">\(htmlEscape(t))</text>\n")
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
