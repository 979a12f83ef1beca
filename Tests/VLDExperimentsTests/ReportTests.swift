import Foundation
#if canImport(FoundationXML)
    import FoundationXML
#endif
import Testing
@testable import VLDExperiments

/// Parses `text` as XML; returns the elements seen (name + attributes) and any parse error.
private final class XMLCheck: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    var text = ""
    var error: Error?

    static func parse(_ s: String) -> XMLCheck {
        let check = XMLCheck()
        let parser = XMLParser(data: Data(s.utf8))
        parser.delegate = check
        if !parser.parse() { check.error = parser.parserError ?? CocoaError(.coderReadCorrupt) }
        return check
    }

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        elements.append((elementName, attributeDict))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

    func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { error = parseError }
}

private let hostile = "<script>alert(\"x\")</script> & 'q' ]]> \u{01}"

private func noNonFinite(_ s: String) -> Bool {
    let l = s.lowercased()
    return !l.contains("nan") && !l.contains("inf")
}

private func loss(_ n: Int, scale: Double) -> [ChartPoint] {
    (0..<n).map { i in
        let x = Double(i * 100)
        let y = scale * (2.5 / (1 + Double(i) * 0.2) + 0.3)
        return ChartPoint(x: x, y: y, lo: y * 0.9, hi: y * 1.1)
    }
}

@Suite("HTML report and SVG charts")
struct HTMLReportChartTests {
    @Test func escapesHostileText() {
        #expect(htmlEscape("a<b & \"c\" 'd'>") == "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;")
        #expect(htmlEscape("x\u{0}y") == "x\u{FFFD}y")
        #expect(htmlEscape("π ≤ 2\n") == "π ≤ 2\n")

        let line = LineChart(
            title: hostile, xLabel: hostile, yLabel: hostile,
            series: [ChartSeries(name: hostile, points: loss(5, scale: 1))]
        ).svg()
        let bars = BarChart(
            title: hostile, yLabel: hostile, seriesNames: [hostile],
            groups: [BarGroup(label: hostile, bars: [ChartPoint(x: 0, y: 1)])],
            referenceLine: (0.5, hostile)
        ).svg()
        var report = HTMLReport(title: hostile, subtitle: hostile)
        report.heading(hostile)
        report.paragraph(hostile)
        report.keyValues([(hostile, hostile)])
        report.table(headers: [hostile], rows: [[hostile]], numericColumns: [0])
        report.chart(line, caption: hostile)
        report.chart(bars, caption: hostile)
        report.preformatted(hostile)
        let page = report.render()
        for doc in [line, bars, page] {
            #expect(!doc.contains("<script"))
            #expect(doc.contains("&lt;script&gt;"))
            let check = XMLCheck.parse(doc)
            #expect(check.error == nil)
            #expect(!check.elements.contains { $0.name == "script" })
            #expect(check.text.contains("<script>alert(\"x\")</script> & 'q' ]]>"))
        }
    }

    @Test func formatsNumbersCompactly() {
        #expect(formatNumber(0.000123) == "1.23e-4")
        #expect(formatNumber(12345678) == "1.235e7")
        #expect(formatNumber(3.0) == "3")
        #expect(formatNumber(.nan) == "—")
        #expect(formatNumber(.infinity) == "∞")
        #expect(formatNumber(-.infinity) == "-∞")
        #expect(formatNumber(0) == "0")
        #expect(formatNumber(-0.0) == "0")
        #expect(formatNumber(0.5) == "0.5")
        #expect(formatNumber(-2.25) == "-2.25")
        #expect(formatNumber(0.001) == "0.001")
        #expect(formatNumber(999999.7) == "1e6")
        #expect(formatNumber(3.14159, significant: 3) == "3.14")
        #expect(formatNumber(1234.5) == "1235" || formatNumber(1234.5) == "1234")
    }

