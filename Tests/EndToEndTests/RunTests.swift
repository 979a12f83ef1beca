// RunTests.swift: `vldctl validate` and `vldctl run` end to end, including kill -9 and resume.

import Foundation
import Testing

/// A tiny mixture manifest: iGSM-lite and bioS-lite on a 2-block model, a few seconds per trial.
func tinyManifest(name: String, steps: Int, every: Int, grid: String = "") -> String {
    """
    {
      "name": "\(name)",
      "seed": 3,
      "resources": {"threads": 2},
      "task": [
        {"type": "igsm", "maxOps": 2, "maxEdges": 8, "maxWords": 192, "evalProblems": 6, "evalOps": [1, 2]},
        {"type": "bios", "people": 20, "weight": 0.5}
      ],
      "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 192},
      "train": {"steps": \(steps), "batch": 4, "lr": 0.003, "warmup": 5, "evalEvery": \(every), "checkpointEvery": \(every)}\(grid)
    }
    """
}

func write(_ text: String, in dir: URL, as name: String) -> URL {
    let url = dir.appendingPathComponent(name)
    try! text.write(to: url, atomically: true, encoding: .utf8)
    return url
}

/// results.json without its "timing" object (wall time and throughput differ between runs).
func resultsWithoutTiming(_ url: URL) throws -> String {
    var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    json.removeValue(forKey: "timing")
    return String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), as: UTF8.self)
}

@Test func validateReportsTrialsOrEveryProblem() throws {
    let dir = scratch()
    let good = write(
        tinyManifest(
            name: "ok", steps: 10, every: 5, grid: #", "grid": {"model.schedule": ["base", "cyc(1)"], "seed": [1, 2]}"#),
        in: dir, as: "good.json")
    let r = try vldctl(["validate", good.path])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("ok, 4 trials (40 training steps in all)"), "\(r.stdout)")
    #expect(
        r.stdout.contains("  up to ") && r.stdout.contains(" MiB per trial; ")
            && r.stdout.contains("FLOPs in all"))
    let bad = write(
        #"{"name": "x", "seed": "one", "task": {"type": "igsm"}, "model": {"schedul": "cyc(1)"}}"#, in: dir,
        as: "bad.json")
    let b = try vldctl(["validate", bad.path])
    #expect(b.status == 1)
    #expect(b.stdout.contains(#"seed: expected an integer in 0...2147483647, got "one""#), "\(b.stdout)")
    #expect(b.stdout.contains("model.schedul: unknown key"), "\(b.stdout)")
    for kind in ["train", "distill", "phase"] {
        let example = try vldctl(["example", kind])
        #expect(example.status == 0)
        let saved = write(example.stdout, in: dir, as: "example-\(kind).json")
        let v = try vldctl(["validate", saved.path])
        #expect(v.status == 0, "the printed \(kind) example must validate as it is: \(v.stdout)")
    }
}

