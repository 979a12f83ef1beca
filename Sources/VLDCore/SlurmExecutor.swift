// SlurmExecutor.swift: `executor = slurm` (issue 16). Each claimed job becomes one sbatch job
// that runs `vldd worker --job N --state DIR --events FILE` on a compute node; everything else
// (intake, the queue, stages, retries, summaries, the outbox, vldctl) stays the daemon's.
//
// - Submission: runs/<id>/slurm-<attempt>.sh (the worker's environment and command line, no user
//   text) goes to sbatch with --cpus-per-task and --mem from the manifest's resources, --time,
//   --requeue, --signal=B:TERM@<job_stop_grace_seconds> (the batch shell execs the worker, so a
//   worker about to reach its time limit gets SIGTERM early enough to checkpoint; at preemption
//   Slurm's own SIGTERM reaches it the same way), --output runs/<id>/stdout.log, and the job name
//   vld-<key>-<id>.<attempt>, the key being a hash of the queue database's first boot and the
//   state directory: each vldd names its Slurm jobs apart. The Slurm id goes to the queue.
// - Stages: a job is claimed only once the jobs it needs have succeeded (the queue's rule), so
//   no --dependency is used: the dependent's job.json must name its need's published
//   checkpoint, which exists only then.
// - Progress crosses machines through the shared state tree: the worker appends its events
//   (WorkerEvent.swift) to runs/<id>/events-<attempt>.jsonl and the daemon follows the file every
//   turn of its loop. Every slurm_poll_seconds one `squeue --me` lists the jobs with the
//   daemon's name prefix; for a job that ended or is no longer listed, scontrol (or sacct, once
//   the controller forgot it) gives the exit status.
// - Ends follow the local rules: published and COMPLETED -> succeeded; a checkpoint after SIGTERM
//   (the `stopped` event, or exit 75: time limit, preemption) -> queued again without a failure;
//   anything else (FAILED, TIMEOUT, NODE_FAIL, PREEMPTED, OUT_OF_MEMORY, a CANCELLED that vldd
//   did not ask for) -> a failure retried with backoff up to max_failures, unless the worker said
//   a retry cannot help. A retry is a new sbatch job that resumes from the checkpoint in
//   runs/<id>/work/. Each run of the worker starts its events with `started`, which clears what
//   an earlier run (a Slurm requeue) said. `vldctl cancel` is scancel.
// - Never twice: an sbatch whose answer was lost (a timeout, an unreadable answer) may still have
//   created the job, so the claim is kept and the job looked up by name once Slurm answers; only
//   after two listings without it is the claim given back. A live Slurm job with the daemon's
//   prefix that is not the one the daemon follows for its vld job (a submission found late) is
//   cancelled.
// - Slurm down: a command that times out or cannot reach the controller marks Slurm unreachable;
//   the daemon then submits nothing and asks again after a backoff (5 s doubling to 5 min).
//   Jobs in flight keep running on the nodes; their events files are still followed. A submit
//   limit ("not now") pauses submission for 30 s and gives the claim back. A refusal (an unknown
//   partition...) is a failure of that job, with Slurm's message. Slurm commands in one turn of
//   the loop stop after 5 s of submitting, and the watchdog is pinged between them.
// - Daemon stop: the Slurm jobs run on. A restart follows every live job again (those whose
//   Slurm id was never recorded are looked up by name) instead of requeueing it, then learns how
//   each ended from squeue/scontrol/sacct (SlurmRestarts.swift).

import Foundation
import VLDExperiments
import VLDStore

/// A job running as a Slurm job.
struct SlurmRun {
    /// The Slurm job id; nil while it is not known whether sbatch created the job.
    var id: String?
    /// The attempt it runs (its job name ends in ".<attempt>").
    var attempt: Int
    /// runs/<job>/events-<attempt>.jsonl
    var events: String
    var offset: UInt64 = 0
    var state = "PENDING"
    var reason: String?
    /// Polls in a row in which neither the controller nor accounting knew the job.
    var missing = 0
    /// Listings that did not show a job whose submission is unknown.
    var notFound = 0
    var heldWarned = false
}

