// SlurmExecutor.swift: `executor = slurm` (issue 16). Each claimed job becomes one sbatch job
// that runs `vldd worker --job N --state DIR --events FILE` on a compute node; everything else
// (intake, the queue, stages, retries, summaries, the outbox, vldctl) stays the daemon's.
//
// - Submission: runs/<id>/slurm-<attempt>.sh (the worker's environment and command line, no user
//   text) goes to sbatch with --cpus-per-task and --mem from the manifest's resources,
//   --time, --requeue, --signal=B:TERM@<job_stop_grace_seconds> (the batch shell execs the worker,
//   so a preempted or timed-out worker gets SIGTERM early enough to checkpoint), --output
//   runs/<id>/stdout.log, and the job name vld-<state key>-<id>, by which a restarted daemon finds
//   a job whose id it never recorded. The Slurm id goes to the queue (`vldctl show`).
// - Stages: a job is claimed only once the jobs it needs have succeeded (the queue's rule), so
//   no --dependency is used: the dependent's job.json must name its need's published
//   checkpoint, which exists only then.
// - Progress crosses machines through the shared state tree: the worker appends its events
//   (WorkerEvent.swift) to runs/<id>/events-<attempt>.jsonl and the daemon follows the file every
//   turn of its loop. Slurm's state comes from squeue every slurm_poll_seconds; once it is
//   final, scontrol (or sacct, after the controller forgot the job) gives the exit status.
// - Ends follow the local rules: published and COMPLETED -> succeeded; a `stopped` event (a
//   checkpoint after SIGTERM: preemption, the time limit) -> queued again without a failure;
//   anything else (FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, a CANCELLED that
//   vldd did not ask for) -> a failure retried with backoff up to max_failures, unless the
//   worker said a retry cannot help. A retry is a new sbatch job that resumes from the
//   checkpoint in runs/<id>/work/. `vldctl cancel` is scancel.
// - Slurm down: a command that times out or cannot reach the controller marks Slurm unreachable;
//   the daemon then submits nothing and asks again after a backoff (5 s doubling to 5 min).
//   Jobs in flight keep running on the nodes; their events files are still followed.
// - Daemon stop: the Slurm jobs run on. A restart adopts every live job with a Slurm id (and
//   finds by name any it claimed without recording one) instead of requeueing it, then learns
//   how each ended from squeue/scontrol/sacct: nothing is lost or run twice.

import Foundation
import VLDExperiments
import VLDStore

/// A job running as a Slurm job.
struct SlurmRun {
    var id: String
    /// runs/<job>/events-<attempt>.jsonl
    var events: String
    var offset: UInt64 = 0
    var state = "PENDING"
    var reason: String?
    /// Polls in a row in which neither the controller nor accounting knew the job.
    var missing = 0
}

extension Supervisor {
    /// The Slurm job name of a vld job: the state tree's key (two daemons on one cluster never
    /// take each other's jobs) and the job id.
    static func slurmJobName(stateRoot: String, job: Int) -> String {
        "vld-\(SHA256.hex(Array(stateRoot.utf8)).prefix(8))-\(job)"
    }

    var slurmReachable: Bool { Date() >= slurmRetryAt }

    /// Slurm did not answer: back off (5 s, doubling to 5 min) before asking again.
    func slurmUnreachable(_ error: SlurmError) {
        let delay = min(300, 5 * pow(2, Double(min(slurmUnreachableCount, 6))))
        if slurmUnreachableCount == 0 {
            log.warning(
                "slurm: the controller does not answer; nothing is submitted until it does (jobs in flight run on)",
                ["error": error.message, "retry_seconds": Int(delay)])
        }
        slurmUnreachableCount += 1
        slurmRetryAt = Date().addingTimeInterval(delay)
    }

    func slurmAnswered() {
        if slurmUnreachableCount > 0 { log.notice("slurm: the controller answers again") }
        slurmUnreachableCount = 0
        slurmRetryAt = .distantPast
    }

    // MARK: submitting

