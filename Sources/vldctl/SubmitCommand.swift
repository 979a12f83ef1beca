// SubmitCommand.swift: `vldctl submit`, through the control socket or, when vldd is down, as an
// atomic drop into its spool; `--wait` follows the jobs and prints the comparison table.

import Foundation
import VLDJSON
import VLDCore
import VLDExperiments

extension DaemonCommands {
    // MARK: submit

    static func submit(_ args: [String]) throws -> Int32 {
        if help(
            args,
            """
            usage: vldctl submit FILE... [--json] [--wait]

            Validates each manifest and queues it with vldd through the control socket. When the daemon is
            not running, the file is dropped atomically into its spool (spool/tmp, then a rename into
            spool/incoming) and queued when vldd starts. Prints the manifest and job ids.

              --wait   wait (up to 15 s) for the daemon to answer, then follow the jobs with a progress
                       line until they end, and print the result table and where the report is
            """)
        {
            return 0
        }
        let p = try CLI.parse(args, options: DaemonTarget.options, flags: ["--json", "--wait"])
        guard !p.positional.isEmpty else { throw UsageError(message: "submit needs at least one manifest file") }
        let target = DaemonTarget.resolve(p.values)
        if p.flags.contains("--wait") {
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline, (try? target.request(["op": "status"])) == nil { usleep(100_000) }
        }
        var submitted: [Int] = []
        var status: Int32 = 0
        var out: [JSONValue] = []
        for file in p.positional {
            let shownFile = DisplayText.escaped(file)
            guard let data = FileManager.default.contents(atPath: file) else {
                CLI.error("\(shownFile): cannot read: \(String(cString: strerror(errno)))")
                status = 1
                continue
            }
            let name = (file as NSString).lastPathComponent
            do {
                let response = try target.request([
                    "op": "submit", "manifest": .string(String(decoding: data, as: UTF8.self)),
                    "fileName": .string(name),
                ])
                if response["ok"]?.boolValue == true {
                    out.append([
                        "file": .string(file), "manifest": response["manifest"] ?? 0, "jobs": response["jobs"] ?? [],
                    ])
                    submitted += (response["jobs"]?.arrayValue?.compactMap({ $0.intValue })) ?? []
                    if !p.flags.contains("--json") {
                        let jobs = (response["jobs"]?.arrayValue?.compactMap({ $0.intValue })) ?? []
                        let range = jobs.count > 1 ? "jobs \(jobs.first!)-\(jobs.last!)" : "job \(jobs.first ?? 0)"
                        print(
                            "\(shownFile): queued \(shown(response["name"])) as manifest \(response["manifest"]?.intValue ?? 0), \(range)"
                        )
                    }
                } else {
                    CLI.error("\(shownFile): \(shown(response["error"], or: "refused"))")
                    for issue in response["issues"]?.arrayValue ?? [] {
                        let path = shown(issue["path"])
                        FileHandle.standardError.write(
                            Data("  \(path.isEmpty ? "" : path + ": ")\(shown(issue["message"]))\n".utf8))
                    }
                    status = 1
                }
            } catch is DaemonDown {
                guard let config = target.config else {
                    CLI.error(
                        "vldd is not running at \(target.socket) and \(target.configPath) cannot be read to find its spool"
                    )
                    return 1
                }
                let tree = StateTree(root: config.stateDirectory)
                do {
                    let dropped = try drop(data, name: name, tree: tree)
                    print(
                        "\(shownFile): vldd is not running; dropped into its spool as \(dropped) (it is queued when vldd starts)"
                    )
                    out.append(["file": .string(file), "spooled": .string(dropped)])
                } catch {
                    CLI.error("\(shownFile): vldd is not running and the spool is not writable: \(error)")
                    status = 1
                }
            }
        }
        if p.flags.contains("--json") { printJSON(.array(out)) }
        if p.flags.contains("--wait") && !submitted.isEmpty {
            let waited = try follow(submitted, target: target)
            return status == 0 ? waited : status
        }
        return status
    }

