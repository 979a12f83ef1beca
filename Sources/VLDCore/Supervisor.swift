// Supervisor.swift: runs queued jobs as worker processes and records how they end.
//
// Each job runs as `vldd worker --job N --state DIR --nice K` (posix_spawn; its own process
// group, an empty signal mask, default dispositions, a scrubbed environment with the job's thread
// count, stdout and stderr appended to runs/<id>/stdout.log, events on a pipe as fd 3). The
// daemon's loop polls the pipes (`pollFDs`, `readable`), reaps children (`reap` on SIGCHLD) and
// asks for cancels (`enforceCancels`) and kills workers whose lease ran out (`enforceLeases`:
// nothing, not even a heartbeat, for lease_seconds). Exit status maps to queue states (ops.md
// 6.3): 0 with a published directory -> succeeded; 75 -> requeued without a failure; anything
// else -> retried with backoff, then failed with the reason, unless the worker said a retry
// cannot help (its failed event's "retryable", or exit status 65). A stop (cancel or daemon
// shutdown) is SIGTERM to the whole group, then SIGKILL after the grace period.
//
// With `executor = slurm` the same bookkeeping follows Slurm jobs instead of processes
// (SlurmExecutor.swift); JobLaunch.swift holds what both do before a job runs.

import Foundation
import CLinux
import VLDExperiments
import VLDStore

public final class Supervisor {
    struct Running {
        var job: JobRecord
        var pid: pid_t
        var pipe: Int32
        var buffer: [UInt8] = []
        var published: String?
        var lastError: String?
        var lastHeartbeat: Int64 = 0
        var pendingProgress: JobProgress?
        var termSentAt: Date?
        var killed = false
        /// The worker fell silent for longer than its lease and was killed.
        var leaseExpired = false
        /// The worker's own verdict on its failure (the "retryable" of its failed event).
        var retryable: Bool?
        /// A heartbeat arrived since the lease was last renewed in the queue.
        var beat = false
        /// The lease this worker was started with (its heartbeat interval follows from it; a
        /// reload that shortens lease_seconds does not apply to workers already running).
        var leaseSeconds: Double
        /// When anything last came from the worker, on the monotonic clock (a wall-clock step or
        /// a suspend of the machine does not make a worker look silent).
        var lastHeard = DispatchTime.now()
        /// The worker closed its end (it is exiting): stop polling until it is reaped.
        var hungUp = false
        /// The worker said it stopped after a checkpoint (its `stopped` event).
        var stopped = false
        /// The Slurm job that runs the worker (`executor = slurm`; pid and pipe are then unused).
        var slurm: SlurmRun?
    }

    let tree: StateTree
    let queue: JobQueue
    var config: DaemonConfig
    let boot: Int
    let log: Logger
    let executable: String
    /// The group published results get (the submit group).
    let groupID: UInt32?
    /// Called when a job reaches a terminal state or is requeued (the daemon publishes summaries).
    public var onFinished: ((JobRecord) -> Void)?
    var running: [Int: Running] = [:]
    /// Slurm's commands, and when the controller may next be asked after it did not answer.
    let slurmClient = SlurmClient()
    var slurmRetryAt = Date.distantPast
    var slurmUnreachableCount = 0
    var nextSlurmPoll = Date.distantPast
    /// When submitting may go on after a submit limit was reached.
    var slurmSubmitRetryAt = Date.distantPast
    /// When accounting (sacct) may be asked again after it did not answer.
    var accountingRetryAt = Date.distantPast
    /// Duplicate Slurm jobs already cancelled (asked once).
    var cancelledStrays: Set<String> = []
    /// The prefix of this daemon's Slurm job names (SlurmExecutor.swift).
    let slurmPrefix: String
    /// Called between slow steps (Slurm's commands) so that the daemon can ping its watchdog.
    public var keepAlive: () -> Void = {}

    public init(
        tree: StateTree, queue: JobQueue, config: DaemonConfig, boot: Int, log: Logger, groupID: UInt32? = nil,
        slurmPrefix: String = "vld-local-", executable: String = Supervisor.ownExecutable()
    ) {
        self.tree = tree
        self.groupID = groupID
        self.queue = queue
        self.config = config
        self.boot = boot
        self.log = log
        self.executable = executable
        self.slurmPrefix = slurmPrefix
    }

    public func update(config: DaemonConfig) { self.config = config }

    var leaseMilliseconds: Int64 { Int64(config.leaseSeconds * 1000) }

    /// How often a worker with `lease` seconds of lease sends a heartbeat: four per lease, at
    /// least every 10 s.
    static func heartbeatSeconds(lease: Double) -> Double { min(10, lease / 4) }

