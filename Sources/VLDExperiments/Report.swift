// Self-contained HTML reports: one page, inline CSS and inline SVG charts (see SVGChart.swift),
// no network, no JavaScript, no external fonts. The page is also well-formed XML (XHTML-compatible
// serialisation), so it can be checked with any XML parser. Output is deterministic.
import Foundation

/// Escapes text for HTML/XML content and attribute values (& < > " '). Characters that are not
/// allowed in XML 1.0 (most C0 controls, lone surrogates cannot occur in Swift strings, U+FFFE/F)
/// are replaced with U+FFFD so hostile input can never make the document ill-formed.
public func htmlEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        switch u {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        case "\t", "\n", "\r": out.unicodeScalars.append(u)
        default:
            if u.value < 0x20 || u.value == 0x7F || u.value == 0xFFFE || u.value == 0xFFFF {
                out += "\u{FFFD}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

/// Compact number for labels and tables, rounded to `significant` digits:
/// 0.000123 → "1.23e-4", 12345678 → "1.235e7", 3.0 → "3", 0.5 → "0.5", NaN → "—", ±inf → "∞"/"-∞".
/// Scientific notation is used below 1e-3 and from 1e6 (after rounding) upwards.
public func formatNumber(_ v: Double, significant: Int = 4) -> String {
    if v.isNaN { return "—" }
    if v.isInfinite { return v > 0 ? "∞" : "-∞" }
    if v == 0 { return "0" }
    let sig = min(max(significant, 1), 17)
    let sci = String(format: "%.\(sig - 1)e", v)
    guard let eIdx = sci.firstIndex(where: { $0 == "e" || $0 == "E" }),
        let exponent = Int(sci[sci.index(after: eIdx)...])
    else { return sci }
    if exponent >= 6 || exponent < -3 {
        return stripTrailingZeros(String(sci[..<eIdx])) + "e" + String(exponent)
    }
    let decimals = max(0, sig - 1 - exponent)
    return stripTrailingZeros(String(format: "%.\(decimals)f", v))
}

private func stripTrailingZeros(_ s: String) -> String {
    guard s.contains(".") else { return s }
    var t = s
    while t.hasSuffix("0") { t.removeLast() }
    if t.hasSuffix(".") { t.removeLast() }
    return t == "-0" ? "0" : t
}

/// Builds a single-page report. Blocks are appended in order; `render()` returns the page.
public struct HTMLReport: Sendable {
    public var title: String
    public var subtitle: String?
    /// Optional line in the page footer (e.g. the tool version). Escaped.
    public var footer: String?
    private var blocks: [String] = []
    private var figureCount = 0
    private var tableCount = 0

    public init(title: String, subtitle: String? = nil) {
        self.title = title
        self.subtitle = subtitle
    }

    /// Section heading (h2).
    public mutating func heading(_ text: String) {
        blocks.append("<h2>\(htmlEscape(text))</h2>")
    }

    /// Sub-section heading (h3).
    public mutating func subheading(_ text: String) {
        blocks.append("<h3>\(htmlEscape(text))</h3>")
    }

    /// A paragraph of plain text (escaped; line breaks are kept as spaces).
    public mutating func paragraph(_ text: String) {
        blocks.append("<p>\(htmlEscape(text))</p>")
    }

    /// A compact definition table (parameter name → value), laid out in columns on wide pages.
    public mutating func keyValues(_ pairs: [(String, String)]) {
        guard !pairs.isEmpty else { return }
        var s = "<dl class=\"kv\">\n"
        for (k, v) in pairs {
            s += "<div><dt>\(htmlEscape(k))</dt><dd>\(htmlEscape(v))</dd></div>\n"
        }
        s += "</dl>"
        blocks.append(s)
    }

    /// A data table; columns in `numericColumns` (0-based) are right-aligned with tabular digits.
    public mutating func table(
        headers: [String], rows: [[String]], numericColumns: Set<Int> = [], caption: String? = nil
    ) {
        let columns = max(headers.count, rows.map(\.count).max() ?? 0)
        guard columns > 0 else { return }
        func cls(_ i: Int) -> String { numericColumns.contains(i) ? " class=\"num\"" : "" }
        var s = "<div class=\"table-wrap\"><table class=\"data\">\n"
        if let caption {
            tableCount += 1
            s += "<caption><b>Table \(tableCount).</b> \(htmlEscape(caption))</caption>\n"
        }
        if !headers.isEmpty {
            s += "<thead><tr>"
            for i in 0..<columns {
                s += "<th scope=\"col\"\(cls(i))>\(htmlEscape(i < headers.count ? headers[i] : ""))</th>"
            }
            s += "</tr></thead>\n"
        }
        s += "<tbody>\n"
        for row in rows {
            s += "<tr>"
            for i in 0..<columns {
                s += "<td\(cls(i))>\(htmlEscape(i < row.count ? row[i] : ""))</td>"
            }
            s += "</tr>\n"
        }
        s += "</tbody></table></div>"
        blocks.append(s)
    }

    /// An SVG chart (as produced by `LineChart.svg()` / `BarChart.svg()`; inserted verbatim).
    /// Charts with a caption (escaped) are numbered "Figure 1.", "Figure 2.", ...
    /// The chart is shown up to 1.3× its natural size (so its text matches the body text), never
    /// wider than the page.
    public mutating func chart(_ svg: String, caption: String? = nil) {
        var s = "<figure>\n\(svg)"
        if let w = Self.svgWidth(svg) {
            s = "<figure style=\"max-width: \(Int((w * 1.3).rounded()))px\">\n\(svg)"
        }
        if !s.hasSuffix("\n") { s += "\n" }
        if let caption, !caption.isEmpty {
            figureCount += 1
            s += "<figcaption><b>Figure \(figureCount).</b> \(htmlEscape(caption))</figcaption>\n"
        }
        s += "</figure>"
        blocks.append(s)
    }

    public mutating func chart(_ chart: LineChart, caption: String? = nil, width: Int = 640, height: Int = 360) {
        self.chart(chart.svg(width: width, height: height), caption: caption)
    }

    public mutating func chart(_ chart: BarChart, caption: String? = nil, width: Int = 640, height: Int = 360) {
        self.chart(chart.svg(width: width, height: height), caption: caption)
    }

    /// The `width` attribute of the root <svg> element, if it is a plain positive number.
    static func svgWidth(_ svg: String) -> Double? {
        guard let open = svg.range(of: "<svg"), let end = svg[open.upperBound...].firstIndex(of: ">") else {
            return nil
        }
        let tag = svg[open.upperBound..<end]
        guard let attr = tag.range(of: " width=\"") else { return nil }
        let rest = tag[attr.upperBound...]
        guard let q = rest.firstIndex(of: "\""), let w = Double(rest[..<q]), w.isFinite, w > 0, w < 100_000 else {
            return nil
        }
        return w
    }

    /// Monospaced, escaped text (logs, configs).
    public mutating func preformatted(_ text: String) {
        blocks.append("<pre>\(htmlEscape(text))</pre>")
    }

    /// The complete page: `<!DOCTYPE html>`, UTF-8, inline stylesheet with print rules.
    public func render() -> String {
        var s = "<!DOCTYPE html>\n"
        s += "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
        s += "<meta charset=\"utf-8\"/>\n"
        s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n"
        s += "<meta name=\"generator\" content=\"vld\"/>\n"
        s += "<title>\(htmlEscape(title))</title>\n"
        s += "<style>\n\(Self.stylesheet)</style>\n"
        s += "</head>\n<body>\n<main>\n<header>\n"
        s += "<h1>\(htmlEscape(title))</h1>\n"
        if let subtitle, !subtitle.isEmpty { s += "<p class=\"subtitle\">\(htmlEscape(subtitle))</p>\n" }
        s += "</header>\n"
        for b in blocks { s += b + "\n" }
        s +=
            "<footer>\(htmlEscape(footer ?? "Generated by vld. Self-contained report: no scripts, no external resources."))</footer>\n"
        s += "</main>\n</body>\n</html>\n"
        return s
    }

    /// Writes `render()` to `url` atomically, UTF-8.
    public func write(to url: URL) throws {
        try Data(render().utf8).write(to: url, options: .atomic)
    }

    // No '<' or '&' in here: the page must stay well-formed XML.
    static let stylesheet = """
        :root { color-scheme: light; }
        * { box-sizing: border-box; }
        html { -webkit-print-color-adjust: exact; print-color-adjust: exact; -webkit-text-size-adjust: 100%; }
        body { margin: 0; background: #ffffff; color: #1a1a1a;
          font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", "DejaVu Sans", sans-serif; }
        main { max-width: 1180px; margin: 0 auto; padding: 36px 28px 48px; }
        header { border-bottom: 2px solid #1a1a1a; padding-bottom: 12px; margin-bottom: 20px; }
        h1 { font-size: 26px; line-height: 1.25; margin: 0 0 4px; font-weight: 700; letter-spacing: -0.01em; }
        .subtitle { margin: 0; color: #555555; font-size: 15px; }
        h2 { font-size: 19px; line-height: 1.3; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d9d9d9; font-weight: 650; }
        h3 { font-size: 16px; margin: 22px 0 8px; font-weight: 650; }
        p { margin: 0 0 12px; max-width: 75ch; }
        figure { margin: 16px 0 26px; }
        figure svg { display: block; width: 100%; height: auto; }
        figcaption { margin-top: 6px; font-size: 13.5px; color: #444444; max-width: 75ch; }
        figcaption b, caption b { color: #1a1a1a; }
        .table-wrap { overflow-x: auto; margin: 12px 0 22px; }
        table.data { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums;
          border-top: 2px solid #1a1a1a; border-bottom: 2px solid #1a1a1a; }
        table.data caption { caption-side: top; text-align: left; font-size: 13.5px; color: #444444; padding-bottom: 6px; }
        table.data th, table.data td { padding: 4px 14px; text-align: left; vertical-align: top; }
        table.data th:first-child, table.data td:first-child { padding-left: 6px; }
        table.data thead th { border-bottom: 1px solid #1a1a1a; font-weight: 650; white-space: nowrap; }
        table.data tbody tr:nth-child(even) { background: #f5f6f8; }
        table.data .num { text-align: right; white-space: nowrap; }
        dl.kv { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); column-gap: 28px;
          margin: 12px 0 22px; font-size: 14px; }
        dl.kv div { display: flex; justify-content: space-between; align-items: baseline; gap: 12px;
          padding: 3px 0; border-bottom: 1px dotted #c8c8c8; break-inside: avoid; }
        dl.kv dt { color: #555555; }
        dl.kv dd { margin: 0; font-weight: 600; text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
        pre { margin: 12px 0 20px; padding: 10px 12px; background: #f5f6f8; border: 1px solid #e0e3e8; border-radius: 3px;
          font: 12.5px/1.45 ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
          white-space: pre-wrap; overflow-wrap: anywhere; }
        footer { margin-top: 40px; padding-top: 8px; border-top: 1px solid #d9d9d9; color: #777777; font-size: 12px; }
        @page { size: A4; margin: 15mm 14mm; }
        @media print {
          body { font-size: 10.5pt; }
          main { max-width: none; padding: 0; }
          h1 { font-size: 19pt; }
          h2 { font-size: 14pt; break-after: avoid; page-break-after: avoid; }
          h3 { break-after: avoid; page-break-after: avoid; }
          figure, pre, dl.kv, .table-wrap { break-inside: avoid; page-break-inside: avoid; }
          .table-wrap { overflow: visible; }
          figure svg { max-width: 100%; }
        }

        """
}
