// PipelineTests.swift: pipelines through the built vldd and vldctl: stages wait for their needs,
// init reads the earlier stage's published checkpoint, a cancelled need fails its dependents
// with the reason and retrying it runs them, a kill -9 of the daemon during a stage loses
// nothing, and references the daemon must not follow are refused at submission.

import Foundation
import Testing

/// A pipeline: "pre" trains, "tune" (a grid of two) starts from its checkpoint with lr 0, so a
/// tuned model must equal the pretrained one weight for weight.
func pipelineManifest(preSteps: Int = 20, checkpointEvery: Int = 10) -> String {
    let body =
        #""task": {"type": "bios", "people": 20, "exposures": 10}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
    return #"{"name": "pipe", "seed": 3, "resources": {"threads": 1}, "stages": {"#
        + #""tune": {\#(body), "init": "@pre", "train": {"steps": 4, "batch": 8, "lr": 0, "evalEvery": 4}, "grid": {"model.schedule": ["base", "cyc(1)"]}}, "#
        + #""pre": {\#(body), "train": {"steps": \#(preSteps), "batch": 8, "evalEvery": \#(checkpointEvery), "checkpointEvery": \#(checkpointEvery)}}}}"#
}

private func byID(_ jobs: [[String: Any]]) -> [Int: [String: Any]] {
    Dictionary(uniqueKeysWithValues: jobs.map { ($0["id"] as? Int ?? 0, $0) })
}

private func state(_ jobs: [[String: Any]], _ id: Int) -> String { byID(jobs)[id]?["state"] as? String ?? "?" }

/// The model weights of a published checkpoint (model.safetensors without its header).
private func weights(_ dir: String) throws -> Data {
    let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/checkpoint/model.safetensors"))
    let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    return data.dropFirst(8 + headerLength)
}

@Suite(.serialized) struct PipelineTests {
    @Test func aPipelineRunsItsStagesInOrderAndInitReadsThePublishedCheckpoint() throws {
        let d = DaemonHarness(extraConfig: "workers = 2\ntotal_threads = 2\n")
        try d.start()
        let file = d.dir.appendingPathComponent("pipe.json").path
        try pipelineManifest().write(toFile: file, atomically: true, encoding: .utf8)
        let submit = try d.ctl(["submit", file])
        #expect(submit.status == 0, "\(submit.stderr)")
        // Job 1 is the pre stage (ordered first by its dependents), 2 and 3 the tune grid.
        let early = try d.ctl(["ls"])
        #expect(early.stdout.contains("queued (needs 1)") || early.stdout.contains("succeeded"), "\(early.stdout)")
        try d.waitFor("the pipeline") { jobs in (1...3).allSatisfy { state(jobs, $0) == "succeeded" } }
        let jobs = byID(try d.jobs())
        #expect(jobs[1]?["stage"] as? String == "pre" && jobs[2]?["stage"] as? String == "tune")
        // The tune jobs started after the pre job had finished.
        let preEnd = jobs[1]?["finishedAt"] as? Int ?? .max
        #expect((jobs[2]?["startedAt"] as? Int ?? 0) >= preEnd && (jobs[3]?["startedAt"] as? Int ?? 0) >= preEnd)
        let pre = try #require(jobs[1]?["outbox"] as? String)
        for id in [2, 3] {
            let out = try #require(jobs[id]?["outbox"] as? String)
            #expect(try weights(out) == weights(pre), "job \(id) did not start from the pre stage's weights")
            let log = try String(contentsOfFile: d.state + "/runs/\(id)/stdout.log", encoding: .utf8)
            #expect(log.contains("initialized the weights from @pre (\(pre)/checkpoint)"), "\(log.prefix(2000))")
        }
        let show = try d.ctl(["show", "2"])
        #expect(show.stdout.contains("stage") && show.stdout.contains("tune"), "\(show.stdout)")
        try d.waitFor("the summary") { _ in
            FileManager.default.fileExists(atPath: d.state + "/outbox/summary-1-pipe/summary.csv")
        }
        let csv = try String(contentsOfFile: d.state + "/outbox/summary-1-pipe/summary.csv", encoding: .utf8)
        #expect(csv.contains(",pre,") && csv.contains(",tune schedule=cyc(1),"), "\(csv)")
    }

