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

    mutating func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String,
        width: Double = 1, dash: String? = nil, extra: String = ""
    ) {
        out += "<line x1=\"\(svgCoord(x1))\" y1=\"\(svgCoord(y1))\" x2=\"\(svgCoord(x2))\" y2=\"\(svgCoord(y2))\""
        out += " stroke=\"\(stroke)\" stroke-width=\"\(svgCoord(width))\""
        if let dash { out += " stroke-dasharray=\"\(dash)\"" }
        out += extra
        out += "/>\n"
    }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, extra: String = "") {
        out +=
            "<rect x=\"\(svgCoord(x))\" y=\"\(svgCoord(y))\" width=\"\(svgCoord(max(0, w)))\" height=\"\(svgCoord(max(0, h)))\" fill=\"\(fill)\"\(extra)/>\n"
    }

    enum Anchor: String { case start, middle, end }

    /// Text; `text` is escaped here. `vcenter` centres it vertically on `y`.
    mutating func text(
        _ x: Double, _ y: Double, _ text: String, size: Double = 12, anchor: Anchor = .start,
        fill: String? = nil, weight: String? = nil, vcenter: Bool = false, rotate: Bool = false,
        halo: Bool = false
    ) {
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
        return
            "<rect x=\"\(svgCoord(x - s))\" y=\"\(svgCoord(y - s))\" width=\"\(svgCoord(2 * s))\" height=\"\(svgCoord(2 * s))\"\(style)/>\n"
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
