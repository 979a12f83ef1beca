// RunCommand.swift: `vldctl validate FILE` and `vldctl run FILE` (foreground, no daemon needed).

import Foundation
import VLDExperiments
import VLDModel

enum ValidateCommand {
    static let usage = """
        usage: vldctl validate FILE...

        Checks manifests without running them. Prints "ok", the trial count and what the trials
        cost (the most parameters and memory of any trial, the FLOPs of all of them, from each kind's
        estimate) for each valid file, or every problem with its JSON path. Exit status 0 when all
        files are valid, 1 otherwise.
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.contains("-h") || args.contains("--help") { print(usage); return 0 }
        let p = try CLI.parse(args, options: [], flags: [])
        guard !p.positional.isEmpty else { throw UsageError(message: "validate needs a manifest file\n\(usage)") }
        var status: Int32 = 0
        for file in p.positional {
            do {
                let e = try loadExperiment(file)
                let total = e.trials.map(\.manifest.body.progress.total).reduce(0, +)
                let unit = e.trials.first?.manifest.body.progress.unit ?? "steps"
                print(
                    "\(DisplayText.escaped(file)): ok, \(e.trials.count) trial\(e.trials.count == 1 ? "" : "s") (\(total) \(unit) in all)"
                )
                if !e.stages.isEmpty {
                    let order = e.stages.map { s in
                        "\(s.name) (\(s.trials.count) trial\(s.trials.count == 1 ? "" : "s")"
                            + (s.needs.isEmpty ? ")" : ", needs \(s.needs.joined(separator: ", ")))")
                    }
                    print("  stages in order: " + order.joined(separator: "; "))
                }
                let estimates = e.trials.compactMap { try? e.estimate($0) }
                if let largest = estimates.max(by: { $0.parameters < $1.parameters }) {
                    let flops = estimates.map(\.flops).reduce(0, +)
                    print(
                        "  up to \(largest.parameters) parameters and about "
                            + "\(Int(estimates.map(\.memoryMiB).max()!.rounded(.up))) MiB per trial; "
                            + "\(formatNumber(flops, significant: 3)) FLOPs in all"
                            + (e.trials.contains { $0.manifest.kind == "distill" }
                                ? " (teachers' forward passes included)" : ""))
                }
            } catch let e as ManifestError {
                status = 1
                // One line per issue, whatever the manifest's strings hold (DisplayText).
                for issue in e.issues { print(DisplayText.escaped("\(file): \(issue)")) }
            }
        }
        return status
    }

    static func loadExperiment(_ file: String) throws -> Experiment {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            throw ManifestError([
                ManifestIssue(path: "", message: "cannot read the file: \(error.localizedDescription)")
            ])
        }
        return try Experiment.parse(data)
    }
}

enum RunCommand {
    static let usage = """
        usage: vldctl run FILE [--out DIR] [--threads N] [--trials LIST]

        Runs every trial of the manifest in the foreground, one after another, and writes
        DIR/<name>/<trial>/ (manifest.json, metrics.jsonl, log.txt, checkpoint/, report.html,
        results.json) and the comparison DIR/<name>/summary.json, summary.csv and report.html.
        On a terminal it shows a progress bar with ETAs; otherwise it prints one line per evaluation.
        Ctrl-C checkpoints the running trial and stops; the same command resumes where it stopped.
        The same command started in several processes (for example one per core with
        `taskset -c N ... --threads 1`) shares the trials out: each trial is locked while one
        process runs it and the others skip it.
        A manifest with `stages` (a pipeline) runs them in dependency order: a stage starts when
        the stages it needs have finished (a process waits for those another process is running),
        and "@stage" in `init` reads that stage's final checkpoint from DIR/<name>/.

