// DaemonTests.swift: the built vldd and vldctl as separate processes, with real files, sockets
// and signals in a fresh state tree per test.

import Foundation
import Testing

/// A vldd process on its own state tree.
final class DaemonHarness {
    let dir: URL
    let configPath: String
    let state: String
    var process: Process?
    let logPath: String
    var environment: [String: String] = [:]

    init(extraConfig: String = "", ingestGrace: Double = 2) {
        dir = scratch()
        state = dir.appendingPathComponent("state").path
        configPath = dir.appendingPathComponent("vldd.conf").path
        logPath = dir.appendingPathComponent("vldd.log").path
        let text =
            "state_dir = \(state)\nretry_base_seconds = 0.2\njob_stop_grace_seconds = 20\ningest_grace_seconds = \(ingestGrace)\n"
            + extraConfig
        try! text.write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    }

    deinit {
        if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }

    var socket: String { state + "/control.sock" }
    var incoming: String { state + "/spool/incoming" }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Starts vldd and waits until it answers on its socket.
    func start(_ extra: [String] = []) throws {
        let p = Process()
        p.executableURL = products.appendingPathComponent("vldd")
        p.arguments = ["--config", configPath] + extra
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let handle = FileHandle(forWritingAtPath: logPath)!
        handle.seekToEndOfFile()
        p.standardError = handle
        p.standardOutput = handle
        try p.run()
        process = p
        guard extra.contains("--exit-when-idle") == false else { return }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if log.contains("vldd ready"), (try? ctl(["status"]))?.status == 0 { return }
            guard p.isRunning else { throw HarnessError("vldd exited: \(log)") }
            usleep(50_000)
        }
        throw HarnessError("vldd did not become ready: \(log)")
    }

    /// Sends `signal` and waits for the process to exit; returns its status and the seconds it took.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM) -> (status: Int32, seconds: Double) {
        guard let p = process else { return (-1, 0) }
        let t0 = Date()
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
        return (p.terminationStatus, Date().timeIntervalSince(t0))
    }

    func ctl(_ args: [String]) throws -> Run {
        try vldctl(args + ["--config", configPath])
    }

    /// Writes `quickManifest(name:...)` to `<file or name>.json` in the test directory; returns its path.
    func writeManifest(_ name: String, steps: Int, checkpointEvery: Int = 10, grid: String = "", file: String? = nil)
        throws -> String
    {
        let path = dir.appendingPathComponent(file ?? "\(name).json").path
        try quickManifest(name: name, steps: steps, grid: grid, checkpointEvery: checkpointEvery).write(
            toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Writes the manifest and submits it with vldctl; the submit must succeed.
    @discardableResult
    func submitManifest(_ name: String, steps: Int, checkpointEvery: Int = 10, grid: String = "", file: String? = nil)
        throws -> String
    {
        let path = try writeManifest(name, steps: steps, checkpointEvery: checkpointEvery, grid: grid, file: file)
        let r = try ctl(["submit", path])
        guard r.status == 0 else { throw HarnessError("submit \(name) failed: \(r.stderr)") }
        return path
    }

    /// vldctl ls --all --json, decoded.
    func jobs() throws -> [[String: Any]] {
        let r = try ctl(["ls", "--all", "--json"])
        guard r.status == 0 else { throw HarnessError("ls failed: \(r.stderr)") }
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]]) ?? []
    }

    /// Waits until `condition` holds for the job list.
    func waitFor(_ what: String, timeout: Double = 120, _ condition: ([[String: Any]]) -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let jobs = try? self.jobs(), condition(jobs) { return }
            usleep(100_000)
        }
        throw HarnessError(
            "timed out waiting for \(what); jobs: \((try? jobs()) ?? []); log: \(log.suffix(3000).replacingOccurrences(of: "\n", with: " | "))"
        )
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// A small biography task: each trial trains and evaluates in about a second.
func quickManifest(name: String, steps: Int = 30, grid: String = "", checkpointEvery: Int = 10) -> String {
    #"{"name": "\#(name)", "seed": 3, "resources": {"threads": 1}, "task": {"type": "bios", "people": 20, "exposures": 10}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": \#(steps), "batch": 8, "evalEvery": \#(checkpointEvery), "checkpointEvery": \#(checkpointEvery)}\#(grid)}"#
}

func states(_ jobs: [[String: Any]]) -> [String] { jobs.compactMap { $0["state"] as? String } }

/// results.json without its timing object (wall time differs between runs).
func resultsWithoutTiming(_ path: String) throws -> [String: Any] {
    var object =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/results.json")))
        as? [String: Any] ?? [:]
    object.removeValue(forKey: "timing")
    return object
}