extension Supervisor {
    /// The prefix of this daemon's Slurm job names: "vld-" and 8 hex digits of a hash of the
    /// database's first boot and the state directory (two vldd on one cluster and user, or a copy
    /// of a database restored elsewhere, never take each other's jobs).
    public static func slurmNamePrefix(queue: JobQueue, stateRoot: String) throws -> String {
        guard
            let first = try queue.db.query("SELECT boot_uuid FROM daemon_boots ORDER BY id LIMIT 1").first?.string(
                "boot_uuid")
        else { throw SystemError(message: "the queue has no daemon boot yet") }
        return "vld-\(SHA256.hex(Array((first + "\n" + stateRoot).utf8)).prefix(8))-"
    }

    /// Job `id`'s Slurm job name for `attempt`.
    func slurmJobName(_ id: Int, attempt: Int) -> String { "\(slurmPrefix)\(id).\(attempt)" }

    /// Gives a claim back to the queue; if the queue refuses (it changed meanwhile), records it
    /// as stopped so that it is not left running outside the supervisor.
    func giveBack(_ id: Int, detail: String, countAttempt: Bool) {
        do { try queue.unclaim(id, detail: detail, countAttempt: countAttempt) } catch {
            record(id, .preempted(detail: detail))
        }
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
        let turn = Date()
        while running.count < config.slurm.maxJobs && slurmReachable && Date() >= slurmSubmitRetryAt
            && Date().timeIntervalSince(turn) < 5
        {
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
            defer { keepAlive() }
            let runDir: String
            do { runDir = try prepare(job) } catch {
                record(
                    job.id,
                    .failed(error: "cannot prepare the job: \(error)", exitCode: nil, signal: nil, retryable: true))
                continue
            }
            let events = runDir + "/events-\(job.attempts).jsonl"
            do {
                try submitToSlurm(job, runDirectory: runDir, events: events)
                started.append(job.id)
            } catch let e as SlurmError {
                switch e.kind {
                case .unreachable:
                    // The job may exist: follow it under an unknown id until a listing settles it.
                    running[job.id] = Running(
                        job: job, pid: 0, pipe: -1, leaseSeconds: config.leaseSeconds,
                        slurm: SlurmRun(id: nil, attempt: job.attempts, events: events))
                    try? queue.setSlurmState(job.id, "submission unknown (\(e.message)); looked up by name")
                    slurmUnreachable(e)
                case .notRun:
                    giveBack(job.id, detail: "not submitted: \(e.message)", countAttempt: false)
                    slurmUnreachable(e)
                case .busy:
                    giveBack(
                        job.id, detail: "not submitted: \(e.message); submitted again in 30 s", countAttempt: false)
                    log.notice("slurm: a submit limit was reached; pausing submission for 30 s", ["error": e.message])
                    slurmSubmitRetryAt = Date().addingTimeInterval(30)
                case .refused:
                    // Slurm refused the job (a partition it lacks, resources no node has...): a
                    // failure, retried with backoff, then failed with Slurm's reason.
                    log.error("slurm: the job was not accepted", ["job": job.id, "error": e.message])
                    record(
                        job.id,
                        .failed(
                            error: "Slurm did not accept the job: \(e.message)", exitCode: nil, signal: nil,
                            retryable: true))
                }
            } catch {
                record(
                    job.id,
                    .failed(error: "cannot submit the job: \(error)", exitCode: nil, signal: nil, retryable: true))
            }
        }
        return started
    }

