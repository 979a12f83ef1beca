// SlurmTests.swift: vldd with `executor = slurm` against a real Slurm cluster on this machine
// (scripts/slurm-local up: munged, slurmdbd, slurmctld and slurmd, one node, partition "vld";
// .ci/run starts it). Grids and pipelines give the local executor's results, vldctl cancel
// reaches Slurm, a worker killed by Slurm is retried and resumes from its checkpoint, a daemon
// restart mid-run neither loses nor repeats a job, and a controller that does not answer stalls
// nothing. Without a cluster that answers, the suite is skipped (and says so).

import Foundation
import Testing

/// Runs a Slurm command from /usr/bin.
func slurmCommand(_ args: [String]) -> Run {
    (try? runProcess(URL(fileURLWithPath: "/usr/bin/" + args[0]), Array(args.dropFirst())))
        ?? Run(status: -1, stdout: "", stderr: "\(args[0]) is not installed")
}

/// A Slurm cluster answers here with a partition that is up.
let slurmAnswers: Bool = {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sinfo") else { return false }
    let r = slurmCommand(["sinfo", "-h", "-o", "%a"])
    return r.status == 0 && r.stdout.contains("up")
}()

/// The Slurm state of job `id` (squeue while the controller holds it).
func slurmState(_ id: String) -> String {
    slurmCommand(["squeue", "-h", "--states=all", "-j", id, "-o", "%T"]).stdout.trimmingCharacters(
        in: .whitespacesAndNewlines)
}

/// A daemon with the Slurm executor, polling Slurm twice a second.
func slurmHarness(_ extra: String = "") -> DaemonHarness {
    DaemonHarness(extraConfig: "executor = slurm\nslurm_poll_seconds = 0.5\n" + extra)
}

/// Cancels on Slurm whatever the harness's jobs still run there (a failed test leaves nothing).
func cancelOnSlurm(_ d: DaemonHarness) {
    for job in (try? d.jobs()) ?? [] {
        if let id = job["slurmJob"] as? String { _ = slurmCommand(["scancel", id]) }
    }
}

/// results.json (without timing) of every succeeded job, by trial name.
func resultsByName(_ d: DaemonHarness) throws -> [String: NSDictionary] {
    var out: [String: NSDictionary] = [:]
    for job in try d.jobs() where job["state"] as? String == "succeeded" {
        let name = try #require(job["name"] as? String), outbox = try #require(job["outbox"] as? String)
        out[name] = NSDictionary(dictionary: try resultsWithoutTiming(outbox))
    }
    return out
}

/// results.json (without timing) of `quickManifest(name:steps:checkpointEvery: 50)` run without
/// interruption by a local daemon: what a resumed run must reproduce.
func uninterruptedResults(_ name: String, steps: Int) throws -> [String: Any] {
    let reference = DaemonHarness()
    try reference.start()
    try reference.submitManifest(name, steps: steps, checkpointEvery: 50)
    try reference.waitFor("the reference run") { states($0) == ["succeeded"] }
    reference.stop()
    return try resultsWithoutTiming(reference.state + "/outbox/1-\(name)")
}

@Suite(
    .serialized,
    .enabled(if: slurmAnswers, "no Slurm cluster answers here (scripts/slurm-local up starts a one-node one)"))