@Suite(.serialized) struct DaemonTests {
    @Test func submitRunsPublishesAndSummarizesAGrid() throws {
        let d = DaemonHarness()
        try d.start()
        let file = d.dir.appendingPathComponent("g.json").path
        try quickManifest(name: "g", steps: 10, grid: #", "grid": {"model.schedule": ["base", "cyc(1)"]}"#)
            .write(toFile: file, atomically: true, encoding: .utf8)
        let submit = try d.ctl(["submit", file])
        #expect(submit.status == 0, "\(submit.stderr)")
        #expect(submit.stdout.contains("queued g as manifest 1, jobs 1-2"))
        try d.waitFor("both trials to succeed") { states($0) == ["succeeded", "succeeded"] }
        let outbox = try FileManager.default.contentsOfDirectory(atPath: d.state + "/outbox").sorted()
        #expect(outbox.contains("1-g-000-schedule=base-seed3") && outbox.contains("2-g-001-schedule=cyc-1--seed3"))
        try d.waitFor("the summary") { _ in
            FileManager.default.fileExists(atPath: d.state + "/outbox/summary-1-g/summary.csv")
        }
        for name in [
            "manifest.json", "metrics.jsonl", "results.json", "report.html", "log.txt", "checkpoint/model.safetensors",
        ] {
            #expect(
                FileManager.default.fileExists(atPath: d.state + "/outbox/1-g-000-schedule=base-seed3/" + name),
                "\(name)")
        }
        let ls = try d.ctl(["ls"])
        #expect(ls.stdout.hasPrefix("ID  NAME"))
        #expect(ls.stdout.contains("g/001-schedule=cyc-1--seed3") && ls.stdout.contains("succeeded"))
        let show = try d.ctl(["show", "2"])
        #expect(show.stdout.contains("running -> succeeded  results published at"))
        let logs = try d.ctl(["logs", "2", "-f"])
        #expect(
            logs.status == 0 && logs.stdout.contains("schedule cyc(1)") && logs.stdout.contains("done in"),
            "\(logs.stdout)")
        let results = try d.ctl(["results", "2"])
        #expect(results.stdout.contains("evalLoss") && results.stdout.contains("grid summary: "), "\(results.stdout)")
        let csv = try d.ctl(["results", "1", "--csv"])
        #expect(csv.status == 0 && csv.stdout.hasPrefix("trial,condition,seed"))
        let bad = try d.ctl(["show", "99"])
        #expect(bad.status == 1 && bad.stderr.contains("no job 99"))
        let stopped = d.stop()
        #expect(stopped.status == 0 && d.log.contains("vldd: stopped"))
    }

    @Test func invalidSubmissionsNameEveryErrorAndChangeNothing() throws {
        let d = DaemonHarness()
        try d.start()
        let file = d.dir.appendingPathComponent("bad.json").path
        try #"{"name": "bad", "task": {"type": "bios"}, "model": {"schedule": "cyk(2)"}, "train": {"steps": -1}}"#
            .write(toFile: file, atomically: true, encoding: .utf8)
        let r = try d.ctl(["submit", file])
        #expect(r.status == 1)
        #expect(r.stderr.contains("model.schedule: ") && r.stderr.contains("train.steps: "))
        #expect(try d.jobs().isEmpty)
        // The spool rejects the same file with a reason file, and the daemon keeps serving.
        try FileManager.default.copyItem(atPath: file, toPath: d.incoming + "/bad.json")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline,
            !(try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/rejected")).contains(where: {
                $0.hasSuffix(".reason.json")
            })
        {
            usleep(50_000)
        }
        let reasons = try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/rejected").filter {
            $0.hasSuffix(".reason.json")
        }
        #expect(reasons.count == 1)
        #expect(try d.ctl(["status"]).status == 0)
    }

    @Test func spoolDeliveriesOfEveryProducerStyleGiveOneJobEach() throws {
        let d = DaemonHarness()
        try d.start()
        let body = quickManifest(name: "p", steps: 2, checkpointEvery: 2)
        // tmp + rename
        let tmp = d.state + "/spool/tmp/a.json.part"
        try body.write(toFile: tmp, atomically: false, encoding: .utf8)
        #expect(rename(tmp, d.incoming + "/a.json") == 0)
        // a plain copy written in chunks straight into incoming/ (parsed only once complete)
        let fd = open(d.incoming + "/b.json", O_CREAT | O_WRONLY, 0o644)
        let bytes = Array(body.utf8)
        for chunk in stride(from: 0, to: bytes.count, by: 64) {
            _ = bytes[chunk..<min(bytes.count, chunk + 64)].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            usleep(20_000)
        }
        close(fd)
        // O_TMPFILE + linkat: only IN_CREATE is reported for it
        let oTmpfile: Int32 = 0o20200000  // O_TMPFILE (Glibc does not export it without _GNU_SOURCE)
        let anonymous = open(d.incoming, oTmpfile | O_WRONLY | O_CLOEXEC, 0o644)
        #expect(anonymous >= 0)
        _ = bytes.withUnsafeBytes { write(anonymous, $0.baseAddress, $0.count) }
        #expect(
            linkat(AT_FDCWD, "/proc/self/fd/\(anonymous)", AT_FDCWD, d.incoming + "/c.json", AT_SYMLINK_FOLLOW) == 0)
        close(anonymous)
        // a dotfile and a .part are never read
        try body.write(toFile: d.incoming + "/.c.json", atomically: false, encoding: .utf8)
        try body.write(toFile: d.incoming + "/d.json.part", atomically: false, encoding: .utf8)
        try d.waitFor("three jobs to succeed") { states($0) == ["succeeded", "succeeded", "succeeded"] }
        let accepted = try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/accepted").sorted()
        #expect(accepted == ["1.json", "2.json", "3.json"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.incoming).sorted() == [".c.json", "d.json.part"])
        // The file written in chunks was read once, complete: its recorded checksum is the whole file's.
        let shown = try d.ctl(["show", "2", "--json"])
        let manifest =
            (try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any])?["manifest"]
            as? [String: Any]
        #expect(manifest?["fileName"] as? String == "b.json")
        let digest = Process()
        digest.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let pipe = Pipe()
        digest.standardOutput = pipe
        digest.standardInput = {
            let p = Pipe()
            p.fileHandleForWriting.write(Data(body.utf8))
            try? p.fileHandleForWriting.close()
            return p
        }()
        try digest.run()
        let expected = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        digest.waitUntilExit()
        #expect(manifest?["sha256"] as? String == String(expected))
    }

    @Test func dropsWhileTheDaemonIsStoppedAreAllQueuedOnce() throws {
        let d = DaemonHarness(extraConfig: "workers = 1\n")
        try d.start()
        let n = 2000
        kill(d.process!.processIdentifier, SIGSTOP)
        for i in 0..<n {
            let tmp = d.state + "/spool/tmp/m\(i).json.part"
            try quickManifest(name: "m\(i)", steps: 1, checkpointEvery: 1).write(
                toFile: tmp, atomically: false, encoding: .utf8)
            rename(tmp, d.incoming + "/m\(i).json")
        }
        kill(d.process!.processIdentifier, SIGCONT)
        let deadline = Date().addingTimeInterval(120)
        var count = 0
        while Date() < deadline {
            count = (try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/accepted")).count
            if count == n { break }
            usleep(100_000)
        }
        #expect(count == n)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.incoming).isEmpty)
        let status = try d.ctl(["status", "--json"])
        let counts =
            (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["counts"]
            as? [String: Int] ?? [:]
        #expect(counts.values.reduce(0, +) == n)
        d.stop(SIGKILL)
    }

    @Test func aCrashBetweenCommitAndMoveGivesNoDuplicateAfterRestart() throws {
        let d = DaemonHarness()
        d.environment["VLDD_FAULT"] = "exit-after-commit"
        try quickManifest(name: "f", steps: 2, checkpointEvery: 2).write(
            toFile: d.dir.appendingPathComponent("f.json").path, atomically: true, encoding: .utf8)
        try? FileManager.default.createDirectory(atPath: d.incoming, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: d.dir.appendingPathComponent("f.json").path, toPath: d.incoming + "/f.json")
        try? d.start()  // exits 99 right after committing the manifest
        d.process?.waitUntilExit()
        #expect(d.process?.terminationStatus == 99)
        #expect(FileManager.default.fileExists(atPath: d.incoming + "/f.json"))
        d.environment = [:]
        try d.start(["--exit-when-idle"])
        d.process?.waitUntilExit()
        #expect(d.process?.terminationStatus == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/accepted") == ["1.json"])
        #expect(d.log.contains("spool: redelivered; already queued"))
        let outbox = try FileManager.default.contentsOfDirectory(atPath: d.state + "/outbox")
        #expect(outbox == ["1-f"])
    }

    @Test func aKilledDaemonsJobResumesAndEndsAsAnUninterruptedRun() throws {
        let file = scratch().appendingPathComponent("k.json").path
        try quickManifest(name: "k", steps: 400, checkpointEvery: 50).write(
            toFile: file, atomically: true, encoding: .utf8)
        let expected = try uninterruptedResults("k", steps: 400)

        let d = DaemonHarness()
        // At least 8 s for 400 steps, so the kill lands between checkpoints however fast the machine.
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        #expect(try d.ctl(["submit", file]).status == 0)
        try d.waitFor("a checkpoint past step 100") { ($0.first?["step"] as? Int ?? 0) >= 120 }
        #expect(states(try d.jobs()) == ["running"])
        d.stop(SIGKILL)
        // The worker notices its daemon died (parent-death signal), checkpoints and exits.
        try d.start()
        try d.waitFor("the resumed run") { states($0) == ["succeeded"] }
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("requeued to resume from its last checkpoint"), "\(show.stdout)")
        let log = try String(contentsOfFile: d.state + "/runs/1/stdout.log", encoding: .utf8)
        #expect(log.contains("resuming"), "\(log.suffix(1500))")
        let got = try resultsWithoutTiming(d.state + "/outbox/1-k")
        #expect(NSDictionary(dictionary: expected).isEqual(to: got), "\(expected) vs \(got)")
    }

    @Test func sigtermRequeuesTheRunningJobAndExitsInTime() throws {
        let d = DaemonHarness()
        try d.start()
        try d.submitManifest("t", steps: 100000, checkpointEvery: 1000)
        try d.waitFor("the job to run") { ($0.first?["step"] as? Int ?? 0) > 10 }
        let stopped = d.stop(SIGTERM)
        #expect(stopped.status == 0)
        #expect(stopped.seconds < 20)
        try d.start()
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("running -> queued  stopped after a checkpoint"), "\(show.stdout)")
        let cancel = try d.ctl(["cancel", "1"])
        #expect(cancel.status == 0)
        try d.waitFor("the cancel") { states($0) == ["cancelled"] }
    }

    @Test func aJobWhoseWritesFailIsFailedAndPublishesNothing() throws {
        let d = DaemonHarness(extraConfig: "max_failures = 2\n")
        // Workers may write files of at most 4 KiB: the first checkpoint fails with EFBIG.
        d.environment["VLDD_FAULT_WORKER_FSIZE"] = "4096"
        try d.start()
        try d.submitManifest("w", steps: 20, checkpointEvery: 10)
        try d.waitFor("the job to fail") { states($0) == ["failed"] }
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("File too large"), "\(show.stdout)")
        #expect(show.stdout.contains("(failed 2 of 2 times)"))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: d.state + "/outbox").filter { !$0.hasPrefix(".") }
                .isEmpty)
        #expect(try d.ctl(["status"]).status == 0)
    }

    @Test func aBadConfigOnSighupIsRefusedAndAReplacedInboxIsWatchedAgain() throws {
        let d = DaemonHarness(extraConfig: "workers = 2\n")
        try d.start()
        let good = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try (good + "workerz = 3\n").write(toFile: d.configPath, atomically: true, encoding: .utf8)
        kill(d.process!.processIdentifier, SIGHUP)
        var status: Run
        let deadline = Date().addingTimeInterval(5)
        while !d.log.contains("reload refused"), Date() < deadline { usleep(50_000) }
        #expect(
            d.log.contains("config: reload refused; keeping the running configuration")
                && d.log.contains("unknown key \\\"workerz\\\""))
        // vldctl cannot read the broken file either, and says so; with --socket it still reaches the daemon.
        let broken = try d.ctl(["status"])
        #expect(broken.status == 1 && broken.stderr.contains("unknown key \"workerz\""), "\(broken.stderr)")
        status = try vldctl(["status", "--json", "--socket", d.socket])
        #expect(
            (try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])?["workers"] as? Int
                == 2)
        try good.write(toFile: d.configPath, atomically: true, encoding: .utf8)

        // The inbox is removed and created again: the daemon watches the new one.
        try FileManager.default.removeItem(atPath: d.incoming)
        usleep(300_000)
        #expect(FileManager.default.fileExists(atPath: d.incoming))
        try quickManifest(name: "r", steps: 2, checkpointEvery: 2).write(
            toFile: d.incoming + "/r.json", atomically: false, encoding: .utf8)
        try d.waitFor("the manifest dropped into the new inbox", timeout: 30) { states($0) == ["succeeded"] }
    }

    @Test func theNotifyProtocolSeenByAListener() throws {
        let d = DaemonHarness()
        let path = d.dir.appendingPathComponent("notify.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        let bound = withUnixAddress(path) { bind(fd, $0, $1) }
        #expect(bound == 0)
        // Read datagrams as they come, as systemd does (an unread socket would fill and block
        // the daemon's sd_notify).
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let received = Locked<[String]>([])
        let done = Locked(false)
        let reader = Thread {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !done.value {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { received.update { $0.append(String(decoding: buffer[0..<n], as: UTF8.self)) } }
            }
        }
        reader.start()
        defer { close(fd) }
        d.environment = ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"]
        try d.start()
        // A running worker sees neither the notify socket nor the watchdog settings.
        try d.submitManifest("n", steps: 100000, checkpointEvery: 1000)
        try d.waitFor("the job to run") { ($0.first?["step"] as? Int ?? 0) > 0 }
        let pid = try #require(try d.jobs().first?["pid"] as? Int)
        let environ = try String(
            decoding: Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ")), as: UTF8.self
        )
        .split(separator: "\0").map(String.init)
        #expect(environ.contains("VLD_JOB_ID=1") && environ.contains("OPENBLAS_NUM_THREADS=1"), "\(environ)")
        #expect(!environ.contains { $0.hasPrefix("NOTIFY_SOCKET=") || $0.hasPrefix("WATCHDOG_") }, "\(environ)")
        usleep(600_000)
        kill(d.process!.processIdentifier, SIGHUP)
        usleep(300_000)
        d.stop()
        usleep(300_000)
        done.update { $0 = true }
        let messages = received.value
        let kinds = messages.map {
            $0.split(separator: "\n").map { String($0.split(separator: "=")[0]) }.joined(separator: "+")
        }
        #expect(kinds.first == "READY+STATUS", "\(messages)")
        #expect(messages.first?.contains("STATUS=0 queued, 0 running, 0 held") == true)
        #expect(messages.contains { $0.contains("STATUS=0 queued, 1 running, 0 held") })
        #expect(kinds.contains("WATCHDOG"))
        #expect(kinds.contains("RELOADING+MONOTONIC_USEC"))
        // Stopping with a job running: STOPPING, then more time asked for while it checkpoints.
        #expect(Array(kinds.suffix(2)) == ["STOPPING+STATUS", "EXTEND_TIMEOUT_USEC"], "\(kinds.suffix(4))")
        let reload = kinds.firstIndex(of: "RELOADING+MONOTONIC_USEC") ?? 0
        #expect(kinds[(reload + 1)...].first == "READY+STATUS")
    }

    @Test func parallelSubmitsDuringListingsCreateUniqueJobs() throws {
        let d = DaemonHarness(extraConfig: "workers = 1\n")
        try d.start()
        let file = d.dir.appendingPathComponent("h.json").path
        try quickManifest(name: "h", steps: 1, checkpointEvery: 1).write(
            toFile: file, atomically: true, encoding: .utf8)
        #expect(try d.ctl(["hold", "1"]).status == 1)  // no job yet: a clear error, not a crash
        let group = DispatchGroup()
        let failures = Locked<[String]>([])
        for _ in 0..<100 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                do {
                    let r = try d.ctl(["submit", file])
                    if r.status != 0 { failures.update { $0.append(r.stderr) } }
                } catch {
                    failures.update { $0.append("\(error)") }
                }
            }
        }
        for _ in 0..<5 { _ = try d.ctl(["ls", "--all"]) }
        group.wait()
        #expect(failures.value.isEmpty, "\(failures.value.prefix(3))")
        let jobs = try d.jobs()
        #expect(jobs.count == 100)
        #expect(Set(jobs.compactMap { $0["id"] as? Int }).count == 100)
        #expect(!d.log.contains("busy") && !d.log.contains("locked"))
    }

    @Test(.enabled(if: canSwitchUser, "needs root and /usr/bin/setpriv to run vldctl as another user"))
    func usersOutsideTheGroupAreRefused() throws {
        let d = DaemonHarness()
        try d.start()
        // Let the unprivileged user reach the socket file, so the daemon's own check is tested.
        chmod(d.socket, 0o666)
        for dir in [d.dir.path, d.state] { chmod(dir, 0o755) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = [
            "--reuid=65534", "--regid=65534", "--clear-groups", products.appendingPathComponent("vldctl").path,
            "status", "--socket", d.socket,
        ]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1)
        #expect(text.contains("uid 65534 may not use vldd"), "\(text)")
    }
}

/// A value shared between test threads.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}
