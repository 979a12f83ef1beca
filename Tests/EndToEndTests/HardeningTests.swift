// HardeningTests.swift: what a hostile submitter or an unlucky operator does to vldd and vldctl,
// run for real: slow writers, a flood of connections from another user, raw socket requests
// with the wrong types, a symbolic link where results go, a submit group that is not the
// daemon's primary group, a frozen worker, and strings made to fool a terminal.

import Foundation
import Testing

/// Root with setpriv can run a process as another user (uid 65534, nobody, group nogroup).
let canSwitchUser = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
let canSwitchUserWithPython = canSwitchUser && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

/// Sends `bytes` on the daemon's socket as they are and returns the answer line, decoded.
func rawRequest(_ socket: String, _ bytes: Data) throws -> [String: Any] {
    let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    let rc = withUnixAddress(socket) { connect(fd, $0, $1) }
    guard rc == 0 else { throw HarnessError("connect \(socket): \(String(cString: strerror(errno)))") }
    let line = bytes + Data([0x0A])
    _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    shutdown(fd, Int32(SHUT_WR))
    var answer = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer.append(contentsOf: buffer[0..<n])
    }
    guard let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] else {
        throw HarnessError("not a JSON object: \(String(decoding: answer, as: UTF8.self))")
    }
    return object
}

/// Runs `arguments` as uid 65534 (nobody) with its own groups (nogroup).
func runAsNobody(_ arguments: [String]) throws -> Run {
    try runProcess(
        URL(fileURLWithPath: "/usr/bin/setpriv"), ["--reuid=65534", "--regid=65534", "--init-groups", "--"] + arguments)
}

@Suite(.serialized) struct HardeningTests {
    /// A writer that puts a manifest straight into incoming/ and pauses inside a literal, or
    /// inside a two-byte character in a comment, while the daemon rescans: both files wait, and
    /// each is queued once it is complete (the probe's two reproductions).
    @Test func manifestsStillBeingWrittenAreWaitedFor() throws {
        let d = DaemonHarness(ingestGrace: 30)
        try d.start()
        let body = quickManifest(name: "slow", steps: 2, checkpointEvery: 2)
        let a = body.replacingOccurrences(of: #""model": {"#, with: #""model": {"tiedEmbeddings": true, "#)
        let b = "{\"priority\": 1, // réglé\n" + body.dropFirst()
        let cutA = a.range(of: #""tiedEmbeddings": tr"#)!.upperBound
        let cutB = Array(b.utf8).firstIndex(of: 0xC3)! + 1  // inside "é"
        let fa = open(d.incoming + "/a.json", O_CREAT | O_WRONLY, 0o644)
        let fb = open(d.incoming + "/b.json", O_CREAT | O_WRONLY, 0o644)
        defer { close(fa); close(fb) }
        let headA = Array(a[..<cutA].utf8), headB = Array(b.utf8)[..<cutB]
        #expect(headA.withUnsafeBytes { write(fa, $0.baseAddress, $0.count) } == headA.count)
        #expect(headB.withUnsafeBytes { write(fb, $0.baseAddress, $0.count) } == headB.count)
        let before = d.log.components(separatedBy: "reason=SIGUSR1").count
        kill(d.process!.processIdentifier, SIGUSR1)
        let deadline = Date().addingTimeInterval(10)
        while d.log.components(separatedBy: "reason=SIGUSR1").count == before, Date() < deadline { usleep(50_000) }
        #expect(d.log.components(separatedBy: "reason=SIGUSR1").count > before, "no rescan logged: \(d.log)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/rejected").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.incoming).sorted() == ["a.json", "b.json"])
        let tailA = Array(a[cutA...].utf8), tailB = Array(b.utf8)[cutB...]
        #expect(tailA.withUnsafeBytes { write(fa, $0.baseAddress, $0.count) } == tailA.count)
        #expect(tailB.withUnsafeBytes { write(fb, $0.baseAddress, $0.count) } == tailB.count)
        try d.waitFor("both manifests to be queued and run", timeout: 60) { states($0) == ["succeeded", "succeeded"] }
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.state + "/spool/rejected").isEmpty)
        #expect(!d.log.contains("<3>") && !d.log.contains("<4>"), "\(d.log)")
    }