    public var runningCount: Int { running.count }
    /// Workers that are processes of this machine (not Slurm jobs).
    public var localRunningCount: Int { running.values.filter { $0.slurm == nil }.count }
    public var runningJobIDs: [Int] { running.keys.sorted() }
    var threadsInUse: Int { running.values.reduce(0) { $0 + $1.job.threads } }
    var memoryInUse: Int { running.values.reduce(0) { $0 + ($1.job.memoryBytes ?? 0) } }

    public static func ownExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    // MARK: dispatch

    /// Starts queued jobs while workers and threads allow. Returns the ids started.
    @discardableResult
    public func dispatch() -> [Int] {
        if config.executor == .slurm { return dispatchToSlurm() }
        var started: [Int] = []
        while running.count < config.workers {
            let free = config.effectiveTotalThreads - threadsInUse
            // A job larger than the whole machine (threads or memory) still runs, alone.
            let allowance = running.isEmpty ? max(free, config.limits.maxThreads) : free
            guard allowance > 0 else { break }
            let memory = running.isEmpty ? Int.max : config.effectiveTotalMemoryBytes - memoryInUse
            let job: JobRecord?
            do {
                job = try queue.claimNext(
                    boot: boot, maxThreads: allowance, maxMemoryBytes: memory, leaseMilliseconds: leaseMilliseconds)
            } catch {
                log.error("queue: cannot claim a job", ["error": "\(error)"])
                break
            }
            guard let job else { break }
            do {
                try start(job)
                started.append(job.id)
            } catch {
                log.error("supervisor: cannot start a worker", ["job": job.id, "error": "\(error)"])
                record(
                    job.id,
                    .failed(error: "cannot start the worker: \(error)", exitCode: nil, signal: nil, retryable: true))
            }
        }
        return started
    }

    private func start(_ job: JobRecord) throws {
        let runDir = try prepare(job)
        var fds: [Int32] = [-1, -1]
        guard clinux_pipe2(&fds, O_CLOEXEC) == 0 else { throw SystemError("pipe2", path: runDir) }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
        defer { close(writeEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, runDir + "/stdout.log", O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 3)
        clinux_spawn_addchdir(&actions, runDir)

        var attributes = posix_spawnattr_t()
        initChildAttributes(&attributes, ownProcessGroup: true)
        defer { posix_spawnattr_destroy(&attributes) }

        let args = [executable, "worker", "--job", "\(job.id)", "--state", tree.root, "--nice", "\(config.workerNice)"]
        let env = workerEnvironment(job, runDirectory: runDir)
        var pid: pid_t = 0
        let rc = withCStrings(args) { argv in
            withCStrings(env) { envp in
                posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
            }
        }
        guard rc == 0 else {
            close(readEnd)
            throw SystemError("posix_spawn", path: executable, code: rc)
        }
        try? queue.setProcess(job.id, pid: pid)
        running[job.id] = Running(job: job, pid: pid, pipe: readEnd, leaseSeconds: config.leaseSeconds)
        log.info(
            "job started",
            ["job": job.id, "name": job.name, "pid": pid, "threads": job.threads, "attempt": job.attempts])
    }

    // MARK: events from workers

    /// The pipes to poll for reading.
    public var pollFDs: [Int32] { running.values.filter { !$0.hungUp && $0.pipe >= 0 }.map(\.pipe) }

    /// Reads whatever a worker wrote on `fd`.
    public func readable(_ fd: Int32) {
        guard let id = running.first(where: { $0.value.pipe == fd })?.key else { return }
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                running[id]?.buffer.append(contentsOf: chunk[0..<n])
                running[id]?.lastHeard = DispatchTime.now()
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { running[id]?.hungUp = true }
            break
        }
        while let newline = running[id]?.buffer.firstIndex(of: 0x0A) {
            let line = Array(running[id]!.buffer[..<newline])
            running[id]!.buffer.removeSubrange(...newline)
            handle(event: line, job: id)
        }
        flushProgress(id, force: false)
    }