struct SlurmTests {
    @Test func aGridAndAPipelineOnSlurmGiveTheLocalExecutorsResults() throws {
        let grid = quickManifest(name: "g", steps: 20, grid: #", "grid": {"model.schedule": ["base", "cyc(1)"]}"#)
        func runAll(_ d: DaemonHarness) throws -> [String: NSDictionary] {
            try d.start()
            for (name, text) in [("g", grid), ("pipe", pipelineManifest())] {
                let file = d.dir.appendingPathComponent("\(name).json").path
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let submit = try d.ctl(["submit", file])
                #expect(submit.status == 0, "\(submit.stderr)")
            }
            try d.waitFor("five jobs to succeed", timeout: 180) {
                states($0) == Array(repeating: "succeeded", count: 5)
            }
            return try resultsByName(d)
        }
        let local = DaemonHarness(extraConfig: "workers = 2\ntotal_threads = 2\n")
        let expected = try runAll(local)
        local.stop()
        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        let got = try runAll(d)
        #expect(got.count == 5 && Set(got.keys) == Set(expected.keys))
        for (name, results) in expected { #expect(got[name] == results, "\(name) differs from the local executor's") }
        // Every job ran as a Slurm job of its own, which Slurm reports COMPLETED.
        let jobs = try d.jobs()
        let slurmIDs = Set(jobs.compactMap { $0["slurmJob"] as? String })
        #expect(slurmIDs.count == 5, "\(jobs)")
        for id in slurmIDs { #expect(slurmState(id) == "COMPLETED", "Slurm job \(id)") }
        let show = try d.ctl(["show", "3"])
        #expect(show.stdout.contains("slurm job") && show.stdout.contains("COMPLETED exit 0"), "\(show.stdout)")
        #expect(show.stdout.contains("submitted to Slurm as job"), "\(show.stdout)")
        // The tune stage started from the pre stage's published checkpoint, on its node.
        let pipeJobs = jobs.filter { ($0["name"] as? String ?? "").hasPrefix("pipe/") }
        let pre = try #require(pipeJobs.first { $0["stage"] as? String == "pre" }?["outbox"] as? String)
        for tune in pipeJobs where tune["stage"] as? String == "tune" {
            let id = try #require(tune["id"] as? Int)
            let log = try String(contentsOfFile: d.state + "/runs/\(id)/stdout.log", encoding: .utf8)
            #expect(log.contains("initialized the weights from @pre (\(pre)/checkpoint)"), "\(log.prefix(2000))")
        }
        // doctor checks the cluster, and with --probe a node's view of the state tree.
        let doctor = try d.ctl(["doctor", "--probe"])
        #expect(
            doctor.stdout.contains("ok    the Slurm controller answers; partition vld (default) up")
                && doctor.stdout.contains("sees this state tree at \(d.state)"), "\(doctor.stdout)")
        try d.waitFor("both summaries") { _ in
            FileManager.default.fileExists(atPath: d.state + "/outbox/summary-1-g/summary.csv")
                && FileManager.default.fileExists(atPath: d.state + "/outbox/summary-2-pipe/summary.csv")
        }
        #expect(d.stop().status == 0)
    }

    @Test func vldctlCancelReachesSlurm() throws {
        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        try d.start()
        try d.submitManifest("long", steps: 100_000, checkpointEvery: 1000)
        try d.waitFor("the job to run on Slurm") { ($0.first?["step"] as? Int ?? 0) > 5 }
        let slurmID = try #require(try d.jobs().first?["slurmJob"] as? String)
        #expect(slurmState(slurmID) == "RUNNING")
        let cancel = try d.ctl(["cancel", "1"])
        #expect(cancel.status == 0, "\(cancel.stderr)")
        try d.waitFor("the cancel") { states($0) == ["cancelled"] }
        #expect(slurmState(slurmID) == "CANCELLED")
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("cancel requested") && show.stdout.contains("CANCELLED"), "\(show.stdout)")
        #expect(d.log.contains("job cancelled on Slurm"))
    }

    @Test func aWorkerStoppedOrKilledOnSlurmIsRetriedAndResumesFromItsCheckpoint() throws {
        let expected = try uninterruptedResults("k", steps: 600)

        let d = slurmHarness("max_failures = 4\n")
        defer { cancelOnSlurm(d) }
        // At least 12 s for 600 steps, so each signal lands between checkpoints however fast the machine.
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        try d.submitManifest("k", steps: 600, checkpointEvery: 50)
        func slurmJob() throws -> String { try #require(try d.jobs().first?["slurmJob"] as? String) }
        func waitForAttempt(_ n: Int, pastStep step: Int) throws {
            try d.waitFor("attempt \(n) past step \(step)", timeout: 120) {
                ($0.first?["attempts"] as? Int) == n && ($0.first?["step"] as? Int ?? 0) >= step
            }
        }
        // SIGTERM to the worker alone, as Slurm sends before a time limit or a preemption
        // (--signal=B:TERM): it checkpoints and exits 75; queued again without a failure.
        try waitForAttempt(1, pastStep: 120)
        let first = try slurmJob()
        #expect(slurmCommand(["scancel", "--batch", "--signal=TERM", first]).status == 0)
        // Slurm turns a KILL of the job into its cancel sequence (SIGTERM, then SIGKILL after
        // KillWait): the worker checkpoints, and vldd counts a cancel it did not ask for as a failure.
        try waitForAttempt(2, pastStep: 250)
        let second = try slurmJob()
        #expect(second != first)
        let kill = slurmCommand(["scancel", "--signal=KILL", second])
        #expect(kill.status == 0, "\(kill.stderr)")
        // SIGKILL to the worker itself (the batch shell execs it): no checkpoint on the way out.
        try waitForAttempt(3, pastStep: 380)
        let third = try slurmJob()
        #expect(slurmCommand(["scancel", "--batch", "--signal=KILL", third]).status == 0)
        try d.waitFor("the retried run", timeout: 180) { states($0) == ["succeeded"] }
        let job = try #require(try d.jobs().first)
        #expect(job["attempts"] as? Int == 4 && job["failures"] as? Int == 2, "\(job)")
        let fourth = try slurmJob()
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("stopped after a checkpoint (Slurm job \(first) ended FAILED)"), "\(show.stdout)")
        #expect(
            show.stdout.contains("cancelled on Slurm, not through vldd (Slurm job \(second) ended CANCELLED"),
            "\(show.stdout)")
        #expect(
            show.stdout.contains("Slurm job \(third) ended FAILED") && show.stdout.contains("signal 9"),
            "\(show.stdout)")
        #expect(show.stdout.contains("submitted to Slurm as job \(fourth)"), "\(show.stdout)")
        let log = try String(contentsOfFile: d.state + "/runs/1/stdout.log", encoding: .utf8)
        #expect(log.components(separatedBy: "resuming at step").count - 1 == 3, "\(log.suffix(3000))")
        let got = try resultsWithoutTiming(d.state + "/outbox/1-k")
        #expect(NSDictionary(dictionary: expected).isEqual(to: got), "\(expected) vs \(got)")
    }

    @Test func aDaemonRestartMidRunNeitherLosesNorRepeatsTheJob() throws {
        let expected = try uninterruptedResults("r", steps: 400)

        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        try d.submitManifest("r", steps: 400, checkpointEvery: 50)
        try d.waitFor("the job to run") { ($0.first?["step"] as? Int ?? 0) >= 40 }
        let slurmID = try #require(try d.jobs().first?["slurmJob"] as? String)
        // A clean stop leaves the Slurm job running; the next daemon follows it.
        #expect(d.stop().status == 0)
        #expect(d.log.contains("jobs left running on Slurm"))
        #expect(slurmState(slurmID) == "RUNNING")
        try d.start()
        let stepBefore = try d.jobs().first?["step"] as? Int ?? 0
        try d.waitFor("progress followed after the restart") {
            ($0.first?["step"] as? Int ?? 0) > stepBefore && states($0) == ["running"]
        }
        // A crash, and the job ends while no daemon runs.
        d.stop(SIGKILL)
        let deadline = Date().addingTimeInterval(120)
        while slurmState(slurmID) != "COMPLETED" && Date() < deadline { usleep(200_000) }
        #expect(slurmState(slurmID) == "COMPLETED")
        try d.start()
        try d.waitFor("the job's success") { states($0) == ["succeeded"] }
        let job = try #require(try d.jobs().first)
        #expect(job["attempts"] as? Int == 1 && job["slurmJob"] as? String == slurmID, "\(job)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.state + "/outbox") == ["1-r"])
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("followed again by daemon boot 2"), "\(show.stdout)")
        #expect(show.stdout.contains("followed again by daemon boot 3"), "\(show.stdout)")
        #expect(!show.stdout.contains("requeued"), "\(show.stdout)")
        let got = try resultsWithoutTiming(d.state + "/outbox/1-r")
        #expect(NSDictionary(dictionary: expected).isEqual(to: got), "\(expected) vs \(got)")
    }

    @Test func restartingWithTheLocalExecutorCancelsTheSlurmJobAndResumesHere() throws {
        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        try d.submitManifest("sw", steps: 400, checkpointEvery: 50)
        try d.waitFor("a checkpoint on Slurm") { ($0.first?["step"] as? Int ?? 0) >= 60 }
        let slurmID = try #require(try d.jobs().first?["slurmJob"] as? String)
        d.stop(SIGKILL)
        let config = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "executor = slurm\n", with: "").write(
            toFile: d.configPath, atomically: true, encoding: .utf8)
        try d.start()
        #expect(d.log.contains("executor is local now; cancelled a Slurm job a previous daemon started"), "\(d.log)")
        let deadline = Date().addingTimeInterval(30)
        while slurmState(slurmID) != "CANCELLED" && Date() < deadline { usleep(200_000) }
        #expect(slurmState(slurmID) == "CANCELLED")
        try d.waitFor("the job, run here") { states($0) == ["succeeded"] }
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("requeued to resume from its last checkpoint"), "\(show.stdout)")
        let log = try String(contentsOfFile: d.state + "/runs/1/stdout.log", encoding: .utf8)
        #expect(log.contains("resuming at step"), "\(log.suffix(1500))")
    }

    @Test func aPendingJobAndARefusedOneAreShownWithSlurmsReasons() throws {
        // --hold from slurm_extra_args: Slurm keeps the job pending until it is released.
        let d = slurmHarness("slurm_extra_args = --hold\n")
        defer { cancelOnSlurm(d) }
        try d.start()
        try d.submitManifest("p", steps: 10)
        try d.waitFor("Slurm's pending reason") { ($0.first?["slurmState"] as? String) == "PENDING (JobHeldUser)" }
        let ls = try d.ctl(["ls"])
        #expect(ls.stdout.contains("running (pending on Slurm)"), "\(ls.stdout)")
        let slurmID = try #require(try d.jobs().first?["slurmJob"] as? String)
        let show = try d.ctl(["show", "1"])
        #expect(show.stdout.contains("slurm job      \(slurmID) (PENDING (JobHeldUser))"), "\(show.stdout)")
        #expect(slurmCommand(["scontrol", "release", slurmID]).status == 0)
        try d.waitFor("the released job") { states($0) == ["succeeded"] }

        // A partition Slurm does not have: sbatch refuses, and the job fails with its reason
        // after max_failures (the daemon does not take a refusal for an unreachable controller).
        let e = slurmHarness("slurm_partition = vld-no-such-partition\nmax_failures = 2\n")
        try e.start()
        try e.submitManifest("r", steps: 10)
        try e.waitFor("the refusal") { states($0) == ["failed"] }
        let job = try #require(try e.jobs().first)
        let error = job["error"] as? String ?? ""
        #expect(error.hasPrefix("Slurm did not accept the job: sbatch failed (exit 1)"), "\(error)")
        #expect(error.lowercased().contains("invalid partition"), "\(error)")
        #expect(job["failures"] as? Int == 2, "\(job)")
        #expect(!e.log.contains("the controller does not answer"))
    }

    @Test func aCrashBeforeTheSlurmIdIsRecordedIsFoundByTheJobsName() throws {
        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        d.environment["VLDD_FAULT"] = "exit-after-sbatch"
        try d.start()
        try d.submitManifest("c", steps: 20)
        d.process?.waitUntilExit()
        #expect(d.process?.terminationStatus == 99)
        d.environment = [:]
        try d.start()
        try d.waitFor("the job") { states($0) == ["succeeded"] }
        let job = try #require(try d.jobs().first)
        let slurmID = try #require(job["slurmJob"] as? String)
        #expect(job["attempts"] as? Int == 1, "\(job)")
        let show = try d.ctl(["show", "1"])
        #expect(
            show.stdout.contains("found on Slurm by name vld-") && show.stdout.contains("as job \(slurmID)"),
            "\(show.stdout)")
        // One Slurm job ran under the job's name: nothing was submitted twice.
        let name = try #require(
            slurmCommand(["squeue", "-h", "--states=all", "-j", slurmID, "-o", "%j"]).stdout
                .split(separator: "\n").first.map(String.init))
        #expect(name.hasSuffix("-1.1"), "\(name)")
        let runs = slurmCommand(["squeue", "-h", "--states=all", "-o", "%j"]).stdout.split(separator: "\n")
            .filter { $0.hasPrefix(name.dropLast(1)) }
        #expect(runs.count == 1, "\(runs)")
    }

    /// slurmctld stopped with SIGSTOP: the controller neither answers nor refuses. Needs root and
    /// a controller on this machine (scripts/slurm-local).
    @Test(
        .enabled(
            if: getuid() == 0 && !slurmCommand(["pgrep", "-x", "slurmctld"]).stdout.isEmpty,
            "needs root and slurmctld on this machine"))
    func aControllerThatDoesNotAnswerStallsNothing() throws {
        let d = slurmHarness()
        defer { cancelOnSlurm(d) }
        d.environment["VLD_FAULT_STEP_DELAY_MS"] = "20"
        try d.start()
        // A job in flight before the controller stops (at least 30 s of steps; the stalled sbatch
        // alone takes 10).
        try d.submitManifest("before", steps: 1500, checkpointEvery: 500)
        try d.waitFor("the first job to run") { ($0.first?["step"] as? Int ?? 0) > 10 }
        let pid = try #require(Int32(slurmCommand(["pgrep", "-x", "slurmctld"]).stdout.split(separator: "\n")[0]))
        kill(pid, SIGSTOP)
        var resumed = false
        defer { if !resumed { kill(pid, SIGCONT) } }
        try d.submitManifest("during", steps: 10)
        try d.waitFor("the daemon to notice", timeout: 60) { _ in d.log.contains("the controller does not answer") }
        // The daemon still answers; the job whose sbatch got no answer is kept (it may exist) and
        // has no failure; the job in flight runs on, its progress read from its events file.
        let t0 = Date()
        let jobs = Dictionary(uniqueKeysWithValues: try d.jobs().map { ($0["id"] as? Int ?? 0, $0) })
        #expect(Date().timeIntervalSince(t0) < 5)
        let during = try #require(jobs[2])
        #expect(during["state"] as? String == "running" && during["failures"] as? Int == 0, "\(during)")
        #expect((during["slurmState"] as? String ?? "").hasPrefix("submission unknown"), "\(during)")
        let step = jobs[1]?["step"] as? Int ?? 0
        try d.waitFor("progress while the controller is stopped", timeout: 30) { jobs in
            (jobs.first { $0["id"] as? Int == 1 }?["step"] as? Int ?? 0) > step
        }
        kill(pid, SIGCONT)
        resumed = true
        try d.waitFor("both jobs once Slurm answers", timeout: 180) { states($0) == ["succeeded", "succeeded"] }
        #expect(d.log.contains("the controller answers again"))
        // The unconfirmed submission was found by name or found not to exist; either way one
        // Slurm job of that name completed, and any other was cancelled as a duplicate.
        let show = try d.ctl(["show", "2"])
        #expect(
            show.stdout.contains("found on Slurm by name") || show.stdout.contains("it was not submitted"),
            "\(show.stdout)")
        let slurmID = try #require(try d.jobs().first { $0["id"] as? Int == 2 }?["slurmJob"] as? String)
        // Names are vld-<key>-<job>.<attempt>: every attempt of job 2.
        let name = slurmCommand(["squeue", "-h", "--states=all", "-j", slurmID, "-o", "%j"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let job2 = String(name[...(try #require(name.lastIndex(of: ".")))])
        let runs = slurmCommand(["squeue", "-h", "--states=all", "-o", "%j|%T"]).stdout.split(separator: "\n")
            .filter { $0.hasPrefix(job2) }.map { String($0.split(separator: "|").last ?? "") }
        #expect(
            runs.filter { $0 == "COMPLETED" }.count == 1 && runs.allSatisfy { $0 == "COMPLETED" || $0 == "CANCELLED" },
            "\(runs)")
    }
}