    func dispatchToSlurm() -> [Int] {
        var started: [Int] = []
        while running.count < config.slurm.maxJobs && slurmReachable {
            let job: JobRecord?
            do {
                // Slurm schedules threads and memory; the daemon only caps the jobs in flight.
                job = try queue.claimNext(
                    boot: boot, maxThreads: Int.max, maxMemoryBytes: Int.max, leaseMilliseconds: leaseMilliseconds)
            } catch {
                log.error("queue: cannot claim a job", ["error": "\(error)"])
                break
            }
            guard let job else { break }
            do {
                try submitToSlurm(job)
                started.append(job.id)
            } catch let e as SlurmError where e.unreachable {
                try? queue.unclaim(job.id, detail: "not submitted: \(e.message); it waits until Slurm answers")
                slurmUnreachable(e)
            } catch {
                // Slurm refused the job (a partition it lacks, resources no node has...): a failure,
                // retried with backoff, then failed with Slurm's reason.
                log.error("slurm: the job was not accepted", ["job": job.id, "error": "\(error)"])
                record(
                    job.id,
                    .failed(
                        error: "Slurm did not accept the job: \(error)", exitCode: nil, signal: nil, retryable: true))
            }
        }
        return started
    }

    private func submitToSlurm(_ job: JobRecord) throws {
        let runDir = try prepare(job)
        let events = runDir + "/events-\(job.attempts).jsonl"
        let vldd = config.slurm.vldd ?? executable
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let environment = workerEnvironment(job, runDirectory: runDir).map { entry -> String in
            let eq = entry.firstIndex(of: "=")!
            return "export \(entry[..<eq])=\(quoted(String(entry[entry.index(after: eq)...])))"
        }
        let script =
            ([
                "#!/bin/sh",
                "# vldd job \(job.id), attempt \(job.attempts): written by vldd for sbatch (executor = slurm).",
            ] + environment + [
                "exec \(quoted(vldd)) worker --job \(job.id) --state \(quoted(tree.root)) --nice \(config.workerNice)"
                    + " --events \(quoted(events))"
            ]).joined(separator: "\n") + "\n"
        let scriptPath = runDir + "/slurm-\(job.attempts).sh"
        try writeFileAtomically(Data(script.utf8), to: scriptPath, mode: 0o750)
        var arguments = [
            "--job-name=\(Self.slurmJobName(stateRoot: tree.root, job: job.id))", "--chdir=\(runDir)",
            "--output=\(runDir)/stdout.log", "--open-mode=append", "--nodes=1", "--ntasks=1",
            "--cpus-per-task=\(job.threads)", "--requeue",
            "--signal=B:TERM@\(Int(min(65535, max(1, config.jobStopGraceSeconds.rounded(.up)))))",
        ]
        if let bytes = job.memoryBytes { arguments.append("--mem=\((bytes + (1 << 20) - 1) >> 20)M") }
        if let t = config.slurm.timeLimit { arguments.append("--time=\(t)") }
        if let p = config.slurm.partition { arguments.append("--partition=\(p)") }
        if let a = config.slurm.account { arguments.append("--account=\(a)") }
        arguments += config.slurm.extraArguments
        let id = try slurmClient.submit(script: scriptPath, arguments: arguments)
        slurmAnswered()
        // Fault injection for the tests: a crash after sbatch answered and before the id is recorded.
        if ProcessInfo.processInfo.environment["VLDD_FAULT"] == "exit-after-sbatch" { _exit(99) }
        try? queue.setSlurmJob(job.id, slurmJobID: id, detail: "submitted to Slurm as job \(id)")
        running[job.id] = Running(
            job: job, pid: 0, pipe: -1, leaseSeconds: config.leaseSeconds, slurm: SlurmRun(id: id, events: events))
        log.info(
            "job submitted to Slurm",
            ["job": job.id, "name": job.name, "slurm_job": id, "threads": job.threads, "attempt": job.attempts])
    }

    // MARK: following