    /// Shows progress until every job in `ids` has ended; prints the results. 0 if all succeeded.
    static func follow(_ ids: [Int], target: DaemonTarget) throws -> Int32 {
        let tty = isatty(1) == 1
        var lastLine = ""
        var jobs: [JSONValue] = []
        while true {
            guard let r = try target.call(["op": "list", "all": true]) else { return 1 }
            let wanted = Set(ids)
            jobs = (r["jobs"]?.arrayValue ?? []).filter { wanted.contains($0["id"]?.intValue ?? 0) }
                .sorted { ($0["id"]?.intValue ?? 0) < ($1["id"]?.intValue ?? 0) }
            let finished = jobs.filter {
                ["succeeded", "failed", "cancelled"].contains($0["state"]?.stringValue ?? "")
            }
            let running = jobs.first { $0["state"]?.stringValue == "running" }
            var line = "\(finished.count)/\(ids.count) jobs done"
            if let job = running, let step = job["step"]?.intValue, let total = job["totalSteps"]?.intValue, total > 0 {
                let filled = Int(Double(step) / Double(total) * 24)
                let name = shown(job["name"])
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: 24 - filled)
                line += "  job \(job["id"]?.intValue ?? 0) \(name) [\(bar)] \(step)/\(total)"
                if let loss = job["loss"]?.doubleValue { line += String(format: " loss %.4f", loss) }
                line += " eta \(shortDuration((job["etaSeconds"]?.intValue).map(Double.init)))"
            }
            if tty {
                FileHandle.standardOutput.write(Data(("\r\u{1B}[K" + line).utf8))
            } else if line.split(separator: "[").first != lastLine.split(separator: "[").first {
                print(line)
            }
            lastLine = line
            if finished.count == ids.count { break }
            sleep(1)
        }
        if tty { print("") }
        var status: Int32 = 0
        for job in jobs where job["state"]?.stringValue != "succeeded" {
            CLI.error(
                "job \(job["id"]?.intValue ?? 0) \(shown(job["name"])) \(shown(job["state"])): \(shown(job["error"]))")
            status = 1
        }
        var summaries: [String] = []
        var perManifest: [Int: Int] = [:]
        for job in jobs { perManifest[job["manifest"]?.intValue ?? 0, default: 0] += 1 }
        for job in jobs where job["state"]?.stringValue == "succeeded" {
            guard let id = job["id"]?.intValue, var r = try target.call(["op": "results", "id": JSONValue(id)]) else {
                continue
            }
            // A grid's summary is written just after its last trial ends.
            let deadline = Date().addingTimeInterval(10)
            while r["summary"] == nil, perManifest[job["manifest"]?.intValue ?? 0, default: 0] > 1, Date() < deadline {
                usleep(200_000)
                r = try target.call(["op": "results", "id": JSONValue(id)]) ?? r
            }
            if let summary = (r["summary"]?.stringValue).map({ DisplayText.escaped($0) }) {
                if !summaries.contains(summary) { summaries.append(summary) }
            } else if let outbox = (r["outbox"]?.stringValue).map({ DisplayText.escaped($0) }) {
                print("job \(id) \(shown(job["name"])): \(outbox)/report.html")
            }
        }
        for summary in summaries {
            SummaryTable.print(directory: URL(fileURLWithPath: summary))
            print("summary: \(summary)/summary.csv")
            print("report:  \(summary)/report.html")
        }
        return status
    }

    /// tmp/<name>.<random>.json.part, fsync, rename to incoming/<name>.<random>.json.
    static func drop(_ data: Data, name: String, tree: StateTree) throws -> String {
        let base = name.hasSuffix(".json") ? String(name.dropLast(5)) : name
        let safe = String(base.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }.prefix(100))
        let final = "\(safe).\(UUID().uuidString.prefix(8).lowercased()).json"
        let tmp = tree.spoolTmp + "/" + final + ".part"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SystemError("create", path: tmp) }
        let ok = data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                offset += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok else { unlink(tmp); throw SystemError("write", path: tmp) }
        guard rename(tmp, tree.incoming + "/" + final) == 0 else {
            let e = errno; unlink(tmp); throw SystemError("rename into", path: tree.incoming, code: e)
        }
        return tree.incoming + "/" + final
    }
}