    /// Another member of the submit group holds as many connections as it can and trickles a
    /// byte into each: it gets a few, each for at most request_timeout_seconds, and root is
    /// answered at once throughout.
    @Test(
        .enabled(
            if: canSwitchUserWithPython, "needs root, setpriv and /usr/bin/python3 to flood the socket as another user")
    )
    func oneUserCannotLockOthersOutOfTheSocket() throws {
        let d = DaemonHarness(extraConfig: "submit_group = nogroup\nrequest_timeout_seconds = 3\n")
        try d.start()
        let script = d.dir.appendingPathComponent("flood.py").path
        try """
        import json, socket, sys, time
        path, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
        conns, results = [], []
        for i in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.setblocking(False)
            conns.append([s, time.time(), b"", None])
        start = time.time()
        while time.time() - start < seconds and any(c[3] is None for c in conns):
            for c in conns:
                if c[3] is not None:
                    continue
                try:
                    c[0].send(b"{")
                except OSError:
                    pass
                try:
                    data = c[0].recv(65536)
                    c[2] += data
                    if not data or b"\\n" in c[2]:
                        c[3] = time.time() - c[1]
                except BlockingIOError:
                    pass
                except OSError:
                    c[3] = time.time() - c[1]
            time.sleep(0.25)
        print(json.dumps([{"seconds": c[3], "answer": c[2].decode("utf-8", "replace")} for c in conns]))
        """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        chmod(d.dir.path, 0o755)
        let flood = Process()
        flood.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        flood.arguments = [
            "--reuid=65534", "--regid=65534", "--init-groups", "--", "/usr/bin/python3", script, d.socket, "40", "8",
        ]
        let out = Pipe()
        flood.standardOutput = out
        try flood.run()
        usleep(1_000_000)
        // Root is answered while the flood goes on.
        for _ in 0..<4 {
            let t0 = Date()
            let status = try d.ctl(["status"])
            #expect(status.status == 0, "\(status.stderr)")
            #expect(Date().timeIntervalSince(t0) < 2)
            usleep(500_000)
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        flood.waitUntilExit()
        let conns = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(conns.count == 40)
        let refused = conns.filter { ($0["answer"] as? String ?? "").contains("the most one user may have") }
        let timedOut = conns.filter { ($0["answer"] as? String ?? "").contains("within 3.0 s") }
        #expect(refused.count == 32, "\(conns.map { $0["answer"] ?? "" })")
        #expect(timedOut.count == 8, "\(conns.map { $0["answer"] ?? "" })")
        // Cut off by the whole-request deadline although a byte kept arriving.
        #expect(timedOut.allSatisfy { ($0["seconds"] as? Double ?? 99) < 5.5 }, "\(timedOut)")
        #expect(try d.ctl(["status"]).status == 0)
    }

    /// Requests are read with strict types: `true` is not job 1, a huge id list is refused at
    /// once, an offset past the end of a log reads nothing, and unknown fields are named.
    @Test func controlRequestsAreStrictlyTyped() throws {
        let d = DaemonHarness()
        try d.start()
        try d.submitManifest("long", steps: 100000, checkpointEvery: 1000)
        try d.waitFor("the job to run") { ($0.first?["step"] as? Int ?? 0) > 0 }
        func ask(_ text: String) throws -> [String: Any] { try rawRequest(d.socket, Data(text.utf8)) }

        let boolID = try ask(#"{"op":"cancel","id":true}"#)
        #expect(
            boolID["ok"] as? Bool == false && (boolID["error"] as? String ?? "").contains("id: expected a job id"),
            "\(boolID)")
        for text in [
            #"{"op":"cancel","ids":[1.5]}"#, #"{"op":"show","id":"1"}"#, #"{"op":"hold","id":1e300}"#,
            #"{"op":"show","id":-1}"#,
        ] {
            let r = try ask(text)
            #expect(r["ok"] as? Bool == false, "\(text): \(r)")
        }
        #expect(states(try d.jobs()) == ["running"])

        let t0 = Date()
        let many = try ask(#"{"op":"cancel","ids":["# + (1...200_000).map(String.init).joined(separator: ",") + "]}")
        #expect((many["error"] as? String ?? "").contains("200000 ids; at most 10000 per request"), "\(many)")
        #expect(Date().timeIntervalSince(t0) < 3)

        let far = try ask(#"{"op":"logs","id":1,"offset":9223372036854775807}"#)
        #expect(
            (far["error"] as? String ?? "").contains("offset: expected an integer in 0...9007199254740992"), "\(far)")
        let past = try ask(#"{"op":"logs","id":1,"offset":9007199254740992}"#)
        #expect(past["ok"] as? Bool == true && past["text"] as? String == "", "\(past)")
        #expect((past["next"] as? Int ?? Int.max) < 10_000_000)

        let unknown = try ask(#"{"op":"list","limt":3}"#)
        #expect(
            unknown["error"] as? String == #"unknown field "limt"; list takes states, name, all, limit"#, "\(unknown)")
        let duplicate = try ask(#"{"op":"list","op":"cancel"}"#)
        #expect((duplicate["error"] as? String ?? "").contains("duplicate key"), "\(duplicate)")
        let escape = try ask(#"{"op":"st\u001b[2Jatus"}"#)
        #expect((escape["error"] as? String ?? "").contains(#"unknown op "st\e[2Jatus""#), "\(escape)")
        let raw = try ask("{\"op\":\"st\u{1B}[2Jatus\"}")
        #expect((raw["error"] as? String ?? "").contains("control character in a string"), "\(raw)")
        #expect(try d.ctl(["cancel", "1"]).status == 0)
        try d.waitFor("the cancel") { states($0) == ["cancelled"] }
    }

    /// A symbolic link (or a directory the job did not create) at outbox/<id>-<name> is never
    /// taken for the job's results: the job fails at once, without retries, and says why.
    @Test func aForeignEntryAtTheOutboxNameIsNotTakenForResults() throws {
        let d = DaemonHarness()
        try d.start()
        let foreign = d.dir.appendingPathComponent("foreign")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try #"{"fake": true}"#.write(
            to: foreign.appendingPathComponent("results.json"), atomically: true, encoding: .utf8)
        #expect(symlink(foreign.path, d.state + "/outbox/1-s") == 0)
        try FileManager.default.createDirectory(atPath: d.state + "/outbox/2-t", withIntermediateDirectories: false)
        try #"{"fake": true}"#.write(toFile: d.state + "/outbox/2-t/results.json", atomically: true, encoding: .utf8)
        for name in ["s", "t"] {
            try d.submitManifest(name, steps: 2, checkpointEvery: 2)
        }
        try d.waitFor("both jobs to fail") { states($0) == ["failed", "failed"] }
        let jobs = try d.jobs().sorted { ($0["id"] as? Int ?? 0) < ($1["id"] as? Int ?? 0) }
        #expect((jobs[0]["error"] as? String ?? "").contains("1-s already exists and is a symbolic link"), "\(jobs[0])")
        #expect(
            (jobs[1]["error"] as? String ?? "").contains(
                "2-t already exists and is a directory this job did not publish"))
        // The worker said a retry cannot help: one attempt each.
        #expect(jobs.allSatisfy { $0["failures"] as? Int == 1 && $0["attempts"] as? Int == 1 }, "\(jobs)")
        let results = try d.ctl(["results", "1"])
        #expect(results.status == 1 && !results.stdout.contains("fake"))
        #expect(
            try String(contentsOf: foreign.appendingPathComponent("results.json"), encoding: .utf8)
                == #"{"fake": true}"#)
        // Moved away and retried, the job publishes its own results.
        #expect(unlink(d.state + "/outbox/1-s") == 0)
        #expect(try d.ctl(["retry", "1"]).status == 0)
        try d.waitFor("the retried job") { ($0.first { $0["id"] as? Int == 1 }?["state"] as? String) == "succeeded" }
        #expect(try d.ctl(["results", "1", "--json"]).stdout.contains("evalLoss"))
    }

    /// With a submit group that is not the daemon's primary group, members can reach the socket
    /// and read every published file, and nothing is readable by others.
    @Test(.enabled(if: canSwitchUser, "needs root and setpriv to read results as another user"))
    func publishedResultsBelongToTheSubmitGroup() throws {
        let d = DaemonHarness(extraConfig: "submit_group = nogroup\n")
        try d.start()
        chmod(d.dir.path, 0o755)
        let file = try d.writeManifest("g", steps: 4, checkpointEvery: 2, grid: #", "grid": {"seed": [1, 2]}"#)
        chmod(file, 0o644)
        // A member submits through the socket (the daemon gave it the group).
        let submit = try runAsNobody([
            products.appendingPathComponent("vldctl").path, "submit", file, "--socket", d.socket,
        ])
        #expect(submit.status == 0, "\(submit.stderr)")
        try d.waitFor("both trials") { states($0) == ["succeeded", "succeeded"] }
        try d.waitFor("the summary") { _ in
            FileManager.default.fileExists(atPath: d.state + "/outbox/summary-1-g/summary.csv")
        }
        var checked = 0
        let outbox = d.state + "/outbox"
        for top in try FileManager.default.contentsOfDirectory(atPath: outbox) where !top.hasPrefix(".") {
            let enumerator = FileManager.default.enumerator(atPath: outbox + "/" + top)!
            for case let relative as String in enumerator.allObjects + [""] {
                let path = outbox + "/" + top + (relative.isEmpty ? "" : "/" + relative)
                var st = stat()
                #expect(lstat(path, &st) == 0)
                let isDirectory = st.st_mode & S_IFMT == S_IFDIR
                #expect(st.st_gid == 65534, "\(path) has group \(st.st_gid)")
                #expect(
                    st.st_mode & 0o7777 == (isDirectory ? 0o2750 : 0o640),
                    "\(path) has mode \(String(st.st_mode & 0o7777, radix: 8))")
                checked += 1
            }
        }
        #expect(checked > 20)
        let first = try #require(
            try FileManager.default.contentsOfDirectory(atPath: outbox).first { $0.hasPrefix("1-g-") })
        let read = try runAsNobody(["/bin/cat", outbox + "/\(first)/results.json", outbox + "/summary-1-g/summary.csv"])
        #expect(read.status == 0 && read.stdout.contains("evalLoss"), "\(read.stderr)")
        let results = try runAsNobody([
            products.appendingPathComponent("vldctl").path, "results", "2", "--socket", d.socket,
        ])
        #expect(results.status == 0 && results.stdout.contains("evalLoss"), "\(results.stderr)")
    }

    /// A worker that stops sending anything (here: SIGSTOP) is killed once its lease runs out,
    /// and its job is retried from its last checkpoint to the end.
    @Test func aSilentWorkerIsKilledAndItsJobRetried() throws {
        let d = DaemonHarness(extraConfig: "lease_seconds = 2\n")
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        try d.submitManifest("f", steps: 200, checkpointEvery: 20)
        try d.waitFor("a checkpoint") { ($0.first?["step"] as? Int ?? 0) >= 30 }
        let pid = try #require(try d.jobs().first?["pid"] as? Int)
        kill(pid_t(pid), SIGSTOP)
        let stoppedAt = Date()
        try d.waitFor("the job to be requeued after its lease", timeout: 30) {
            ($0.first?["failures"] as? Int ?? 0) >= 1
        }
        #expect(Date().timeIntervalSince(stoppedAt) < 10)
        #expect(kill(pid_t(pid), 0) != 0)  // the frozen worker is gone
        try d.waitFor("the retried job to finish", timeout: 60) { states($0) == ["succeeded"] }
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("the worker sent nothing for 2 s (lease_seconds)"), "\(show.stdout)")
        let log = try String(contentsOfFile: d.state + "/runs/1/stdout.log", encoding: .utf8)
        #expect(log.contains("resuming at step"), "\(log.suffix(800))")
    }

    /// A daemon that accepts the connection but never answers (stopped with SIGSTOP) makes
    /// vldctl give up after its timeout, not wait forever.
    @Test func vldctlGivesUpOnADaemonThatDoesNotAnswer() throws {
        let d = DaemonHarness()
        try d.start()
        kill(d.process!.processIdentifier, SIGSTOP)
        defer { kill(d.process!.processIdentifier, SIGCONT) }
        let t0 = Date()
        let doctor = try d.ctl(["doctor"])  // asks with a 10 s timeout
        #expect(Date().timeIntervalSince(t0) < 30)
        #expect(
            doctor.status == 1 && (doctor.stdout + doctor.stderr).contains("no answer"),
            "\(doctor.stdout)\(doctor.stderr)")
    }

    /// `--config` and `--socket` may come before the command, as git's global options do.
    @Test func globalOptionsMayComeBeforeTheCommand() throws {
        let d = DaemonHarness()
        try d.start()
        let file = try d.writeManifest("q", steps: 2, checkpointEvery: 2)
        let submit = try vldctl(["--config", d.configPath, "submit", file])
        #expect(submit.status == 0 && submit.stdout.contains("queued q as manifest 1"), "\(submit.stderr)")
        #expect(try vldctl(["--socket=\(d.socket)", "ls", "--all"]).stdout.contains("q"))
        #expect(try vldctl(["--config", d.configPath, "--socket", d.socket, "status"]).status == 0)
        let wrong = try vldctl(["--config", d.configPath, "validate", file])
        #expect(wrong.status == 64 && wrong.stderr.contains("applies to the commands that talk to vldd"))
        let alone = try vldctl(["--config", d.configPath])
        #expect(alone.status == 64)
    }

    /// File names, manifest keys and values are shown escaped: no escape sequence, bidi
    /// override or newline from a submitter reaches the terminal, and nothing forges a line.
    @Test func untrustedTextIsEscapedOnOutput() throws {
        let d = DaemonHarness()
        try d.start()
        let hostile = "x\u{1B}]0;owned\u{07}\n[forged] ok\u{202E}txt.json"
        try d.submitManifest("esc", steps: 2, checkpointEvery: 2, file: hostile)
        try d.waitFor("the job") { states($0) == ["succeeded"] }
        let show = try d.ctl(["show", "1"])
        for output in [show.stdout, show.stderr] {
            #expect(
                !output.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" }, "\(output)")
            #expect(!output.contains("\n[forged]"))
        }
        #expect(show.stdout.contains(#"x\e]0;owned\u{7}\n[forged] ok\u{202E}txt.json"#), "\(show.stdout)")
        // JSON output carries them as escapes too (still the same strings to a JSON reader).
        for args in [["show", "1", "--json"], ["ls", "--all", "--json"]] {
            let json = try d.ctl(args)
            #expect(
                json.status == 0
                    && !json.stdout.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" })
        }
        let decoded =
            try JSONSerialization.jsonObject(with: Data(try d.ctl(["show", "1", "--json"]).stdout.utf8))
            as? [String: Any]
        #expect((decoded?["manifest"] as? [String: Any])?["fileName"] as? String == hostile)

        // validate and submit echo manifest strings escaped; odd keys are quoted.
        let bad = d.dir.appendingPathComponent("bad.json").path
        try "{\"name\": \"b\", \"\": 1, \"k\\u001b[2J\": 2, \"model\": {\"schedule\": \"cyc\u{202E}(1)\\n\"}}"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let validate = try vldctl(["validate", bad])
        let submit = try d.ctl(["submit", bad])
        for output in [validate.stdout, submit.stderr] {
            #expect(!output.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{202E}" }, "\(output)")
            #expect(output.contains(#"[""]: unknown key"#), "\(output)")
            #expect(output.contains(#"["k\e[2J"]: unknown key"#), "\(output)")
            #expect(output.contains(#"model.schedule: "cyc\u{202E}(1)\n" is not a schedule"#), "\(output)")
        }
        #expect(validate.status == 1 && submit.status == 1)
    }
}