          --out      output directory (default ./var/results)
          --threads  worker threads per trial (default: the manifest's resources.threads)
          --trials   only these trials, numbered from 1 as in the progress lines: 3 or 2-5 or 1,4-6
                     (the summary still covers every finished trial)
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.contains("-h") || args.contains("--help") { print(usage); return 0 }
        let p = try CLI.parse(args, options: ["--out", "--threads", "--trials"], flags: [])
        guard p.positional.count == 1 else {
            throw UsageError(message: "run needs exactly one manifest file\n\(usage)")
        }
        let file = p.positional[0]
        let threads =
            p.values["--threads"] == nil ? nil : try CLI.int(p.values, "--threads", default: 1, max: CLI.maxThreads)
        let out = URL(fileURLWithPath: p.values["--out"] ?? "var/results")
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: file)) } catch {
            CLI.error("\(file): cannot read the file: \(error.localizedDescription)")
            return 1
        }
        let experiment: Experiment
        do { experiment = try Experiment.parse(data) } catch let e as ManifestError {
            for issue in e.issues { CLI.error("\(file): \(issue)") }
            return 1
        }
        var only: Set<Int>?
        if let list = p.values["--trials"] {
            guard let picked = parseTrialList(list, count: experiment.trials.count) else {
                throw UsageError(
                    message:
                        "--trials \(list): expected trial numbers or ranges between 1 and \(experiment.trials.count), such as 2-5 or 1,4-6"
                )
            }
            only = picked
        }
        StopRequest.install()
        let tty = isatty(STDOUT_FILENO) == 1
        let bar = ProgressLine(enabled: tty)
        print(
            "vld \(VLD.version): \(experiment.name), \(experiment.trials.count) trial(s) -> \(out.appendingPathComponent(experiment.name).path)"
        )
        let outcome = try ExperimentRunner.run(
            experiment, source: data, out: out, threads: threads, only: only,
            log: { line in
                bar.clear()
                print(DisplayText.escaped(line))
                fflush(stdout)
            },
            progress: { p in
                bar.show(p)
            }, shouldStop: { StopRequest.requested })
        bar.clear()
        if outcome.stopped {
            print("stopped: \(outcome.completed) of \(outcome.total) trials complete; run the same command to resume")
            return 130
        }
        if outcome.elsewhere > 0 {
            print(
                "\(outcome.completed) of \(outcome.total) trials complete; \(outcome.elsewhere) still running in other processes"
            )
            return 0
        }
        if only != nil, outcome.completed < outcome.total {
            print("the selected trials are done; \(outcome.completed) of \(outcome.total) trials complete")
            return 0
        }
        print("done: \(outcome.completed) of \(outcome.total) trials")
        print("summary: \(outcome.directory.appendingPathComponent(Summary.csvFile).path)")
        print("report:  \(outcome.directory.appendingPathComponent(Summary.reportFile).path)")
        SummaryTable.print(directory: outcome.directory)
        return outcome.completed == outcome.total ? 0 : 1
    }
}

/// "3", "2-5", "1,4-6" (1-based, inclusive) as 0-based indexes; nil when malformed or out of 1...count.
func parseTrialList(_ text: String, count: Int) -> Set<Int>? {
    var picked = Set<Int>()
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        let ends = part.split(separator: "-", omittingEmptySubsequences: false).map {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        guard (1...2).contains(ends.count), let lo = ends.first!, let hi = ends.last!, 1 <= lo, lo <= hi, hi <= count
        else { return nil }
        picked.formUnion((lo - 1)..<hi)
    }
    return picked
}

/// A one-line progress bar redrawn in place on a terminal.
final class ProgressLine {
    let enabled: Bool
    var visible = false
    var last = Date.distantPast
    init(enabled: Bool) { self.enabled = enabled }

    func show(_ p: ExperimentProgress) {
        guard enabled else { return }
        let now = Date()
        guard now.timeIntervalSince(last) > 0.2 || p.progress.step == p.progress.steps else { return }
        last = now
        let width = 24
        let frac = Double(p.progress.step) / Double(max(1, p.progress.steps))
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line =
            "trial \(p.trialIndex + 1)/\(p.trialCount) [\(bar)] \(p.progress.step)/\(p.progress.steps) "
            + String(format: "loss %.4f  %.0f tok/s", p.progress.loss, p.progress.tokensPerSecond)
            + "  ETA \(formatDuration(p.progress.etaSeconds)) (all: \(formatDuration(p.experimentETA)))"
        FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8))
        visible = true
    }

    func clear() {
        guard enabled, visible else { return }
        FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
        visible = false
    }
}

/// Prints the headline columns of summary.json as a table.
enum SummaryTable {
    static func print(directory: URL) {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent(Summary.jsonFile)),
            let json = try? JSONValue.parse(data), case let .array(conds)? = json["conditions"]
        else { return }
        var keys: [String] = []
        for c in conds {
            if case let .object(f)? = c["metrics"] {
                for (k, _) in f where HeadlineMetrics.contains(k) && !keys.contains(k) { keys.append(k) }
            }
        }
        let header = ["condition", "n"] + keys
        var rows: [[String]] = [header]
        for c in conds {
            guard case let .string(label)? = c["condition"] else { continue }
            var row = [DisplayText.escaped(label)]
            var n = "0"
            if case let .number(v)? = c["metrics"]?[keys.first ?? "evalLoss"]?["n"] { n = String(Int(v)) }
            row.append(n)
            for k in keys {
                if case let .number(v)? = c["metrics"]?[k]?["mean"] {
                    let percent = HeadlineMetrics.isPercent(k)
                    var cell = percent ? String(format: "%.1f%%", 100 * v) : formatNumber(v, significant: 4)
                    if case let .array(ci)? = c["metrics"]?[k]?["ci95"], ci.count == 2, case let .number(lo) = ci[0],
                        case let .number(hi) = ci[1]
                    {
                        cell +=
                            percent
                            ? String(format: " [%.1f, %.1f]", 100 * lo, 100 * hi)
                            : " [\(formatNumber(lo, significant: 3)), \(formatNumber(hi, significant: 3))]"
                    }
                    row.append(cell)
                } else {
                    row.append("—")
                }
            }
            rows.append(row)
        }
        let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        for row in rows {
            Swift.print(
                row.enumerated().map { i, c in
                    i == 0
                        ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - c.count) + c
                }.joined(separator: "  "))
        }
    }
}
