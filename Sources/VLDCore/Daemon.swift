// Daemon.swift: vldd's main loop (specs/ops.md 6.3).
//
// Start: load the configuration; create the state tree; open and migrate the database; record
// the boot and requeue what a dead daemon left running; route signals to a self-pipe; watch
// spool/incoming, then rescan it; listen on the control socket; READY=1.
// Loop: one poll() over the signal self-pipe, the inotify fd, a wake-up pipe (the control socket's
// threads write to it after a submit or cancel) and the workers' event pipes, with a timeout of
// at most one second. Each turn dispatches queued jobs, enforces cancels, rescans every
// rescan_seconds, updates STATUS= and pings the watchdog.
// SIGTERM/SIGINT: STOPPING=1; stop intake; SIGTERM every worker group and wait up to
// job_stop_grace_seconds for checkpoints (then SIGKILL); requeue them; checkpoint the WAL; exit 0.
// SIGHUP: RELOADING=1; re-read the configuration (a bad file is refused, the old one kept); READY=1.
// SIGUSR1: rescan now. SIGCHLD: reap workers.

import CLinux
import Foundation
import VLDExperiments
import VLDModel
import VLDStore

public final class Daemon {
    public struct Options {
        public var configPath: String
        /// Exit 0 once nothing is queued or running (for scripts and the README's main job).
        public var exitWhenIdle = false
        public init(configPath: String, exitWhenIdle: Bool = false) {
            self.configPath = configPath
            self.exitWhenIdle = exitWhenIdle
        }
    }

    let options: Options
    /// Written only by the loop's thread (SIGHUP), under `configLock`; other threads read
    /// `currentConfig`.
    private(set) var config: DaemonConfig
    private let configLock = NSLock()
    var currentConfig: DaemonConfig {
        configLock.lock()
        defer { configLock.unlock() }
        return config
    }
    let tree: StateTree
    let log: Logger
    let notifier = ServiceNotifier()
    let queue: JobQueue
    let boot: Int
    let spool: SpoolConsumer
    let supervisor: Supervisor
    let policy: SubmitPolicy
    var control: ControlServer?
    let startedAt = Date()
    private var signalFD: Int32 = -1
    private var wakeRead: Int32 = -1
    private var wakeWrite: Int32 = -1
    private var watch: InotifyWatch?
    private var lastRescan = Date.distantPast
    private var lastWatchdog = Date.distantPast
    private var lastStatus = ""
    private var deferred = false
    private let pendingLock = NSLock()
    private var pendingSummaries: Set<Int> = []

    /// Does everything up to (not including) the first rescan. Throws with a message for the
    /// operator when the configuration, the state tree or the database is unusable.
    public init(options: Options, log: Logger) throws {
        self.options = options
        self.log = log
        config = try DaemonConfig.load(options.configPath)
        tree = StateTree(root: config.stateDirectory)
        policy = try SubmitPolicy.resolve(config)
        umask(0o027)
        for change in try tree.create(group: policy.groupID) { log.notice("state: \(change)") }
        queue = try JobQueue(path: tree.database)
        if let check = try queue.db.query("PRAGMA quick_check").first?.values.first, check != .text("ok") {
            throw SystemError(
                message:
                    "\(tree.database) fails its integrity check: \(check); restore it from db/*.bak or move it aside")
        }
        boot = try queue.startBoot(uuid: UUID().uuidString, pid: getpid(), version: VLD.version)
        // Jobs a previous daemon left on Slurm run on: follow them (or, with executor = local,
        // cancel them there) before the queue requeues what was left running here.
        let slurmPrefix = try Supervisor.slurmNamePrefix(queue: queue, stateRoot: tree.root)
        let onSlurm = try Supervisor.recoverSlurmJobs(
            queue: queue, boot: boot, config: config, prefix: slurmPrefix, log: log)
        let (requeued, cancelled) = try queue.reconcile(currentBoot: boot)
        if !requeued.isEmpty || !cancelled.isEmpty {
            log.notice(
                "queue: recovered jobs of a previous daemon",
                ["requeued": requeued.count, "cancelled": cancelled.count])
        }
        spool = SpoolConsumer(tree: tree, queue: queue, config: config, policy: policy, log: log)
        supervisor = Supervisor(
            tree: tree, queue: queue, config: config, boot: boot, log: log, groupID: policy.groupID,
            slurmPrefix: slurmPrefix)
        supervisor.adopt(onSlurm)
        supervisor.keepAlive = { [unowned self] in heartbeat() }
        supervisor.onFinished = { [unowned self] job in
            if job.state.isTerminal { publishSummaryIfDone(manifest: job.manifestID) }
        }
        if ProcessInfo.processInfo.environment["VLDD_FAULT"] == "exit-after-commit" {
            // Fault injection for the tests of the ingest crash window.
            spool.afterCommit = { _exit(99) }
        }
    }

