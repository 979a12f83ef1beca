// ResultsCommand.swift: `vldctl results ID|DIR`, a finished job's or trial directory's metrics,
// a grid's summary.csv, and a tts trial's compute-optimal selector table.

import Foundation
import VLDJSON
import VLDCore
import VLDExperiments
import VLDStore

extension DaemonCommands {
    // MARK: results

    static func results(_ args: [String]) throws -> Int32 {
        if help(
            args,
            "usage: vldctl results ID|DIR [--json | --csv]\n\nThe final metrics of a succeeded job and where its outbox directory is; for a grid trial,\n--csv prints the grid's summary.csv once every trial has ended. DIR reads a finished trial's\ndirectory instead (vldctl run's output, or an outbox directory). A tts trial adds its\ncompute-optimal selector: the strategy per budget and difficulty bin; a phase trial its ladders\n(gamma and phase per step), the panel's correlations and the width normalization's verdict; a\nsteer trial the best steering per model beside the random direction."
        ) {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--json", "--csv"])
        guard p.positional.count == 1 else { throw UsageError(message: "results needs one job id or trial directory") }
        guard let id = Int(p.positional[0]) else {
            let dir = TrialDirectory(URL(fileURLWithPath: p.positional[0]))
            guard dir.isComplete, let results = dir.readResults() else {
                throw UsageError(
                    message:
                        "\(DisplayText.escaped(p.positional[0])) is neither a job id nor a finished trial's directory (no results.json)"
                )
            }
            if p.flags.contains("--json") {
                printJSON(results)
                return 0
            }
            printResults(results)
            print("report: \(DisplayText.escaped(dir.report.path))")
            return 0
        }
        guard
            let response = try DaemonTarget.resolve(p.values).call([
                "op": "results", "id": JSONValue(id), "summary": .bool(p.flags.contains("--csv")),
            ])
        else { return 1 }
        if p.flags.contains("--json") {
            printJSON(response["results"] ?? [:])
            return 0
        }
        if p.flags.contains("--csv") {
            if let raw = response["summaryCSV"]?.stringValue {
                let csv = DisplayText.escaped(raw, keepingNewlines: true)
                print(csv, terminator: csv.hasSuffix("\n") ? "" : "\n")
                return 0
            }
            CLI.error("job \(id) has no grid summary (it is not part of a grid, or its grid has not finished)")
            return 1
        }
        let results: JSONValue = response["results"] ?? [:]
        print("job \(id): \(shown(response["outbox"]))")
        if let s = response["summary"]?.stringValue { print("grid summary: \(DisplayText.escaped(s))/report.html") }
        printResults(results)
        print("report: \(shown(response["outbox"]))/report.html")
        return 0
    }

    /// A finished trial's metrics as a table, and a tts trial's selector table.
    static func printResults(_ results: JSONValue) {
        var metrics: [String: JSONValue] = [:]
        if case let .object(fields)? = results["metrics"] { for (k, v) in fields { metrics[k] = v } }
        let training: JSONValue = results["training"] ?? [:]
        for key in ["evalLoss", "finalTrainLoss", "tokensSeen", "steps"] {
            if let v = training[key] { metrics[key] = v }
        }
        if let wall = results["timing"]?["wallSeconds"] { metrics["wallSeconds"] = wall }
        let rows = metrics.keys.sorted().map { key -> [String] in
            let v = metrics[key]!
            if let d = v.doubleValue {
                return [
                    DisplayText.escaped(key), String(format: abs(d) >= 1000 || d == d.rounded() ? "%.0f" : "%.4f", d),
                ]
            }
            return [DisplayText.escaped(key), DisplayText.escaped(v.stringValue ?? v.serialized(pretty: false))]
        }
        if !rows.isEmpty { print(table(["METRIC", "VALUE"], rows)) }
        for t in PhaseReport.textTables(results) {
            print("\n\(DisplayText.escaped(t.title)):")
            print(table(t.headers.map { $0.uppercased() }, t.rows.map { $0.map { DisplayText.escaped($0) } }))
        }
        for bins in ["predicted", "oracle"] {
            guard let t = TTSReport.selectorTable(results, bins: bins) else { continue }
            print(
                "\ncompute-optimal selector, \(bins) difficulty bins (accuracy %, 95% bootstrap; selector and single 2-fold CV):"
            )
            print(table(t.headers.map { $0.uppercased() }, t.rows.map { $0.map { DisplayText.escaped($0) } }))
        }
    }
}