    @Test func niceLinearTicks() {
        #expect(ChartAxis.niceTicks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1])
        #expect(ChartAxis.niceTicks(3, 97) == [0, 20, 40, 60, 80, 100])
        #expect(ChartAxis.niceTicks(-7, 23) == [-10, 0, 10, 20, 30])
        #expect(ChartAxis.niceTicks(0.0013, 0.0091) == [0, 0.002, 0.004, 0.006, 0.008, 0.01])
        #expect(ChartAxis.niceTicks(0, 10_000) == [0, 2000, 4000, 6000, 8000, 10_000])
        #expect(ChartAxis.niceTicks(.nan, 1) == [])
        // Degenerate ranges still give an increasing axis around the value.
        for v in [5.0, 0, -3, 1e-9, 1e12] {
            let t = ChartAxis.niceTicks(v, v)
            #expect(t.count >= 2)
            #expect(t.first! < v && t.last! > v)
            #expect(zip(t, t.dropFirst()).allSatisfy { $0 < $1 })
        }
    }

    @Test func logTicksAreDecades() {
        #expect(ChartAxis.logTicks(0.01, 50) == [0.01, 0.1, 1, 10, 100])
        #expect(ChartAxis.logTicks(2, 8) == [1, 2, 5, 10])
        #expect(ChartAxis.logTicks(0, 8) == [])
        let wide = ChartAxis.logTicks(1e-12, 1e12)
        #expect(wide.count <= 10 && wide.first! <= 1e-12 && wide.last! >= 1e12)
    }

    @Test func lineChartSkipsUndrawableValues() {
        var pts = loss(40, scale: 1)
        pts[3].y = .nan
        pts[7].y = .infinity
        pts[9].lo = .nan
        pts[11] = ChartPoint(x: .nan, y: 1)
        let chart = LineChart(
            title: "loss", xLabel: "step", yLabel: "loss (nats/token)",
            series: [
                ChartSeries(name: "a", points: pts),
                ChartSeries(name: "b", points: [ChartPoint(x: 1, y: .nan)]),
            ])
        let svg = chart.svg()
        #expect(XMLCheck.parse(svg).error == nil)
        #expect(noNonFinite(svg))
        #expect(chart.prepare().omitted == 4)
        #expect(svg.contains("b (no data)"))
    }

    @Test func logAxisSkipsZeroAndNegative() {
        let pts = [
            ChartPoint(x: 0, y: 0), ChartPoint(x: 1, y: 10, lo: -1, hi: 20),
            ChartPoint(x: 2, y: 1), ChartPoint(x: 3, y: -5), ChartPoint(x: 4, y: 0.1),
        ]
        let chart = LineChart(
            title: "log", xLabel: "x", yLabel: "y", series: [ChartSeries(name: "s", points: pts)],
            logY: true)
        let prep = chart.prepare()
        #expect(prep.omitted == 2)
        let y = try! #require(prep.yScale)
        #expect(y.lo > 0 && y.lo <= 0.1 && y.hi >= 10)
        let svg = chart.svg()
        #expect(XMLCheck.parse(svg).error == nil)
        #expect(noNonFinite(svg))

        let logX = LineChart(
            title: "", xLabel: "", yLabel: "", series: [ChartSeries(name: "s", points: pts)], logX: true)
        #expect(logX.prepare().omitted == 1)
        #expect(XMLCheck.parse(logX.svg()).error == nil)
    }