    func handle(event line: [UInt8], job id: Int) {
        switch WorkerEvent(line: line) {
        case let .progress(done, total, _, loss, evalLoss, eta, _)?:
            running[id]?.pendingProgress = JobProgress(
                step: done, totalSteps: total, loss: loss,
                etaSeconds: eta.flatMap { $0.isFinite ? Int($0.rounded()) : nil })
            if let evalLoss {
                try? queue.recordMetrics(id, step: done, values: [("evalLoss", evalLoss)])
            }
        case .heartbeat?:
            running[id]?.beat = true
        case let .published(path)?:
            running[id]?.published = path
        case let .failed(message, retryable)?:
            running[id]?.lastError = message
            running[id]?.retryable = retryable
        case .stopped?:
            running[id]?.stopped = true
        case .started?:
            // A new run of the worker (a Slurm requeue): what an earlier run said no longer holds.
            running[id]?.stopped = false
            running[id]?.published = nil
            running[id]?.lastError = nil
            running[id]?.retryable = nil
        case nil:
            break
        }
    }

    /// Writes the latest progress (or, after a heartbeat, just a renewed lease) to the queue at
    /// most once a second per job.
    func flushProgress(_ id: Int, force: Bool) {
        guard let entry = running[id], entry.pendingProgress != nil || entry.beat else { return }
        let now = queue.clock()
        guard force || now - entry.lastHeartbeat >= 1000 else { return }
        do {
            let lease = Int64(entry.leaseSeconds * 1000)
            if let progress = entry.pendingProgress {
                try queue.heartbeat(id, progress: progress, leaseMilliseconds: lease)
            } else {
                try queue.renewLease(id, leaseMilliseconds: lease)
            }
            running[id]?.lastHeartbeat = now
            running[id]?.pendingProgress = nil
            running[id]?.beat = false
        } catch {
            log.warning("queue: cannot record progress", ["job": id, "error": "\(error)"])
        }
    }

    /// Kills the workers whose lease ran out (nothing from them, not even a heartbeat, for
    /// lease_seconds): stopped (SIGSTOP), frozen, or blocked where they cannot run. The job is
    /// retried from its last checkpoint like any other failure.
    public func enforceLeases() {
        guard !running.isEmpty else { return }
        let expired: [Int]
        do { expired = try queue.expiredLeases(boot: boot) } catch {
            log.warning("queue: cannot read leases", ["error": "\(error)"])
            return
        }
        for id in expired {
            // On Slurm the scheduler watches the job (node failures, time limits); the lease is
            // for processes of this machine.
            guard let entry = running[id], !entry.leaseExpired, entry.slurm == nil else { continue }
            // Whatever the worker wrote before its lease ran out counts (a busy daemon may have
            // left its pipe unread).
            readable(entry.pipe)
            // The queue's lease is wall-clock time; the kill also needs the worker to have been
            // silent for its whole lease on the monotonic clock, so that a clock step or a
            // suspended machine kills nothing.
            guard let heard = running[id]?.lastHeard,
                Double(DispatchTime.now().uptimeNanoseconds - heard.uptimeNanoseconds) / 1e9 >= entry.leaseSeconds
            else { continue }
            kill(-entry.pid, SIGKILL)
            running[id]?.leaseExpired = true
            running[id]?.killed = true
            log.warning(
                "job silent past its lease; killed", ["job": id, "pid": entry.pid, "lease": entry.leaseSeconds])
        }
    }

    // MARK: ends

    /// Reaps every exited worker and records its outcome.
    public func reap() {
        // Each worker by its own pid: other children of the daemon (Slurm's commands) are waited
        // for by whoever started them.
        for (id, worker) in running where worker.slurm == nil {
            var status: Int32 = 0
            var pid: pid_t
            repeat { pid = waitpid(worker.pid, &status, WNOHANG) } while pid < 0 && errno == EINTR
            guard pid == worker.pid else { continue }
            readable(running[id]!.pipe)
            flushProgress(id, force: true)
            let entry = running.removeValue(forKey: id)!
            close(entry.pipe)
            let exited = status & 0x7f == 0
            let code = exited ? Int((status >> 8) & 0xff) : nil
            let signal = exited ? nil : Int(status & 0x7f)
            let outcome: JobQueue.Outcome
            if code == 0, let path = entry.published {
                outcome = .succeeded(outbox: path)
            } else if code == Int(Worker.exitPreempted) {
                outcome = .preempted(
                    detail: entry.termSentAt != nil
                        ? "stopped after a checkpoint" : "the worker stopped itself after a checkpoint")
            } else if entry.leaseExpired {
                outcome = .failed(
                    error:
                        "the worker sent nothing for \(JSONValue(entry.leaseSeconds).brief) s (lease_seconds): stopped, frozen or "
                        + "stuck; killed", exitCode: code, signal: signal, retryable: true)
            } else {
                var why =
                    entry.lastError
                    ?? (code.map { "the worker exited with status \($0)" }
                        ?? "the worker was killed by signal \(signal ?? 0)\(signal == 9 && !entry.killed ? " (out of memory?)" : "")")
                if code == 0 { why = "the worker exited 0 without publishing results" }
                // The worker says whether a retry can help (its error event, or exit status 65);
                // the daemon never reads that from the message.
                let retryable = entry.retryable ?? (code != Int(Worker.exitPermanent))
                outcome = .failed(
                    error: why, exitCode: code, signal: signal,
                    retryable: retryable && code != Int(Worker.exitPermanent))
            }
            record(id, outcome)
        }
    }