    private func submitToSlurm(_ job: JobRecord, runDirectory runDir: String, events: String) throws {
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
            "--job-name=\(slurmJobName(job.id, attempt: job.attempts))", "--chdir=\(runDir)",
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
            job: job, pid: 0, pipe: -1, leaseSeconds: config.leaseSeconds,
            slurm: SlurmRun(id: id, attempt: job.attempts, events: events))
        log.info(
            "job submitted to Slurm",
            ["job": job.id, "name": job.name, "slurm_job": id, "threads": job.threads, "attempt": job.attempts])
    }

    // MARK: following

    /// Reads the workers' new events and, every slurm_poll_seconds, Slurm's list of the daemon's
    /// jobs; settles unknown submissions, cancels strays, records the jobs that ended. Called on
    /// every turn of the daemon's loop.
    public func followSlurm() {
        let ids = running.filter { $0.value.slurm != nil }.map(\.key).sorted()
        for id in ids { readEvents(id) }
        guard !ids.isEmpty, Date() >= nextSlurmPoll, slurmReachable else { return }
        nextSlurmPoll = Date().addingTimeInterval(config.slurm.pollSeconds)
        let listed: [String: SlurmJobInfo]
        do {
            listed = try slurmClient.jobs(named: slurmPrefix)
            slurmAnswered()
        } catch let e as SlurmError {
            if e.unreachable { slurmUnreachable(e) } else { log.warning("slurm: squeue failed", ["error": e.message]) }
            return
        } catch { return }
        keepAlive()
        var byJob: [Int: [(id: String, attempt: Int, info: SlurmJobInfo)]] = [:]
        for (slurmID, info) in listed {
            let parts = (info.name ?? "").dropFirst(slurmPrefix.count).split(separator: ".")
            guard parts.count == 2, let job = Int(parts[0]), let attempt = Int(parts[1]) else { continue }
            byJob[job, default: []].append((slurmID, attempt, info))
        }
        settleUnknownSubmissions(ids, byJob)
        cancelStrays(byJob)
        let turn = Date()
        for id in ids {
            guard let run = running[id]?.slurm, let slurmID = run.id else { continue }
            if Date().timeIntervalSince(turn) > 5 {
                // The rest on the next turn: the loop must go on (signals, intake, cancels).
                nextSlurmPoll = .distantPast
                break
            }
            if let info = listed[slurmID], !info.isTerminal {
                note(id, info)
                continue
            }
            // Ended, or no longer in the controller's list: ask for the details (the controller,
            // then accounting, which is given 5 minutes' rest after it did not answer).
            var detail: SlurmJobInfo?
            do { detail = try slurmClient.detail(slurmID) } catch let e as SlurmError {
                if e.unreachable {
                    slurmUnreachable(e)
                    return
                }
                continue
            } catch { continue }
            keepAlive()
            if detail == nil && Date() >= accountingRetryAt {
                do { detail = try slurmClient.accounting(slurmID) } catch {
                    if (error as? SlurmError)?.kind == .unreachable {
                        accountingRetryAt = Date().addingTimeInterval(300)
                        log.warning(
                            "slurm: accounting (sacct) does not answer; not asked for 5 min", ["error": "\(error)"])
                    }
                }
                keepAlive()
            }
            if let detail, detail.isTerminal {
                finishOnSlurm(id, detail)
            } else if let detail {
                note(id, detail)
            } else {
                // Neither the controller nor accounting knows it (purged, no accounting): after
                // three polls, decide from the worker's own events.
                running[id]?.slurm?.missing += 1
                if (running[id]?.slurm?.missing ?? 0) >= 3 { finishOnSlurm(id, nil) }
            }
        }
    }

    /// Records Slurm's state of a job that has not ended (its pending reason; a hold, once, as a
    /// warning) and renews its lease.
    private func note(_ id: Int, _ info: SlurmJobInfo) {
        guard let run = running[id]?.slurm else { return }
        if info.state != run.state || info.reason != run.reason {
            running[id]?.slurm?.state = info.state
            running[id]?.slurm?.reason = info.reason
            try? queue.setSlurmState(id, info.state + (info.reason.map { " (\($0))" } ?? ""))
        }
        if info.isHeld && !run.heldWarned {
            running[id]?.slurm?.heldWarned = true
            log.warning(
                "slurm: the job is held; it waits until released ('scontrol release') or cancelled ('vldctl cancel')",
                ["job": id, "slurm_job": run.id, "state": info.state, "reason": info.reason])
        }
        running[id]?.slurm?.missing = 0
        // Slurm holds the job: the daemon still knows where it is.
        running[id]?.beat = true
        flushProgress(id, force: false)
    }

    /// Jobs whose sbatch answer was lost: the listing shows the job of that attempt (follow it)
    /// or, twice, does not (it was never created: the claim goes back to the queue, keeping its
    /// attempt number, so that a Slurm job the controller still makes of it is a stray of another
    /// name and events file).
    private func settleUnknownSubmissions(
        _ ids: [Int], _ byJob: [Int: [(id: String, attempt: Int, info: SlurmJobInfo)]]
    ) {
        for id in ids {
            guard let run = running[id]?.slurm, run.id == nil else { continue }
            let name = slurmJobName(id, attempt: run.attempt)
            if let found = byJob[id]?.filter({ $0.attempt == run.attempt }).max(by: {
                (Int($0.id) ?? 0) < (Int($1.id) ?? 0)
            }) {
                running[id]?.slurm?.id = found.id
                try? queue.setSlurmJob(
                    id, slurmJobID: found.id, detail: "found on Slurm by name \(name) as job \(found.id)")
                log.notice("slurm: found a job whose submission was not confirmed", ["job": id, "slurm_job": found.id])
                continue
            }
            running[id]?.slurm?.notFound += 1
            guard (running[id]?.slurm?.notFound ?? 0) >= 2 else { continue }
            running.removeValue(forKey: id)
            giveBack(id, detail: "Slurm has no job named \(name): it was not submitted", countAttempt: true)
            log.notice("slurm: a submission that was not confirmed did not happen; queued again", ["job": id])
        }
    }

    /// Cancels live Slurm jobs with the daemon's prefix that are not the ones it follows (a
    /// submission whose answer was lost and that the controller made after all).
    private func cancelStrays(_ byJob: [Int: [(id: String, attempt: Int, info: SlurmJobInfo)]]) {
        for (job, list) in byJob {
            let followed = running[job]?.slurm
            // A job still being looked up is settled first (settleUnknownSubmissions).
            if let followed, followed.id == nil { continue }
            for entry in list where !entry.info.isTerminal && followed?.id != entry.id {
                cancelStray(job, entry.id)
            }
        }
    }

    private func cancelStray(_ job: Int, _ slurmID: String) {
        // Once: a cancelled job is listed (CANCELLED, or COMPLETING for a while) until MinJobAge.
        guard !cancelledStrays.contains(slurmID) else { return }
        cancelledStrays.insert(slurmID)
        do {
            try slurmClient.cancel(slurmID)
            log.warning(
                "slurm: cancelled a Slurm job of this daemon that it does not follow (a duplicate submission)",
                ["job": job, "slurm_job": slurmID])
        } catch {
            log.warning(
                "slurm: cannot cancel a stray Slurm job", ["job": job, "slurm_job": slurmID, "error": "\(error)"])
        }
        keepAlive()
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
        guard let entry = running.removeValue(forKey: id), let run = entry.slurm, let slurmID = run.id else { return }
        try? queue.setSlurmState(
            id,
            info.map {
                $0.state + ($0.exitCode.map { " exit \($0)" } ?? "") + ($0.signal.map { " signal \($0)" } ?? "")
            } ?? "unknown to Slurm")
        let ended = info.map { "Slurm job \(slurmID) ended \($0.state)" } ?? "Slurm no longer knows job \(slurmID)"
        let outcome: JobQueue.Outcome
        if let path = entry.published, info == nil || info?.state == "COMPLETED" {
            outcome = .succeeded(outbox: path)
        } else if (entry.stopped || info?.exitCode == Int(Worker.exitPreempted)) && info?.state != "CANCELLED" {
            // The time limit or a preemption: the worker checkpointed on SIGTERM. Queued again
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
    /// answers; a job whose submission is unknown waits until it is found or given back); the
    /// job is recorded cancelled once Slurm reports it ended.
    func cancelOnSlurm(_ id: Int) {
        guard let slurmID = running[id]?.slurm?.id, slurmReachable else { return }
        do {
            try slurmClient.cancel(slurmID)
            running[id]?.termSentAt = Date()
            log.info("job cancelled on Slurm", ["job": id, "slurm_job": slurmID])
        } catch let e as SlurmError where e.unreachable {
            slurmUnreachable(e)
        } catch {
            log.warning("slurm: scancel failed", ["job": id, "slurm_job": slurmID, "error": "\(error)"])
            running[id]?.termSentAt = Date()
        }
        keepAlive()
    }
}