    @Test func emptyAndDegenerateCharts() {
        let empty = LineChart(title: "nothing", xLabel: "x", yLabel: "y", series: [])
        let allBad = LineChart(
            title: "bad", xLabel: "x", yLabel: "y",
            series: [ChartSeries(name: "s", points: [ChartPoint(x: 0, y: .nan)])], logY: true)
        let noBars = BarChart(title: "none", yLabel: "y", seriesNames: [], groups: [])
        let nanBars = BarChart(
            title: "missing", yLabel: "y", seriesNames: ["a"],
            groups: [BarGroup(label: "g", bars: [ChartPoint(x: 0, y: .nan)])])
        for svg in [empty.svg(), allBad.svg(), noBars.svg(), nanBars.svg()] {
            #expect(svg.contains("No data"))
            #expect(XMLCheck.parse(svg).error == nil)
            #expect(noNonFinite(svg))
        }
        // One point, and all-equal values: a real range around the value.
        let single = LineChart(
            title: "one", xLabel: "x", yLabel: "y",
            series: [ChartSeries(name: "s", points: [ChartPoint(x: 5, y: 2)])])
        let flat = LineChart(
            title: "flat", xLabel: "x", yLabel: "y",
            series: [ChartSeries(name: "s", points: (0..<10).map { ChartPoint(x: Double($0), y: 0.25) })])
        for chart in [single, flat] {
            let prep = chart.prepare()
            let x = try! #require(prep.xScale), y = try! #require(prep.yScale)
            #expect(x.lo < x.hi && y.lo < y.hi)
            #expect(y.lo < 0.26 && y.hi > 0.24 || y.lo < 2 && y.hi > 2)
            let svg = chart.svg()
            #expect(XMLCheck.parse(svg).error == nil)
            #expect(noNonFinite(svg))
            #expect(!svg.contains("No data"))
        }
        // Extreme magnitudes don't leak non-finite coordinates.
        let huge = LineChart(
            title: "", xLabel: "", yLabel: "",
            series: [
                ChartSeries(name: "s", points: [ChartPoint(x: -1e308, y: -1e308), ChartPoint(x: 1e308, y: 1e308)])
            ])
        #expect(XMLCheck.parse(huge.svg()).error == nil)
        #expect(noNonFinite(huge.svg()))
    }