    func record(_ id: Int, _ outcome: JobQueue.Outcome) {
        do {
            let job = try queue.finish(
                id, outcome: outcome, retryBaseMilliseconds: Int64(config.retryBaseSeconds * 1000))
            log.log(
                job.state == .failed ? .warning : .info, "job \(job.state.rawValue)",
                [
                    "job": id, "name": job.name, "exit": job.exitCode, "signal": job.termSignal,
                    "error": job.state == .succeeded ? nil : job.error,
                    "outbox": job.outboxPath,
                ])
            onFinished?(job)
        } catch {
            log.error("queue: cannot record the end of a job", ["job": id, "error": "\(error)"])
        }
    }

    // MARK: stopping

    /// SIGTERM to the workers of jobs whose cancel was requested, SIGKILL after the grace period.
    public func enforceCancels() {
        let cancelling = Set(((try? queue.jobs(JobFilter(states: [.cancelling]))) ?? []).map(\.id))
        for id in running.keys where cancelling.contains(id) {
            terminate(id)
        }
        escalate()
    }

    /// Asks one job's process group to checkpoint and stop.
    func terminate(_ id: Int) {
        guard let entry = running[id], entry.termSentAt == nil else { return }
        if entry.slurm != nil {
            cancelOnSlurm(id)
            return
        }
        kill(-entry.pid, SIGTERM)
        running[id]?.termSentAt = Date()
        log.info("job stopping", ["job": id, "pid": entry.pid])
    }

    /// SIGKILL for groups that ignored SIGTERM past the grace period.
    func escalate() {
        for (id, entry) in running where entry.slurm == nil {
            guard let sent = entry.termSentAt, !entry.killed,
                Date().timeIntervalSince(sent) > config.jobStopGraceSeconds
            else { continue }
            kill(-entry.pid, SIGKILL)
            running[id]?.killed = true
            log.warning("job did not stop in time; killed", ["job": id, "grace": config.jobStopGraceSeconds])
        }
    }

    /// Stops every worker (daemon shutdown): SIGTERM, wait up to `grace`, SIGKILL, reap. The
    /// queue records them as requeued (exit 75) or as their exit says.
    public func stopAll(grace: Double, tick: () -> Void = {}) {
        // Jobs on Slurm run on without the daemon; the next start adopts them.
        let onSlurm = running.filter { $0.value.slurm != nil }
        if !onSlurm.isEmpty {
            log.notice(
                "jobs left running on Slurm; the next start of vldd follows them again",
                ["jobs": onSlurm.keys.sorted().map(String.init).joined(separator: ",")])
            for id in onSlurm.keys { running.removeValue(forKey: id) }
        }
        for id in running.keys { terminate(id) }
        let deadline = Date().addingTimeInterval(grace)
        while !running.isEmpty && Date() < deadline {
            var fds = running.values.map { pollfd(fd: $0.pipe, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            for f in fds where f.revents != 0 { readable(f.fd) }
            reap()
            tick()
        }
        for (id, entry) in running {
            kill(-entry.pid, SIGKILL)
            running[id]?.killed = true
        }
        for (id, entry) in running {
            var status: Int32 = 0
            while waitpid(entry.pid, &status, 0) < 0 && errno == EINTR {}
            do {
                running.removeValue(forKey: id)
                close(entry.pipe)
                // Killed during shutdown: requeue; its last checkpoint is where it resumes.
                record(
                    id,
                    .preempted(
                        detail: "killed at daemon shutdown after \(Int(grace)) s; resumes from its last checkpoint"))
            }
        }
    }
}

/// Initialises spawn attributes for a child of the daemon: an empty signal mask and default
/// dispositions (the daemon's own blocked and caught signals are not the child's), and, for a
/// worker, its own process group (so that a stop reaches everything it started).
func initChildAttributes(_ attributes: inout posix_spawnattr_t, ownProcessGroup: Bool) {
    posix_spawnattr_init(&attributes)
    var empty = sigset_t()
    sigemptyset(&empty)
    var defaults = sigset_t()
    sigfillset(&defaults)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if ownProcessGroup {
        posix_spawnattr_setpgroup(&attributes, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return body(pointers)
}