    static let handledSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD]

    /// Runs until SIGTERM/SIGINT (or idle with --exit-when-idle). Returns the exit status.
    public func run() throws -> Int32 {
        // Signals arrive as bytes on a self-pipe (see clinux_signal_pipe for why not a signalfd).
        signal(SIGPIPE, SIG_IGN)
        var pipeFDs: [Int32] = [-1, -1]
        guard clinux_pipe2(&pipeFDs, O_CLOEXEC | O_NONBLOCK) == 0 else { throw SystemError("pipe2", path: "") }
        signalFD = pipeFDs[0]
        var signals = Daemon.handledSignals
        guard clinux_signal_pipe(pipeFDs[1], &signals, Int32(signals.count)) == 0 else {
            throw SystemError("sigaction", path: "")
        }
        var fds: [Int32] = [-1, -1]
        guard clinux_pipe2(&fds, O_CLOEXEC | O_NONBLOCK) == 0 else { throw SystemError("pipe2", path: "") }
        (wakeRead, wakeWrite) = (fds[0], fds[1])

        watch = try InotifyWatch(directory: tree.incoming)
        let socketPath = config.socketPath.isEmpty ? tree.root + "/control.sock" : config.socketPath
        let server = try ControlServer(path: socketPath, daemon: self)
        control = server
        server.start()

        if config.executor == .slurm {
            for check in SlurmCheck.run(config: config) where check.level != .ok {
                log.warning("slurm: \(check.message)", ["fix": check.fix])
            }
        }
        spool.pruneRejected(reload: false)
        let first = spool.rescan()
        lastRescan = Date()
        log.notice(
            "vldd ready",
            [
                "version": VLD.version, "state": tree.root, "socket": socketPath, "pid": getpid(),
                "boot": boot, "spool": first.count, "workers": config.workers,
                "threads": config.effectiveTotalThreads, "submit_group": policy.groupName,
                "executor": config.executor.rawValue,
            ])
        notifier.ready(status: statusLine())

        var stopping = false
        while !stopping {
            // Reaping here too, not only on SIGCHLD: a worker's end is never missed.
            supervisor.reap()
            supervisor.dispatch()
            supervisor.enforceCancels()
            supervisor.enforceLeases()
            supervisor.followSlurm()
            if options.exitWhenIdle && supervisor.runningCount == 0 {
                let counts = (try? queue.counts()) ?? [:]
                if counts[.queued, default: 0] == 0 && counts[.cancelling, default: 0] == 0 && !deferred {
                    log.notice("vldd: nothing queued or running; exiting (--exit-when-idle)")
                    break
                }
            }
            var pollSet = [
                pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0),
                pollfd(fd: watch!.fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            pollSet += supervisor.pollFDs.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            _ = poll(&pollSet, nfds_t(pollSet.count), pollTimeout())
            if pollSet[0].revents != 0 { stopping = handleSignals() }
            if pollSet[1].revents != 0 { handleInotify() }
            if pollSet[2].revents != 0 {
                drainWake()
                pendingLock.lock()
                let manifests = pendingSummaries
                pendingSummaries.removeAll()
                pendingLock.unlock()
                for m in manifests { publishSummaryIfDone(manifest: m) }
            }
            for entry in pollSet.dropFirst(3) where entry.revents != 0 { supervisor.readable(entry.fd) }
            if Date().timeIntervalSince(lastRescan)
                >= (deferred ? min(config.rescanSeconds, max(1, config.ingestGraceSeconds / 4)) : config.rescanSeconds)
            {
                rescan(reason: "periodic")
            }
            heartbeat()
        }
        shutdown()
        return 0
    }

    // MARK: events

    private func pollTimeout() -> Int32 {
        var timeout = 1000.0
        if let interval = notifier.watchdogInterval { timeout = min(timeout, interval * 1000 / 2) }
        if let wake = try? queue.nextWakeup() { timeout = min(timeout, max(0, Double(wake - queue.clock()))) }
        return Int32(max(10, timeout))
    }

    /// Returns true when the daemon should stop.
    private func handleSignals() -> Bool {
        var stop = false
        var received = [UInt8](repeating: 0, count: 64)
        let n = received.withUnsafeMutableBytes { read(signalFD, $0.baseAddress, $0.count) }
        for byte in received.prefix(max(0, n)) {
            let signal = Int32(byte)
            switch signal {
            case SIGTERM, SIGINT:
                log.notice(
                    "vldd: stopping",
                    ["signal": signal == SIGTERM ? "SIGTERM" : "SIGINT", "running": supervisor.runningCount])
                stop = true
            case SIGHUP: reload()
            case SIGUSR1: rescan(reason: "SIGUSR1")
            case SIGCHLD: supervisor.reap()
            default: break
            }
        }
        return stop
    }

    private func handleInotify() {
        guard let watch else { return }
        var rescanReason: String?
        for event in watch.read() {
            if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                rescanReason = "inotify queue overflow"
            } else if event.mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 {
                // Only the current watch matters: a re-watch leaves the old one's IN_IGNORED behind.
                guard event.wd == watch.currentWatch else { continue }
                log.error("spool: incoming/ was removed or replaced; watching it again", ["path": tree.incoming])
                do {
                    _ = try tree.create()
                    try watch.rewatch()
                    rescanReason = "incoming/ watched again"
                } catch {
                    log.error(
                        "spool: cannot watch incoming/ again; exiting so systemd restarts vldd", ["error": "\(error)"])
                    exit(1)
                }
            } else if !event.name.isEmpty {
                note(spool.consider(event.name))
            }
        }
        if let reason = rescanReason { rescan(reason: reason) }
    }

    private func note(_ decision: SpoolDecision) {
        if case .deferred = decision { deferred = true }
    }

    func rescan(reason: String) {
        deferred = false
        if reason == "periodic" || reason == "start" { spool.pruneRejected(reload: true) }
        let decisions = spool.rescan()
        for (_, decision) in decisions { note(decision) }
        lastRescan = Date()
        if reason != "periodic" || decisions.contains(where: { $0.decision != .ignored }) {
            log.info("spool: rescanned", ["reason": reason, "entries": decisions.count])
        }
    }

    func reload() {
        notifier.reloading()
        do {
            let fresh = try DaemonConfig.load(options.configPath)
            let next = config.reloadable(from: fresh)
            if fresh.stateDirectory != config.stateDirectory || fresh.socketPath != config.socketPath
                || fresh.submitGroup != config.submitGroup
            {
                log.warning("config: state_dir, socket and submit_group take effect at the next restart")
            }
            configLock.lock()
            config = next
            configLock.unlock()
            spool.update(config: next)
            supervisor.update(config: next)
            log.notice("config: reloaded", ["workers": next.workers, "threads": next.effectiveTotalThreads])
        } catch {
            log.error("config: reload refused; keeping the running configuration", ["error": "\(error)"])
        }
        notifier.ready(status: statusLine())
    }

    /// Asks the loop (from a socket thread) to publish a grid summary if its jobs are all done.
    func requestSummaryCheck(manifest: Int) {
        pendingLock.lock()
        pendingSummaries.insert(manifest)
        pendingLock.unlock()
        wake()
    }

    /// When every job of a grid manifest has ended, writes its comparison (summary.json/csv,
    /// report.html, over the trials that succeeded) to outbox/summary-<manifest>-<name>/ by one
    /// rename, and records the path.
    func publishSummaryIfDone(manifest id: Int) {
        do {
            guard let manifest = try queue.manifest(id), manifest.trialCount > 1, manifest.summaryPath == nil else {
                return
            }
            let jobs = try queue.jobs(JobFilter(manifestID: id))
            guard jobs.allSatisfy({ $0.state.isTerminal }) else { return }
            let experiment = try Experiment.parse(
                Data(manifest.body.utf8), limits: .unbounded, cores: config.threadsPerJob)
            var results: [TrialResult] = []
            for job in jobs.sorted(by: { $0.trialIndex < $1.trialIndex }) where job.state == .succeeded {
                guard let outbox = job.outboxPath, job.trialIndex < experiment.trials.count else { continue }
                let dir = TrialDirectory(URL(fileURLWithPath: outbox))
                if let r = ExperimentRunner.load(
                    experiment.trials[job.trialIndex], dir, "../" + dir.url.lastPathComponent)
                {
                    results.append(r)
                }
            }
            guard !results.isEmpty else { return }
            let partial = tree.outbox + "/.partial"
            if mkdir(partial, 0o2750) != 0 && errno != EEXIST { throw SystemError("mkdir", path: partial) }
            let name = "summary-\(id)-\(manifest.name)"
            let work = URL(fileURLWithPath: partial + "/" + name)
            try? FileManager.default.removeItem(at: work)
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: false)
            try Summary.write(experiment: experiment, results: results, to: work, vldVersion: VLD.version)
            try shareWithGroup(work.path, group: policy.groupID)
            let final = tree.outbox + "/" + name
            guard clinux_rename_noreplace(work.path, final) == 0 else { throw SystemError("rename to", path: final) }
            syncDirectory(tree.outbox)
            try queue.setSummaryPath(manifest: id, path: final)
            log.info(
                "summary published",
                ["manifest": id, "name": manifest.name, "trials": results.count, "of": jobs.count, "path": final])
        } catch {
            log.error("summary: cannot publish", ["manifest": id, "error": "\(error)"])
        }
    }

    /// Wakes the loop from another thread (after a submit or a cancel through the socket).
    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while buffer.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    func heartbeat() {
        let status = statusLine()
        if status != lastStatus {
            notifier.status(status)
            lastStatus = status
        }
        if let interval = notifier.watchdogInterval, Date().timeIntervalSince(lastWatchdog) >= interval {
            // Only after a full turn of the loop and a working database.
            if (try? queue.db.query("SELECT 1")) != nil {
                notifier.watchdog()
                lastWatchdog = Date()
            }
        }
    }

    func statusLine() -> String {
        let counts = (try? queue.counts()) ?? [:]
        return
            "\(counts[.queued, default: 0]) queued, \(supervisor.runningCount) running, \(counts[.held, default: 0]) held"
    }

    private func shutdown() {
        notifier.stopping()
        control?.stop()
        if supervisor.runningCount > 0 {
            if supervisor.localRunningCount > 0 { notifier.extendTimeout(seconds: config.jobStopGraceSeconds + 10) }
            supervisor.stopAll(grace: config.jobStopGraceSeconds)
        }
        try? queue.stopBoot(boot)
        _ = try? queue.db.query("PRAGMA wal_checkpoint(TRUNCATE)")
        log.notice("vldd: stopped")
    }
}