    @Test func aCancelledNeedFailsItsDependentsAndRetryingItRunsThem() throws {
        let d = DaemonHarness()
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        let file = d.dir.appendingPathComponent("pipe.json").path
        try pipelineManifest(preSteps: 400, checkpointEvery: 50).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try d.ctl(["submit", file]).status == 0)
        try d.waitFor("the pre stage to run") { state($0, 1) == "running" }
        #expect(try d.ctl(["cancel", "1"]).status == 0)
        try d.waitFor("the dependents to fail") { jobs in
            state(jobs, 1) == "cancelled" && state(jobs, 2) == "failed" && state(jobs, 3) == "failed"
        }
        let show = try d.ctl(["show", "2"])
        #expect(show.stdout.contains("needs stage pre was cancelled (job 1)"), "\(show.stdout)")
        #expect(show.stdout.contains("blocked by"), "\(show.stdout)")
        let alone = try d.ctl(["retry", "2"])
        #expect(alone.status != 0)
        #expect(alone.stderr.contains("retry job 1"), "\(alone.stderr)")
        #expect(try d.ctl(["retry", "1"]).status == 0)
        try d.waitFor("the whole pipeline after the retry", timeout: 180) { jobs in
            (1...3).allSatisfy { state(jobs, $0) == "succeeded" }
        }
    }

    @Test func aDaemonKilledDuringAStageResumesThePipeline() throws {
        let d = DaemonHarness()
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        let file = d.dir.appendingPathComponent("pipe.json").path
        try pipelineManifest(preSteps: 300, checkpointEvery: 50).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try d.ctl(["submit", file]).status == 0)
        try d.waitFor("a checkpoint of the pre stage") { (byID($0)[1]?["step"] as? Int ?? 0) >= 60 }
        d.stop(SIGKILL)
        try d.start()
        try d.waitFor("the pipeline after the restart", timeout: 180) { jobs in
            (1...3).allSatisfy { state(jobs, $0) == "succeeded" }
        }
        let log = try String(contentsOfFile: d.state + "/runs/1/stdout.log", encoding: .utf8)
        #expect(log.contains("resuming"), "\(log.suffix(1500))")
        // Killed between stages: the tune jobs were queued, and run once the daemon is back.
        #expect(try d.jobs().count == 3)
    }

    @Test func aDaemonKilledBetweenStagesRunsTheNextStageAfterItsRestart() throws {
        let d = DaemonHarness()
        // The pre stage takes at least 3 s (150 steps of 20 ms), so the holds below reach the tune jobs
        // while they still wait for it; a 20-step pre stage once finished, and its tune jobs started,
        // before `vldctl hold` got through on a fast CI machine.
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        let file = d.dir.appendingPathComponent("pipe.json").path
        try pipelineManifest(preSteps: 150, checkpointEvery: 50).write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try d.ctl(["submit", file]).status == 0)
        // Held, the tune stage cannot start: the kill lands after pre and before tune, whatever the timing.
        #expect(try d.ctl(["hold", "2"]).status == 0 && d.ctl(["hold", "3"]).status == 0)
        try d.waitFor("the pre stage") { state($0, 1) == "succeeded" }
        d.stop(SIGKILL)
        try d.start()
        let ls = try d.ctl(["ls"])
        #expect(ls.stdout.contains("held (needs 1)") == false, "a finished need is not waited for: \(ls.stdout)")
        #expect(try d.ctl(["release", "2"]).status == 0 && d.ctl(["release", "3"]).status == 0)
        try d.waitFor("the tune stage after the restart") { jobs in
            (1...3).allSatisfy { state(jobs, $0) == "succeeded" }
        }
        let jobs = byID(try d.jobs())
        let pre = try #require(jobs[1]?["outbox"] as? String)
        for id in [2, 3] {
            let out = try #require(jobs[id]?["outbox"] as? String)
            #expect(try weights(out) == weights(pre))
        }
    }

    @Test func aDistillPipelineRunsThroughTheDaemon() throws {
        let d = DaemonHarness()
        try d.start()
        let body = #""task": {"type": "bios", "people": 20, "exposures": 10}"#
        let text =
            #"{"name": "dist", "seed": 3, "resources": {"threads": 1}, "stages": {"#
            + #""teacher": {\#(body), "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 48}, "train": {"steps": 20, "batch": 8}}, "#
            + #""student": {"kind": "distill", "teacher": "@teacher", \#(body), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 6, "batch": 8}, "distill": {"cacheTeacher": "topk(8)"}}}}"#
        let file = d.dir.appendingPathComponent("dist.json").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        let submit = try d.ctl(["submit", file])
        #expect(submit.status == 0, "\(submit.stderr)")
        try d.waitFor("the teacher and its student") { jobs in (1...2).allSatisfy { state(jobs, $0) == "succeeded" } }
        let jobs = byID(try d.jobs())
        #expect(jobs[1]?["kind"] as? String == "train" && jobs[2]?["kind"] as? String == "distill", "\(jobs)")
        let out = try #require(jobs[2]?["outbox"] as? String)
        let results =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
            as? [String: Any] ?? [:]
        let teacher = results["teacher"] as? [String: Any] ?? [:]
        #expect(teacher["path"] as? String == (jobs[1]?["outbox"] as? String ?? "?") + "/checkpoint")
        #expect((results["metrics"] as? [String: Any])?["distill.klTeacherStudent"] is Double)
        // The teacher cache is kept where the daemon's jobs share it, not in the published result.
        let cache = (results["distill"] as? [String: Any])?["cache"] as? [String: Any] ?? [:]
        #expect(cache["built"] as? Bool == true && cache["k"] as? Int == 8, "\(results["distill"] ?? "none")")
        let files = try FileManager.default.contentsOfDirectory(atPath: d.state + "/runs/cache")
        #expect(files.contains { $0.hasPrefix("teacher-top8-") }, "\(files)")
        #expect(!FileManager.default.fileExists(atPath: out + "/" + (cache["file"] as? String ?? "x")))
    }

    @Test func referencesTheDaemonMustNotFollowAreRefusedAtSubmission() throws {
        let roots = scratch().appendingPathComponent("checkpoints")
        try FileManager.default.createDirectory(at: roots, withIntermediateDirectories: true)
        let d = DaemonHarness(extraConfig: "checkpoint_roots = \(roots.path)\n")
        try d.start()
        let body =
            #""task": {"type": "bios", "people": 20}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
        let cases: [(String, String)] = [
            (
                #"{"name": "a", \#(body), "init": "/etc/vldd"}"#,
                "init: \"/etc/vldd\" is not under the directories vldd.conf allows"
            ),
            (
                #"{"name": "b", \#(body), "init": "\#(roots.path)/../../etc"}"#,
                "is not under the directories vldd.conf allows"
            ),
            (#"{"name": "c", \#(body), "init": "job:99"}"#, "init: job:99: no job 99 of yours"),
            (
                #"{"name": "e", "stages": {"x": {\#(body), "needs": ["x"]}}}"#,
                "stages.x.needs[0]: a stage cannot need itself"
            ),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            let file = d.dir.appendingPathComponent("bad\(i).json").path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let r = try d.ctl(["submit", file])
            #expect(r.status != 0)
            #expect(r.stderr.contains(expected), "\(text)\n\(r.stderr)")
        }
        #expect(try d.jobs().isEmpty)
    }
}
