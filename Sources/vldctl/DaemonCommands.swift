// DaemonCommands.swift: the vldctl commands that talk to vldd through its control socket.
//
// Where the daemon is: --socket PATH, else $VLD_SOCKET, else the `socket` (or
// <state_dir>/control.sock) of --config FILE, ./etc/vldd/vldd.conf if it exists, or
// /etc/vldd/vldd.conf. Every listing takes --json for scripts. Exit status: 0 ok, 1 the daemon
// refused or failed, 64 usage.

import Foundation
import VLDJSON
import VLDCore
import VLDExperiments
import VLDStore

struct DaemonTarget {
    let socket: String
    let config: DaemonConfig?
    let configPath: String
    var configError: String? = nil

    static let options: Set<String> = ["--socket", "--config"]

    static func resolve(_ values: [String: String]) -> DaemonTarget {
        let path =
            values["--config"]
            ?? (FileManager.default.fileExists(atPath: "etc/vldd/vldd.conf")
                ? "etc/vldd/vldd.conf" : "/etc/vldd/vldd.conf")
        var config: DaemonConfig?
        var problem: String?
        do { config = try DaemonConfig.load(path) } catch { problem = "\(error)" }
        if let s = values["--socket"] ?? ProcessInfo.processInfo.environment["VLD_SOCKET"] {
            return DaemonTarget(socket: s, config: config, configPath: path, configError: problem)
        }
        let socket =
            config.map {
                $0.socketPath.isEmpty ? StateTree(root: $0.stateDirectory).root + "/control.sock" : $0.socketPath
            }
            ?? "/run/vldd/control.sock"
        return DaemonTarget(socket: socket, config: config, configPath: path, configError: problem)
    }

    func request(_ object: JSONValue) throws -> JSONValue {
        do {
            return try ControlClient.request(path: socket, object)
        } catch let e as ControlUnavailable {
            if let problem = configError {
                throw DaemonDown(
                    message:
                        "\(e.description)\n  (the socket path comes from \(configPath), which cannot be used: \(problem); fix it, or pass --socket PATH)"
                )
            }
            throw DaemonDown(
                message:
                    "\(e.description)\n  is vldd running? Start it with 'vldd --config \(configPath)' (checkout) or 'systemctl start vldd'; 'vldctl doctor' checks the setup"
            )
        }
    }

    /// The response, or the daemon's error printed (with any manifest issues) and exit 1.
    func call(_ object: JSONValue) throws -> JSONValue? {
        let response = try request(object)
        if response["ok"]?.boolValue == true { return response }
        CLI.error(shown(response["error"], or: "the daemon refused the request"))
        for issue in response["issues"]?.arrayValue ?? [] {
            let path = shown(issue["path"])
            FileHandle.standardError.write(
                Data("  \(path.isEmpty ? "" : path + ": ")\(shown(issue["message"]))\n".utf8))
        }
        return nil
    }
}

struct DaemonDown: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A string from the daemon's answer, escaped for the terminal (DisplayText): file names, job
/// names, events and errors can carry what a submitter wrote.
func shown(_ value: JSONValue?, or fallback: String = "") -> String {
    DisplayText.escaped(value?.stringValue ?? fallback)
}

/// JSON for scripts: an array with one element per line, anything else on one line.
func printJSON(_ object: JSONValue) {
    if let array = object.arrayValue {
        print(
            array.isEmpty ? "[]" : "[\n" + array.map { $0.serialized(pretty: false) }.joined(separator: ",\n") + "\n]")
    } else {
        print(object.serialized(pretty: false))
    }
}

/// "3m12s", "1h05m", "-" for nil.
func shortDuration(_ seconds: Double?) -> String {
    guard let s = seconds, s.isFinite, s >= 0 else { return "-" }
    let t = Int(s.rounded())
    if t < 60 { return "\(t)s" }
    if t < 3600 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
    if t < 86_400 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
    return "\(t / 86_400)d\(String(format: "%02d", (t % 86_400) / 3600))h"
}