    /// Reads the workers' new events and, every slurm_poll_seconds, Slurm's states; records the
    /// jobs that ended. Called on every turn of the daemon's loop.
    public func followSlurm() {
        let ids = running.filter { $0.value.slurm != nil }.map(\.key)
        guard !ids.isEmpty else { return }
        for id in ids { readEvents(id) }
        guard Date() >= nextSlurmPoll, slurmReachable else { return }
        nextSlurmPoll = Date().addingTimeInterval(config.slurm.pollSeconds)
        let slurmIDs = ids.compactMap { running[$0]?.slurm?.id }
        let states: [String: SlurmJobInfo]
        do {
            states = try slurmClient.states(slurmIDs)
            slurmAnswered()
        } catch let e as SlurmError {
            if e.unreachable { slurmUnreachable(e) } else { log.warning("slurm: squeue failed", ["error": e.message]) }
            return
        } catch { return }
        for id in ids.sorted() {
            guard let run = running[id]?.slurm else { continue }
            let info = states[run.id]
            if let info, !info.isTerminal {
                if info.state.hasPrefix("REQUEUE") || (info.state == "PENDING" && run.state != "PENDING") {
                    // Slurm requeued the job itself (a node failure, preemption with requeue): the
                    // next run's events decide; what the last run said no longer does.
                    running[id]?.stopped = false
                    running[id]?.published = nil
                    running[id]?.lastError = nil
                    running[id]?.retryable = nil
                }
                if info.state != run.state || info.reason != run.reason {
                    running[id]?.slurm?.state = info.state
                    running[id]?.slurm?.reason = info.reason
                    try? queue.setSlurmState(id, info.state + (info.reason.map { " (\($0))" } ?? ""))
                }
                // Slurm holds the job: the daemon still knows where it is.
                if running[id]?.beat == false { running[id]?.beat = true }
                flushProgress(id, force: false)
                continue
            }
            // Ended, or no longer in the controller's list: ask for the details.
            let detail: SlurmJobInfo?
            do { detail = try slurmClient.detail(run.id) } catch let e as SlurmError {
                if e.unreachable { slurmUnreachable(e) }
                return
            } catch { return }
            if let detail, detail.isTerminal {
                finishOnSlurm(id, detail)
            } else if detail == nil {
                // Neither the controller nor accounting knows it (purged, no accounting): after
                // three polls, decide from the worker's own events.
                running[id]?.slurm?.missing += 1
                if (running[id]?.slurm?.missing ?? 0) >= 3 { finishOnSlurm(id, nil) }
            }
        }
    }

    /// Appends what the worker wrote to its events file since the last read.
    func readEvents(_ id: Int) {
        guard let run = running[id]?.slurm else { return }
        let fd = open(run.events, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset = run.offset
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            offset += UInt64(n)
            running[id]?.buffer.append(contentsOf: chunk[0..<n])
            running[id]?.lastHeard = DispatchTime.now()
        }
        running[id]?.slurm?.offset = offset
        while let newline = running[id]?.buffer.firstIndex(of: 0x0A) {
            let line = Array(running[id]!.buffer[..<newline])
            running[id]!.buffer.removeSubrange(...newline)
            handle(event: line, job: id)
        }
        flushProgress(id, force: false)
    }

    /// Records how a Slurm job ended (`info` nil: Slurm no longer knows it).
    private func finishOnSlurm(_ id: Int, _ info: SlurmJobInfo?) {
        readEvents(id)
        flushProgress(id, force: true)
        guard let entry = running.removeValue(forKey: id), let run = entry.slurm else { return }
        try? queue.setSlurmState(
            id,
            info.map {
                $0.state + ($0.exitCode.map { " exit \($0)" } ?? "") + ($0.signal.map { " signal \($0)" } ?? "")
            } ?? "unknown to Slurm")
        let ended = info.map { "Slurm job \(run.id) ended \($0.state)" } ?? "Slurm no longer knows job \(run.id)"
        let outcome: JobQueue.Outcome
        if let path = entry.published, info == nil || info?.state == "COMPLETED" {
            outcome = .succeeded(outbox: path)
        } else if entry.stopped && info?.state != "CANCELLED" {
            // Preemption or the time limit: the worker checkpointed on SIGTERM. Queued again
            // without a failure; the next attempt resumes.
            outcome = .preempted(detail: "stopped after a checkpoint (\(ended))")
        } else {
            // A CANCELLED that vldd did not ask for (a cancelling job ends cancelled in `finish`
            // whatever the outcome) is someone's scancel: a failure, so that max_failures bounds
            // how often the daemon submits a job an operator keeps cancelling.
            let code = info?.exitCode
            let status =
                "\(ended)\(info?.reason.map { " (\($0))" } ?? "")" + (code.map { ", exit status \($0)" } ?? "")
                + (info?.signal.map { ", signal \($0)" } ?? "")
            let why =
                info?.state == "CANCELLED"
                ? "cancelled on Slurm, not through vldd (\(status))"
                : entry.lastError.map { "\($0) (\(status))" } ?? status
            let retryable = entry.retryable ?? (code != Int(Worker.exitPermanent))
            outcome = .failed(
                error: why, exitCode: code, signal: info?.signal,
                retryable: retryable && code != Int(Worker.exitPermanent))
        }
        record(id, outcome)
    }