@Test func runWritesTheWholeOutboxAndSummary() throws {
    let dir = scratch()
    let file = write(
        tinyManifest(name: "grid", steps: 12, every: 6, grid: #", "grid": {"model.schedule": ["base", "cyc(1)"]}"#),
        in: dir, as: "grid.json")
    let out = dir.appendingPathComponent("out")
    let r = try vldctl(["run", file.path, "--out", out.path])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    let root = out.appendingPathComponent("grid")
    let fm = FileManager.default
    for trial in ["000-schedule=base-seed3", "001-schedule=cyc-1--seed3"] {
        let t = root.appendingPathComponent(trial)
        for f in [
            "manifest.json", "metrics.jsonl", "results.json", "report.html", "log.txt", "checkpoint/model.safetensors",
            "checkpoint/config.json", "checkpoint/tokenizer.json", "checkpoint/state.json",
        ] {
            #expect(fm.fileExists(atPath: t.appendingPathComponent(f).path), "\(trial)/\(f) missing")
        }
        let metrics = try String(contentsOf: t.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(
            separator: "\n")
        #expect(metrics.count == 2)
        let results =
            try JSONSerialization.jsonObject(with: Data(contentsOf: t.appendingPathComponent("results.json")))
            as! [String: Any]
        let model = results["model"] as! [String: Any]
        for key in ["P_total", "P_nonEmbedding", "D", "D_VLD"] {
            #expect(model[key] is NSNumber, "results.model.\(key)")
        }
        for key in ["vldVersion", "seed", "threads", "flops", "training", "timing", "tasks"] {
            #expect(results[key] != nil, "results.\(key)")
        }
        let tasks = results["tasks"] as! [String: Any]
        #expect(tasks["igsm"] != nil && tasks["bios"] != nil)
    }
    #expect(
        (try? String(contentsOf: root.appendingPathComponent("001-schedule=cyc-1--seed3/results.json"), encoding: .utf8))?
            .contains(#""D": 4"#) == true)
    for f in ["summary.json", "summary.csv", "report.html", "experiment.json"] {
        #expect(fm.fileExists(atPath: root.appendingPathComponent(f).path), "\(f) missing")
    }
    #expect(!fm.fileExists(atPath: root.appendingPathComponent(".partial").path))
    let csv = try String(contentsOf: root.appendingPathComponent("summary.csv"), encoding: .utf8)
    #expect(csv.split(separator: "\n").count == 3)
    #expect(r.stdout.contains("schedule=cyc(1)"))
    // Running again finds everything done and changes nothing.
    let again = try vldctl(["run", file.path, "--out", out.path])
    #expect(again.status == 0)
    #expect(again.stdout.contains("done: 2 of 2 trials"))
    // A different manifest with the same name is refused.
    let other = write(tinyManifest(name: "grid", steps: 14, every: 7), in: dir, as: "other.json")
    let refused = try vldctl(["run", other.path, "--out", out.path])
    #expect(refused.status == 1)
    #expect(refused.stderr.contains("different manifest"))
}

@Test func killDashNineThenRerunGivesTheSameResults() throws {
    let dir = scratch()
    let text = tinyManifest(name: "kill", steps: 60, every: 10)
    let file = write(text, in: dir, as: "kill.json")
    let reference = dir.appendingPathComponent("reference")
    let r = try vldctl(["run", file.path, "--out", reference.path])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")

    let out = dir.appendingPathComponent("interrupted")
    let p = Process()
    p.executableURL = products.appendingPathComponent("vldctl")
    p.arguments = ["run", file.path, "--out", out.path]
    // At least 3 s for 60 steps, so the kill lands between checkpoints however fast the machine.
    p.environment = ProcessInfo.processInfo.environment.merging(["VLD_FAULT_STEP_DELAY_MS": "50"]) { $1 }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let state = out.appendingPathComponent("kill/.partial/000-all-seed3/checkpoint/state.json")
    let deadline = Date().addingTimeInterval(120)
    // Wait for a checkpoint past the first one, then kill without warning.
    while Date() < deadline, p.isRunning {
        if let data = try? Data(contentsOf: state),
            let s = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let step = s["step"] as? Int, step >= 20
        {
            break
        }
        usleep(20_000)
    }
    #expect(p.isRunning, "the run ended before it could be killed")
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    #expect(p.terminationReason == .uncaughtSignal)
    let resumed = try vldctl(["run", file.path, "--out", out.path])
    #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
    let log = try String(contentsOf: out.appendingPathComponent("kill/000-all-seed3/log.txt"), encoding: .utf8)
    #expect(log.contains("resuming at step"), "the second run must resume, not restart")
    let a = try resultsWithoutTiming(reference.appendingPathComponent("kill/000-all-seed3/results.json"))
    let b = try resultsWithoutTiming(out.appendingPathComponent("kill/000-all-seed3/results.json"))
    #expect(a == b)
    let ma = try String(
        contentsOf: reference.appendingPathComponent("kill/000-all-seed3/metrics.jsonl"), encoding: .utf8)
    let mb = try String(contentsOf: out.appendingPathComponent("kill/000-all-seed3/metrics.jsonl"), encoding: .utf8)
    #expect(ma == mb)
}

@Test func sigintCheckpointsAndTheSameCommandResumes() throws {
    let dir = scratch()
    let file = write(tinyManifest(name: "int", steps: 5000, every: 100), in: dir, as: "int.json")
    let out = dir.appendingPathComponent("out")
    let p = Process()
    p.executableURL = products.appendingPathComponent("vldctl")
    p.arguments = ["run", file.path, "--out", out.path]
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    try p.run()
    let metrics = out.appendingPathComponent("int/.partial/000-all-seed3/metrics.jsonl")
    let deadline = Date().addingTimeInterval(120)
    while Date() < deadline, p.isRunning, ((try? Data(contentsOf: metrics))?.count ?? 0) == 0 { usleep(20_000) }
    kill(p.processIdentifier, SIGINT)
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 130, "\(text)")
    #expect(text.contains("run the same command to resume"))
    let state =
        try JSONSerialization.jsonObject(
            with: Data(contentsOf: out.appendingPathComponent("int/.partial/000-all-seed3/checkpoint/state.json")))
        as! [String: Any]
    #expect((state["step"] as! Int) >= 100)
}

@Test func twoProcessesOfTheSameCommandShareTheTrials() throws {
    let dir = scratch()
    let grid = #", "grid": {"model.schedule": ["base", "cyc(1)"], "seed": [1, 2]}"#
    let file = write(tinyManifest(name: "share", steps: 20, every: 10, grid: grid), in: dir, as: "share.json")
    let out = dir.appendingPathComponent("out")
    // Slow steps so that both processes are running at once whatever the machine's speed.
    func start() throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = products.appendingPathComponent("vldctl")
        p.arguments = ["run", file.path, "--out", out.path, "--threads", "1"]
        p.environment = ProcessInfo.processInfo.environment.merging(["VLD_FAULT_STEP_DELAY_MS": "100"]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        return (p, pipe)
    }
    let (a, pa) = try start()
    let (b, pb) = try start()
    let ta = String(decoding: pa.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let tb = String(decoding: pb.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    a.waitUntilExit()
    b.waitUntilExit()
    #expect(a.terminationStatus == 0 && b.terminationStatus == 0, "\(ta)\n---\n\(tb)")
    // The process that ends last reports the whole grid done, not trials "still running" elsewhere.
    #expect(ta.contains("done: 4 of 4 trials") || tb.contains("done: 4 of 4 trials"), "\(ta)\n---\n\(tb)")
    // Each trial was trained by exactly one of the two processes.
    func started(_ text: String) -> Set<Int> {
        var trials = Set<Int>()
        for line in text.split(separator: "\n")
        where line.hasPrefix("[") && line.contains("] vld ") && line.contains(" train share trial ") {
            if let n = Int(line.dropFirst().prefix { $0 != "/" }) { trials.insert(n) }
        }
        return trials
    }
    let sa = started(ta), sb = started(tb)
    #expect(sa.isDisjoint(with: sb), "\(ta)\n---\n\(tb)")
    #expect(sa.union(sb) == [1, 2, 3, 4], "\(ta)\n---\n\(tb)")
    #expect(!sa.isEmpty && !sb.isEmpty, "both processes should have had work")
    let summary =
        try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("share/summary.json")))
        as! [String: Any]
    let conditions = summary["conditions"] as! [[String: Any]]
    #expect(conditions.map { ($0["seeds"] as? [Int])?.count } == [2, 2], "\(conditions)")
    #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("share/.partial").path))
}

@Test func trialsSelectsASubsetAndRejectsBadLists() throws {
    let dir = scratch()
    let grid = #", "grid": {"model.schedule": ["base", "cyc(1)"]}"#
    let file = write(tinyManifest(name: "pick", steps: 10, every: 10, grid: grid), in: dir, as: "pick.json")
    let out = dir.appendingPathComponent("out")
    let bad = try vldctl(["run", file.path, "--out", out.path, "--trials", "2-3"])
    #expect(bad.status == 64)
    #expect(bad.stderr.contains("--trials 2-3: expected trial numbers or ranges between 1 and 2"), "\(bad.stderr)")
    let r = try vldctl(["run", file.path, "--out", out.path, "--trials", "2"])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("the selected trials are done; 1 of 2 trials complete"), "\(r.stdout)")
    let entries = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("pick").path)
    #expect(entries.contains { $0.hasPrefix("001-") } && !entries.contains { $0.hasPrefix("000-") }, "\(entries)")
    let rest = try vldctl(["run", file.path, "--out", out.path])
    #expect(rest.stdout.contains("done: 2 of 2 trials"), "\(rest.stdout)")
}