/// Left-aligned columns; the last column is not padded.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }
        .joined(separator: "  ")
    }.joined(separator: "\n")
}

enum DaemonCommands {
    static func help(_ args: [String], _ text: String) -> Bool {
        if args.contains("-h") || args.contains("--help") {
            print(
                text
                    + "\n\n  --socket PATH   the daemon's control socket\n  --config FILE   vldd.conf to find the socket in"
            )
            return true
        }
        return false
    }

    // MARK: ls

    static func ls(_ args: [String]) throws -> Int32 {
        if help(
            args,
            """
            usage: vldctl ls [--state STATE[,STATE]] [--name TEXT] [--all] [--limit N] [--json]

            Lists jobs, newest first: ID, NAME, KIND, STATE, PROGRESS, ETA, LOSS, AGE. By default everything
            not finished plus what finished in the last day; --all for everything. States: queued, held,
            running, cancelling, succeeded, failed, cancelled. A job of a pipeline stage that waits for the
            jobs of the stages it needs shows them: "queued (needs 3,4)"; a job Slurm has not started yet
            (executor = slurm) is "running (pending on Slurm)".
            """)
        {
            return 0
        }
        let p = try CLI.parse(
            args, options: DaemonTarget.options.union(["--state", "--name", "--limit"]), flags: ["--all", "--json"])
        guard p.positional.isEmpty else {
            throw UsageError(message: "ls takes no arguments; filter with --state and --name")
        }
        var request: JSONValue = ["op": "list", "all": .bool(p.flags.contains("--all"))]
        if let s = p.values["--state"] {
            request = request.setting("states", .array(s.split(separator: ",").map { .string(String($0)) }))
        }
        if let n = p.values["--name"] { request = request.setting("name", .string(n)) }
        if p.values["--limit"] != nil {
            request = request.setting("limit", JSONValue(try CLI.int(p.values, "--limit", default: 100)))
        }
        guard let response = try DaemonTarget.resolve(p.values).call(request) else { return 1 }
        let jobs = response["jobs"]?.arrayValue ?? []
        if p.flags.contains("--json") {
            printJSON(.array(jobs))
            return 0
        }
        if jobs.isEmpty {
            print("no jobs\(p.flags.contains("--all") ? "" : " (vldctl ls --all shows older finished ones)")")
            return 0
        }
        let now = response["now"]?.intValue ?? 0
        let rows = jobs.map { job -> [String] in
            let state = shown(job["state"], or: "?")
            var progress = "-"
            if let step = job["step"]?.intValue, let total = job["totalSteps"]?.intValue, total > 0 {
                progress = "\(Int(100 * Double(step) / Double(total)))% \(step)/\(total)"
            } else if state == "succeeded" {
                progress = "100%"
            }
            let eta = state == "running" ? shortDuration((job["etaSeconds"]?.intValue).map(Double.init)) : "-"
            let loss = (job["loss"]?.doubleValue).map { String(format: "%.4f", $0) } ?? "-"
            let age = shortDuration(Double(now - (job["createdAt"]?.intValue ?? now)) / 1000)
            var stateText = state
            if state == "queued", let nb = job["notBefore"]?.intValue {
                stateText += " (retry in \(shortDuration(Double(nb - now) / 1000)))"
            }
            if (state == "queued" || state == "held"),
                let needs = job["waitingFor"]?.arrayValue?.compactMap({ $0.intValue }), !needs.isEmpty
            {
                stateText += " (needs \(needs.map(String.init).joined(separator: ",")))"
            }
            if state == "running", job["slurmState"]?.stringValue?.hasPrefix("PENDING") == true {
                stateText += " (pending on Slurm)"
            }
            return [
                "\(job["id"]?.intValue ?? 0)", shown(job["name"]), shown(job["kind"]), stateText, progress, eta, loss,
                age,
            ]
        }
        print(table(["ID", "NAME", "KIND", "STATE", "PROGRESS", "ETA", "LOSS", "AGE"], rows))
        return 0
    }

    // MARK: show