    /// scancel for a job whose cancel was requested (tried again on the next turns until Slurm
    /// answers); the job is recorded cancelled once Slurm reports it ended.
    func cancelOnSlurm(_ id: Int) {
        guard let run = running[id]?.slurm, slurmReachable else { return }
        do {
            try slurmClient.cancel(run.id)
            running[id]?.termSentAt = Date()
            log.info("job cancelled on Slurm", ["job": id, "slurm_job": run.id])
        } catch let e as SlurmError where e.unreachable {
            slurmUnreachable(e)
        } catch {
            log.warning("slurm: scancel failed", ["job": id, "slurm_job": run.id, "error": "\(error)"])
            running[id]?.termSentAt = Date()
        }
    }

    // MARK: restarts

    /// Follows the live jobs a previous daemon left on Slurm (after `recoverSlurmJobs`).
    public func adopt(_ jobs: [JobRecord]) {
        for job in jobs {
            guard let slurmID = job.slurmJobID else { continue }
            let events = tree.run(job.id) + "/events-\(job.attempts).jsonl"
            running[job.id] = Running(
                job: job, pid: 0, pipe: -1, leaseSeconds: config.leaseSeconds,
                slurm: SlurmRun(id: slurmID, events: events))
        }
        if !jobs.isEmpty {
            log.notice(
                "slurm: following the jobs a previous daemon left on Slurm",
                ["jobs": jobs.map { "\($0.id)=\($0.slurmJobID ?? "?")" }.joined(separator: ",")])
        }
    }

    /// At daemon start, before the queue requeues what a previous daemon left running: with
    /// `executor = slurm`, live jobs on Slurm become this boot's (a job claimed without a recorded
    /// Slurm id is looked up by its job name); with `local`, they are cancelled on Slurm so that
    /// the requeued job does not run twice. Returns the jobs to follow.
    public static func recoverSlurmJobs(
        queue: JobQueue, boot: Int, config: DaemonConfig, tree: StateTree, log: Logger
    ) throws -> [JobRecord] {
        let live = try queue.jobs(JobFilter(states: [.running, .cancelling]))
        let client = SlurmClient()
        guard config.executor == .slurm else {
            for job in live where job.slurmJobID != nil {
                let id = job.slurmJobID!
                do {
                    try client.cancel(id)
                    log.warning(
                        "slurm: executor is local now; cancelled a Slurm job a previous daemon started",
                        ["job": job.id, "slurm_job": id])
                } catch {
                    log.error(
                        "slurm: executor is local now and a previous daemon's Slurm job could not be cancelled; "
                            + "cancel it by hand or the job may run twice",
                        ["job": job.id, "slurm_job": id, "error": "\(error)"])
                }
            }
            return []
        }
        for job in live where job.slurmJobID == nil {
            // Claimed, then the daemon died before sbatch answered (or before recording it).
            let name = slurmJobName(stateRoot: tree.root, job: job.id)
            if let found = try? client.find(name: name), let id = found.last {
                try queue.setSlurmJob(job.id, slurmJobID: id, detail: "found on Slurm by name \(name) as job \(id)")
            }
        }
        return try queue.adoptSlurmJobs(
            boot: boot, leaseMilliseconds: Int64(config.leaseSeconds * 1000))
    }
}