    @Test func negativeBarsGoDownFromZero() throws {
        let chart = BarChart(
            title: "Δ accuracy", yLabel: "Δ accuracy (pp)", seriesNames: ["a", "b"],
            groups: [
                BarGroup(
                    label: "add",
                    bars: [
                        ChartPoint(x: 0, y: 3, lo: 2, hi: 4),
                        ChartPoint(x: 0, y: -2, lo: -3, hi: -1),
                    ]),
                BarGroup(label: "mul", bars: [ChartPoint(x: 0, y: -0.5), ChartPoint(x: 0, y: .nan)]),
            ],
            referenceLine: (1, "base"), showValues: true)
        let layout = try #require(chart.layout(width: 640, height: 360, top: 40))
        #expect(layout.scale.lo <= -3 && layout.scale.hi >= 4)
        #expect(layout.scale.ticks.contains(0))
        #expect(layout.bars.count == 3)
        #expect(layout.missing.count == 1)
        for b in layout.bars {
            #expect(b.height > 0)
            if b.value > 0 {
                #expect(abs(b.y + b.height - layout.zeroY) < 1e-9)  // bottom edge on the zero line
            } else {
                #expect(abs(b.y - layout.zeroY) < 1e-9)  // top edge on the zero line
                #expect(b.y + b.height > layout.zeroY)
            }
            if let w = b.whisker { #expect(w.lo > w.hi) }  // pixel y grows downwards
        }
        let svg = chart.svg()
        let check = XMLCheck.parse(svg)
        #expect(check.error == nil)
        #expect(noNonFinite(svg))
        #expect(check.elements.contains { $0.name == "line" && $0.attributes["stroke-dasharray"] != nil })
        #expect(check.text.contains("\u{2212}2"))  // value label with a typographic minus
    }

    /// Long grid labels that would be cut to the same words keep the conditions apart.
    @Test func longCategoryLabelsStayDistinguishable() {
        let labels = [
            "teacher", "student schedule=base loss=ce",
            "student schedule=base loss=kd_forward temperature=2 lambda=0.5",
            "student schedule=cyc(1) loss=ce", "student schedule=cyc(1) loss=kd_forward temperature=2 lambda=0.5",
        ]
        let svg = BarChart(
            title: "t", yLabel: "y", seriesNames: ["a"],
            groups: labels.map { BarGroup(label: $0, bars: [ChartPoint(x: 0, y: 1)]) }
        ).svg(width: 760, height: 360)
        let shown = svg.components(separatedBy: "rotate(-45)").dropFirst().compactMap { part in
            part.split(separator: ">", maxSplits: 1).last.map { String($0.prefix { $0 != "<" }) }
        }
        #expect(shown.count == 5 && Set(shown).count == 5, "\(shown)")
        #expect(shown.contains("student base ce") && shown.contains("teacher"), "\(shown)")
        // Short labels are left as they are.
        #expect(BarChart.valuesOnly("schedule=cyc(1)") == "cyc(1)")
    }

    @Test func outputIsDeterministic() {
        func build() -> String {
            var r = HTMLReport(title: "Run 42", subtitle: "seed 7")
            r.keyValues([("P_total", formatNumber(1_234_567)), ("D", "128"), ("seed", "7")])
            r.table(headers: ["op", "acc"], rows: [["add", "0.93"], ["mul", "0.41"]], numericColumns: [1])
            r.chart(
                LineChart(
                    title: "loss", xLabel: "step", yLabel: "loss",
                    series: [
                        ChartSeries(name: "a", points: loss(50, scale: 1)),
                        ChartSeries(name: "b", points: loss(12, scale: 1.3)),
                    ], logY: true),
                caption: "Training loss")
            r.chart(
                BarChart(
                    title: "acc", yLabel: "accuracy", seriesNames: ["x", "y"],
                    groups: [
                        BarGroup(
                            label: "g",
                            bars: [
                                ChartPoint(x: 0, y: 0.5, lo: 0.4, hi: 0.6),
                                ChartPoint(x: 0, y: 0.7),
                            ])
                    ],
                    referenceLine: (0.55, "base")))
            r.preformatted("a < b")
            return r.render()
        }
        let a = build(), b = build()
        #expect(a == b)
        #expect(a.hasPrefix("<!DOCTYPE html>"))
        #expect(a.contains("<meta charset=\"utf-8\"/>"))
        #expect(!a.contains("<script"))
        #expect(!a.contains("http://") || !a.contains("src="))
        let check = XMLCheck.parse(a)
        #expect(check.error == nil)
        #expect(check.elements.filter { $0.name == "svg" }.count == 2)
        #expect(a.contains("<figure style=\"max-width: 832px\">"))
        #expect(a.contains("Figure 1.") && !a.contains("Figure 2."))  // only captioned charts are numbered
        #expect(check.elements.contains { $0.name == "td" && $0.attributes["class"] == "num" })
        #expect(noNonFinite(a))
    }

    @Test func crowdedChartsStayInsideTheCanvas() {
        let names = (0..<10).map { "variant \($0) with a fairly long descriptive name <\($0)>" }
        let line = LineChart(
            title: "Many series with a title long enough to need truncation in a narrow chart",
            xLabel: "compute (FLOPs)", yLabel: "loss",
            series: names.enumerated().map { k, n in
                ChartSeries(
                    name: n,
                    points: (1...40).map { i in
                        ChartPoint(
                            x: pow(10, 12 + Double(i) / 10), y: i == 20 ? 0 : 5 + Double(k) * 0.3 - Double(i) * 0.05)
                    })
            }, logY: true, logX: true)
        let bars = BarChart(
            title: "Long categories", yLabel: "score", seriesNames: ["a", "b", "c"],
            groups: (0..<9).map { g in
                BarGroup(
                    label: "category number \(g) with a long label",
                    bars: [ChartPoint(x: 0, y: Double(g) - 3), ChartPoint(x: 0, y: 1.5), ChartPoint(x: 0, y: 0.25)])
            }, referenceLine: (2, "base"), showValues: true, xLabel: "category")
        for (svg, w, h) in [(line.svg(width: 420, height: 320), 420.0, 320.0), (bars.svg(), 640.0, 360.0)] {
            let check = XMLCheck.parse(svg)
            #expect(check.error == nil)
            #expect(noNonFinite(svg))
            for e in check.elements {
                for key in ["x", "x1", "x2", "cx"] {
                    if let v = e.attributes[key].flatMap(Double.init) { #expect(v >= 0 && v <= w) }
                }
                for key in ["y", "y1", "y2", "cy"] {
                    if let v = e.attributes[key].flatMap(Double.init) { #expect(v >= 0 && v <= h) }
                }
            }
        }
        #expect(line.svg(width: 420, height: 320).contains("…"))
    }
}