    static func show(_ args: [String]) throws -> Int32 {
        if help(
            args,
            "usage: vldctl show ID [--json]\n\nEverything about one job: state, progress, attempts, the reason for a failure, where its\nresults are, and its event history."
        ) {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--json"])
        guard p.positional.count == 1, let id = Int(p.positional[0]) else {
            throw UsageError(message: "show needs one job id")
        }
        guard let response = try DaemonTarget.resolve(p.values).call(["op": "show", "id": JSONValue(id)]) else {
            return 1
        }
        let job = response["job"] ?? [:]
        if p.flags.contains("--json") {
            printJSON(job)
            return 0
        }
        let now = response["now"]?.intValue ?? 0
        func time(_ key: String) -> String? {
            guard let ms = job[key]?.intValue else { return nil }
            let date = Date(timeIntervalSince1970: Double(ms) / 1000)
            return ISO8601DateFormatter().string(from: date) + " (\(shortDuration(Double(now - ms) / 1000)) ago)"
        }
        var lines: [(String, String)] = [
            ("job", "\(job["id"]?.intValue ?? 0)  \(shown(job["name"]))"),
            ("state", shown(job["state"], or: "?")),
            ("kind", shown(job["kind"])),
            ("owner", "\(shown(job["user"])) (uid \(job["uid"]?.intValue ?? 0))"),
            (
                "attempts",
                "\(job["attempts"]?.intValue ?? 0), failures \(job["failures"]?.intValue ?? 0) of \(job["maxFailures"]?.intValue ?? 0)"
            ),
            ("threads", "\(job["threads"]?.intValue ?? 0)"),
        ]
        if let slurm = job["slurmJob"]?.stringValue {
            let state = job["slurmState"]?.stringValue.map { " (\(DisplayText.escaped($0)))" } ?? ""
            lines.append(("slurm job", DisplayText.escaped(slurm) + state))
        }
        if let stage = job["stage"]?.stringValue { lines.append(("stage", DisplayText.escaped(stage))) }
        if let needs = job["waitingFor"]?.arrayValue?.compactMap({ $0.intValue }), !needs.isEmpty {
            lines.append(("waits for", "jobs " + needs.map(String.init).joined(separator: ", ") + " (to succeed)"))
        }
        if let need = job["blockedBy"]?.intValue {
            lines.append(("blocked by", "job \(need) (retry it to queue this again)"))
        }
        if let step = job["step"]?.intValue, let total = job["totalSteps"]?.intValue {
            lines.append(
                (
                    "progress",
                    "step \(step)/\(total)"
                        + ((job["loss"]?.doubleValue).map { String(format: ", loss %.4f", $0) } ?? "")
                        + ((job["etaSeconds"]?.intValue).map { ", eta \(shortDuration(Double($0)))" } ?? "")
                ))
        }
        if let e = job["error"]?.stringValue { lines.append(("error", DisplayText.escaped(e))) }
        if let e = job["exitCode"]?.intValue { lines.append(("exit status", "\(e)")) }
        if let s = job["signal"]?.intValue { lines.append(("signal", "\(s)")) }
        for (label, key) in [
            ("created", "createdAt"), ("started", "startedAt"), ("finished", "finishedAt"),
            ("heartbeat", "heartbeatAt"),
        ] {
            if let t = time(key) { lines.append((label, t)) }
        }
        if let o = job["outbox"]?.stringValue { lines.append(("results", DisplayText.escaped(o))) }
        if let m = job["manifest"], case .object = m {
            lines.append(
                (
                    "manifest",
                    "\(m["id"]?.intValue ?? 0) \(shown(m["fileName"])) (\(m["trials"]?.intValue ?? 0) trials, sha256 \((shown(m["sha256"])).prefix(16)))"
                ))
            if let s = m["summary"]?.stringValue { lines.append(("summary", DisplayText.escaped(s))) }
        }
        if let r = job["runDirectory"]?.stringValue { lines.append(("run directory", DisplayText.escaped(r))) }
        let width = lines.map(\.0.count).max() ?? 0
        for (k, v) in lines { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
        print("\nevents:")
        for e in job["events"]?.arrayValue ?? [] {
            let at = ISO8601DateFormatter().string(
                from: Date(timeIntervalSince1970: Double(e["at"]?.intValue ?? 0) / 1000))
            let transition = (e["from"]?.stringValue).map { "\(DisplayText.escaped($0)) -> " } ?? ""
            print("  \(at)  \(transition)\(shown(e["to"]))  \(shown(e["detail"]))")
        }
        return 0
    }

    // MARK: cancel, hold, release, retry

    static func change(_ op: String, _ args: [String]) throws -> Int32 {
        let abstract: [String: String] = [
            "cancel":
                "usage: vldctl cancel ID...\n\nCancels jobs: queued and held ones at once; a running one gets SIGTERM, checkpoints and stops\n(SIGKILL after the grace period). Only the owner, root or the daemon's user may cancel a job.",
            "hold": "usage: vldctl hold ID\n\nKeeps a queued job from starting until 'vldctl release ID'.",
            "release": "usage: vldctl release ID\n\nLets a held job run again.",
            "retry":
                "usage: vldctl retry ID\n\nQueues a failed or cancelled job again with a fresh failure count; it resumes from its last\ncheckpoint.",
        ]
        if help(args, abstract[op] ?? "") { return 0 }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--json"])
        let ids = p.positional.compactMap { Int($0) }
        guard !ids.isEmpty, ids.count == p.positional.count, op == "cancel" || ids.count == 1 else {
            throw UsageError(message: op == "cancel" ? "cancel needs job ids" : "\(op) needs one job id")
        }
        let target = DaemonTarget.resolve(p.values)
        if op == "cancel" {
            let response = try target.request(["op": "cancel", "ids": JSONValue(ids)])
            if p.flags.contains("--json") { printJSON(response) }
            for r in response["results"]?.arrayValue ?? [] {
                if r["ok"]?.boolValue == true {
                    if !p.flags.contains("--json") { print("job \(r["id"]?.intValue ?? 0): \(shown(r["state"]))") }
                } else {
                    CLI.error("job \(r["id"]?.intValue ?? 0): \(shown(r["error"], or: "refused"))")
                }
            }
            if response["results"] == nil, let e = response["error"]?.stringValue { CLI.error(DisplayText.escaped(e)) }
            return response["ok"]?.boolValue == true ? 0 : 1
        }
        guard let response = try target.call(["op": .string(op), "id": JSONValue(ids[0])]) else { return 1 }
        let job = response["job"] ?? [:]
        if p.flags.contains("--json") { printJSON(job) } else { print("job \(ids[0]): \(shown(job["state"]))") }
        return 0
    }

    // MARK: logs

    static func logs(_ args: [String]) throws -> Int32 {
        if help(
            args,
            "usage: vldctl logs ID [-f]\n\nPrints a job's output (its training log). -f follows it until the job ends.")
        {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["-f", "--follow"])
        guard p.positional.count == 1, let id = Int(p.positional[0]) else {
            throw UsageError(message: "logs needs one job id")
        }
        let target = DaemonTarget.resolve(p.values)
        let follow = p.flags.contains("-f") || p.flags.contains("--follow")
        var offset = 0
        while true {
            guard let response = try target.call(["op": "logs", "id": JSONValue(id), "offset": JSONValue(offset)])
            else { return 1 }
            // The job's own log: lines stay lines, anything else unsafe is escaped.
            let text = DisplayText.escaped(response["text"]?.stringValue ?? "", keepingNewlines: true)
            if !text.isEmpty { FileHandle.standardOutput.write(Data(text.utf8)) }
            offset = response["next"]?.intValue ?? offset
            if !follow { return 0 }
            if text.isEmpty {
                if response["done"]?.boolValue == true { return 0 }
                usleep(500_000)
            }
        }
    }

    // MARK: status

    static func status(_ args: [String]) throws -> Int32 {
        if help(
            args,
            "usage: vldctl status [--json]\n\nThe daemon's version, uptime, queue counts, running jobs and limits.")
        {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--json"])
        guard let r = try DaemonTarget.resolve(p.values).call(["op": "status"]) else { return 1 }
        if p.flags.contains("--json") {
            printJSON(r)
            return 0
        }
        let counts = r["counts"] ?? [:]
        print(
            "vldd \(shown(r["version"])) pid \(r["pid"]?.intValue ?? 0), up \(shortDuration(r["uptimeSeconds"]?.doubleValue))"
        )
        print("state \(shown(r["state"])), config \(shown(r["config"])), submit group \(shown(r["submitGroup"]))")
        if r["executor"]?.stringValue == "slurm" {
            print("executor slurm: each job runs as a Slurm job ('vldctl show ID' gives its Slurm id)")
        }
        print(
            "workers \(r["workers"]?.intValue ?? 0), threads \(r["totalThreads"]?.intValue ?? 0) (\(r["threadsPerJob"]?.intValue ?? 0) per job by default), SQLite \(shown(r["sqlite"]))"
        )
        print(
            "jobs: "
                + JobState.allCases.map { "\(counts[$0.rawValue]?.intValue ?? 0) \($0.rawValue)" }.joined(
                    separator: ", "))
        if case let .object(limits)? = r["limits"] {
            print(
                "limits: "
                    + limits.sorted { $0.0 < $1.0 }.map { "\($0.0) \($0.1.intValue ?? 0)" }.joined(separator: ", "))
        }
        for job in r["running"]?.arrayValue ?? [] {
            let step = job["step"]?.intValue, total = job["totalSteps"]?.intValue
            print(
                "  running \(job["id"]?.intValue ?? 0) \(shown(job["name"]))"
                    + (step.map { " step \($0)/\(total ?? 0)" } ?? "")
                    + ((job["etaSeconds"]?.intValue).map { " eta \(shortDuration(Double($0)))" } ?? ""))
        }
        return 0
    }

    // MARK: watch

    static func watch(_ args: [String]) throws -> Int32 {
        if help(
            args,
            "usage: vldctl watch [--interval SECONDS]\n\nA live view of running and queued jobs with progress bars; Ctrl-C to leave."
        ) {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options.union(["--interval"]), flags: [])
        let interval = try CLI.int(p.values, "--interval", default: 1, min: 1, max: 3600)
        let target = DaemonTarget.resolve(p.values)
        let tty = isatty(1) == 1
        while true {
            guard let r = try target.call(["op": "list", "states": ["running", "cancelling", "queued", "held"]]) else {
                return 1
            }
            let jobs = (r["jobs"]?.arrayValue ?? []).sorted {
                ($0["id"]?.intValue ?? 0) < ($1["id"]?.intValue ?? 0)
            }
            var out = tty ? "\u{1B}[H\u{1B}[2J" : ""
            out +=
                "vldctl watch  \(ISO8601DateFormatter().string(from: Date()))  \(jobs.filter { $0["state"]?.stringValue == "running" }.count) running, \(jobs.filter { $0["state"]?.stringValue == "queued" }.count) queued\n\n"
            for job in jobs {
                let state = shown(job["state"])
                var line =
                    String(format: "%5d  ", job["id"]?.intValue ?? 0)
                    + (shown(job["name"])).padding(toLength: 40, withPad: " ", startingAt: 0) + "  "
                if let step = job["step"]?.intValue, let total = job["totalSteps"]?.intValue, total > 0 {
                    let fraction = Double(step) / Double(total)
                    let filled = Int(fraction * 24)
                    line +=
                        "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 24 - filled) + "]"
                    line += String(format: " %3d%%", Int(fraction * 100))
                    line += "  eta " + shortDuration((job["etaSeconds"]?.intValue).map(Double.init))
                    if let loss = job["loss"]?.doubleValue { line += String(format: "  loss %.4f", loss) }
                } else {
                    line += state
                }
                out += line + "\n"
            }
            if jobs.isEmpty { out += "nothing running or queued\n" }
            FileHandle.standardOutput.write(Data(out.utf8))
            if !tty && jobs.isEmpty { return 0 }
            sleep(UInt32(interval))
        }
    }
}
