// VldctlTests.swift: the built vldctl binary, run as a user would run it.

import Foundation
import Testing

/// Directory holding the built products (the test bundle sits next to them).
let products: URL = {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("vldctl").path) {
        url.deleteLastPathComponent()
    }
    return url
}()

struct Run { let status: Int32; let stdout: String; let stderr: String }

func vldctl(_ args: [String], cwd: URL? = nil) throws -> Run {
    try runProcess(products.appendingPathComponent("vldctl"), args, cwd: cwd)
}

/// Runs a program to its end and collects its exit status, stdout and stderr.
func runProcess(_ executable: URL, _ args: [String], cwd: URL? = nil) throws -> Run {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    if let cwd { p.currentDirectoryURL = cwd }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(
        status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
        stderr: String(decoding: e, as: UTF8.self))
}

/// A unix socket address for `path`, and `body` called with it as a sockaddr.
func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in path.utf8.enumerated() { raw[i] = b }
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

func scratch() -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("vld-e2e-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

@Test func demoTrainsChecksPointsAndResumes() throws {
    let dir = scratch()
    let first = try vldctl(["demo", "--steps", "40", "--threads", "2", "--out", dir.path])
    #expect(first.status == 0, "\(first.stderr)")
    #expect(first.stdout.contains("exact match"))
    #expect(first.stdout.contains("    40 "))
    // Running again with more steps resumes from the checkpoint instead of starting over.
    let second = try vldctl(["demo", "--steps", "60", "--threads", "2", "--out", dir.path])
    #expect(second.status == 0)
    #expect(second.stdout.contains("resuming from") && second.stdout.contains("at step 40"))

    let ckpt = dir.appendingPathComponent("checkpoint").path
    let inspect = try vldctl(["checkpoint", "inspect", ckpt])
    #expect(inspect.status == 0)
    #expect(inspect.stdout.contains("schedule      cyc(1) = 0 1 0 1"))
    #expect(inspect.stdout.contains("D=4 D_VLD=2"))
    #expect(inspect.stdout.contains("transformer.h.1.attn.c_attn.weight"))
    #expect(inspect.stdout.contains("step=60"))

    let logits = try vldctl(["checkpoint", "logits", ckpt, "--tokens", "5,7,1", "--json"])
    #expect(logits.status == 0)
    let json = try JSONSerialization.jsonObject(with: Data(logits.stdout.utf8)) as? [String: Any]
    #expect(json?.keys.sorted() == ["logits"])
    let rows = json?["logits"] as? [[Double]]
    #expect(rows?.count == 3 && rows?.allSatisfy { $0.count == 32 } == true)
}

@Test func mistakesGetUsageErrorsAndDamageGetsFailures() throws {
    let unknown = try vldctl(["frobnicate"])
    #expect(unknown.status == 64 && unknown.stderr.contains("unknown command"))
    let badSchedule = try vldctl(["demo", "--schedule", "cyk(1)"])
    #expect(badSchedule.status == 64 && badSchedule.stderr.contains("expected base, seq(k), cyc(k)"))
    let missing = try vldctl(["checkpoint", "inspect", "/nonexistent/ckpt"])
    #expect(missing.status == 1 && missing.stderr.contains("cannot read"))
    let help = try vldctl(["checkpoint", "--help"])
    #expect(help.status == 0 && help.stdout.contains("vldctl checkpoint logits"))
    let badTokens = try vldctl(["checkpoint", "logits", "/x", "--tokens", "a,b"])
    #expect(badTokens.status == 64)
}

/// `vldctl task sample` shows what a task generates: training documents (k within the training
/// range), held-out ones at a chosen difficulty, one JSON object per line, and bad specs refused
/// with their path.
@Test func taskSamplePrintsGeneratedDocuments() throws {
    let spec = #"{"type": "chain", "format": "cot", "minK": 2, "maxK": 3, "statements": 6}"#
    let text = try vldctl(["task", "sample", spec, "--n", "3"])
    #expect(
        text.status == 0 && text.stdout.contains("chain 0 split train k ") && text.stdout.contains("  solution "),
        "\(text.stderr)")
    let lines = try vldctl(["task", "sample", spec, "--n", "4", "--json", "--seed", "7"]).stdout.split(separator: "\n")
    #expect(lines.count == 4)
    for line in lines {
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(
            (2...3).contains(doc["k"] as? Int ?? 0) && doc["split"] as? String == "train" && doc["seed"] as? Int == 7)
        let solution = doc["solution"] as? String ?? ""
        #expect(solution.hasSuffix("answer \(doc["answer"] as? Int ?? -1) <eos>"), "\(solution)")
    }
    let held = try vldctl(["task", "sample", spec, "--k", "5", "--n", "2", "--json"]).stdout.split(separator: "\n")
    #expect(held.count == 2 && held.allSatisfy { $0.contains(#""split":"test","k":5"#) })
    let bad = try vldctl(["task", "sample", #"{"type": "chain", "maxK": 30}"#])
    #expect(bad.status == 64 && bad.stderr.contains("spec: chain: maxK (30) needs maxK statements"), "\(bad.stderr)")
    let wrongLevel = try vldctl(["task", "sample", spec, "--ops", "3"])
    #expect(wrongLevel.status == 64 && wrongLevel.stderr.contains("--ops applies to igsm tasks"))
}

/// A policy -> PRM -> search pipeline through `vldctl run`, then `vldctl results` on the search
/// trial's directory: its metrics and the compute-optimal selector's budget -> strategy tables.
@Test func resultsOfASearchTrialPrintTheSelectorTable() throws {
    let task =
        #""task": {"type": "chain", "format": "cot", "modulus": 5, "minK": 1, "maxK": 2, "statements": 3, "evalProblems": 4, "evalK": [1]}"#
    let model = #""model": {"arch": "llama", "dModel": 32, "layers": 1, "heads": 2, "context": 48}"#
    let text =
        #"{"name": "t", "seed": 3, "resources": {"threads": 1}, "stages": {"#
        + #""policy": {\#(task), \#(model), "train": {"steps": 100, "batch": 16, "lr": 0.01}}, "#
        + #""prm": {"kind": "prm", "policy": "@policy", "init": "@policy", \#(task), \#(model), "#
        + #""train": {"steps": 20, "batch": 8, "lr": 0.003}, "prm": {"labels": "oracle", "problems": 16, "samples": 2, "heldOutProblems": 4}}, "#
        + #""search": {"kind": "tts", "policy": "@policy", "prm": "@prm", \#(task), "tts": {"problems": 6, "nMax": 4, "m": [2], "difficultySamples": 4}}}}"#
    let dir = scratch()
    let manifest = dir.appendingPathComponent("t.json")
    try Data(text.utf8).write(to: manifest)
    let run = try vldctl(["run", manifest.path, "--out", dir.appendingPathComponent("out").path, "--threads", "1"])
    #expect(run.status == 0, "\(run.stderr)")
    let trial = dir.appendingPathComponent("out/t/002-search-seed3")
    let shown = try vldctl(["results", trial.path])
    #expect(shown.status == 0, "\(shown.stderr)")
    #expect(shown.stdout.contains("tts.bon.prm_vote.last.N4"))
    #expect(shown.stdout.contains("compute-optimal selector, predicted difficulty bins"))
    #expect(shown.stdout.contains("compute-optimal selector, oracle difficulty bins"))
    #expect(shown.stdout.contains("BUDGET N") && shown.stdout.contains("LIU'S RULE"))
    let missing = try vldctl(["results", dir.path])
    #expect(missing.status != 0 && missing.stderr.contains("neither a job id nor a finished trial's directory"))
}
