// Worker.swift: one job, run in its own process (`vldd worker --job N --state DIR`).
//
// The supervisor writes runs/<id>/job.json and spawns the worker with runs/<id> as its working
// directory, its own process group, a scrubbed environment and a pipe on fd 3. The worker
// re-expands the manifest the job came from, takes its trial, and runs it in runs/<id>/work/
// (checkpoints included, so a requeued job resumes there). It reports on fd 3 with the events of
// WorkerEvent.swift (progress, heartbeat, stopped, published, failed), one JSON line each.
//
// Exit status: 0 published; 75 (EX_TEMPFAIL) stopped by SIGTERM after a checkpoint, to be
// requeued; 1 failed and worth retrying (a full disk, a failed write); 65 (EX_DATAERR) failed in
// a way a retry cannot change (the manifest no longer validates, the run diverges, the task
// cannot generate). The worker decides (TrialError.isRetryable) and says so in the `failed`
// event; the daemon never parses the message.
//
// Publishing is one rename of work/ to outbox/<id>-<name>, relative to a descriptor of the outbox
// opened without following links, after giving the tree the submit group and the outbox's modes;
// results.json is written last inside work/, so the outbox never shows a half-written job. The
// inode of the published directory is recorded in runs/<id>/published.json: an entry already at
// outbox/<id>-<name> counts as this job's only if it is that same directory (a restarted worker
// whose daemon died before recording the success), never a symlink or a directory someone else
// put there.

import CLinux
import Foundation
import VLDExperiments
import VLDModel

/// The job description the supervisor hands to a worker (runs/<id>/job.json).
public struct WorkerJob: Equatable, Sendable {
    public var job: Int
    public var name: String
    public var trialIndex: Int
    /// The manifest file as submitted.
    public var manifest: String
    /// The resolved trial the queue holds (checked against the re-expansion).
    public var params: String
    public var threads: Int
    /// The directory name under outbox/.
    public var outboxName: String
    /// The group published files get (the submit group); nil leaves them as written.
    public var groupID: UInt32?
    /// How often the worker says it is alive; the daemon kills a worker silent for its lease.
    public var heartbeatSeconds: Double?
    /// The checkpoints the trial reads, as the daemon resolved them when it started the job:
    /// each reference (as written) with the directory, or with the reason it cannot be read.
    public var checkpoints: [(ref: String, resolved: Result<String, TrialError>)] = []

    public static func == (a: WorkerJob, b: WorkerJob) -> Bool {
        a.json == b.json
    }

    public init(
        job: Int, name: String, trialIndex: Int, manifest: String, params: String, threads: Int, outboxName: String,
        groupID: UInt32? = nil, heartbeatSeconds: Double? = nil
    ) {
        self.job = job
        self.name = name
        self.trialIndex = trialIndex
        self.manifest = manifest
        self.params = params
        self.threads = threads
        self.outboxName = outboxName
        self.groupID = groupID
        self.heartbeatSeconds = heartbeatSeconds
    }

    /// job.json as written by the supervisor.
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("job", JSONValue(job)), ("name", .string(name)), ("trialIndex", JSONValue(trialIndex)),
            ("manifest", .string(manifest)), ("params", .string(params)), ("threads", JSONValue(threads)),
            ("outboxName", .string(outboxName)),
        ]
        if let groupID { fields.append(("groupID", JSONValue(Int(groupID)))) }
        if let heartbeatSeconds { fields.append(("heartbeatSeconds", JSONValue(heartbeatSeconds))) }
        if !checkpoints.isEmpty {
            fields.append(
                (
                    "checkpoints",
                    .object(
                        checkpoints.map { ref, resolved in
                            switch resolved {
                            case let .success(path): return (ref, .object([("path", .string(path))]))
                            case let .failure(e): return (ref, .object([("error", .string(e.message))]))
                            }
                        })
                ))
        }
        return .object(fields)
    }

    /// Reads job.json; the error names the first field that is missing or of the wrong type.
    public init(json: JSONValue) throws {
        func field<T>(_ key: String, _ get: (JSONValue) -> T?) throws -> T {
            guard let v = json[key].flatMap(get) else {
                throw TrialError("job.json: \(key) is missing or not valid", retryable: false)
            }
            return v
        }
        self.init(
            job: try field("job", \.intValue), name: try field("name", \.stringValue),
            trialIndex: try field("trialIndex", \.intValue),
            manifest: try field("manifest", \.stringValue), params: try field("params", \.stringValue),
            threads: try field("threads", \.intValue), outboxName: try field("outboxName", \.stringValue),
            groupID: json["groupID"]?.intValue.flatMap { UInt32(exactly: $0) },
            heartbeatSeconds: json["heartbeatSeconds"]?.doubleValue)
        if case let .object(refs)? = json["checkpoints"] {
            checkpoints = refs.map { ref, v in
                if let path = v["path"]?.stringValue { return (ref, .success(path)) }
                return (ref, .failure(TrialError(v["error"]?.stringValue ?? "\(ref) was not resolved")))
            }
        }
    }

    /// The directory a checkpoint reference names, as the daemon resolved it.
    public func checkpoint(_ ref: CheckpointRef) throws -> URL {
        guard let entry = checkpoints.first(where: { $0.ref == ref.description }) else {
            throw TrialError("\(ref) was not resolved by the daemon when it started the job")
        }
        return URL(fileURLWithPath: try entry.resolved.get())
    }

    /// `<id>-<name>` with the trial name's "/" turned into "-": unique by the id, readable by the name.
    public static func outboxName(job: Int, name: String) -> String {
        let safe = name.map { c -> Character in c.isLetter || c.isNumber || "._-=,()".contains(c) ? c : "-" }
        return "\(job)-" + String(String(safe).prefix(150))
    }
}

public enum Worker {
    public static let exitPreempted: Int32 = 75
    /// A failure that running the job again cannot fix (sysexits' EX_DATAERR).
    public static let exitPermanent: Int32 = 65

    /// Runs the job of `runs/<id>/job.json` under `tree`; returns the exit status.
    public static func run(job id: Int, tree: StateTree, progressFD: Int32 = 3) -> Int32 {
        StopRequest.install()

        // Stop (checkpoint, exit 75) if the daemon dies; without this a worker of a killed daemon
        // would run on while the next daemon starts the same job again.
        let parent = getppid()
        _ = clinux_set_parent_death_signal(SIGTERM)
        if parent == 1 { StopRequest.request() }

        if let limit = ProcessInfo.processInfo.environment["VLDD_FAULT_WORKER_FSIZE"].flatMap(UInt.init) {
            // Fault injection for the tests: writes past `limit` fail with EFBIG (not SIGXFSZ).
            signal(SIGXFSZ, SIG_IGN)
            var rl = rlimit(rlim_cur: rlim_t(limit), rlim_max: rlim_t(limit))
            setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &rl)
        }

        let events = EventPipe(fd: progressFD)
        events.send(
            .started(restart: ProcessInfo.processInfo.environment["SLURM_RESTART_COUNT"].flatMap { Int($0) }))
        func fail(_ message: String, retryable: Bool) -> Int32 {
            events.send(.failed(message: message, retryable: retryable))
            FileHandle.standardError.write(Data("vldd worker: job \(id): \(message)\n".utf8))
            return retryable ? 1 : exitPermanent
        }
        let runDir = URL(fileURLWithPath: tree.run(id))
        let job: WorkerJob
        do {
            job = try WorkerJob(json: JSONValue.parse(Data(contentsOf: runDir.appendingPathComponent("job.json"))))
        } catch {
            return fail("cannot read \(runDir.path)/job.json: \(error)", retryable: true)
        }
        if let interval = job.heartbeatSeconds, interval > 0 { events.startHeartbeat(every: interval) }
        // One worker per job directory: a previous worker of this job (its daemon was killed)
        // may still be writing its checkpoint; wait for it to finish.
        let lockFD = open(runDir.path + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard lockFD >= 0 else {
            return fail("cannot open \(runDir.path)/lock: \(String(cString: strerror(errno)))", retryable: true)
        }
        var waited = 0.0
        while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            if waited == 0 {
                FileHandle.standardError.write(
                    Data("vldd worker: job \(id): waiting for the previous worker of this job to stop\n".utf8))
            }
            if waited > 600 || StopRequest.requested { return exitPreempted }
            usleep(200_000)
            waited += 0.2
        }
        let trial: Trial
        do {
            let experiment = try Experiment.parse(Data(job.manifest.utf8), limits: .unbounded, cores: job.threads)
            guard job.trialIndex < experiment.trials.count else {
                return fail(
                    "the manifest has \(experiment.trials.count) trials; job trial \(job.trialIndex) does not exist",
                    retryable: false)
            }
            trial = experiment.trials[job.trialIndex]
        } catch {
            return fail("the manifest no longer validates: \(error)", retryable: false)
        }
        guard trial.json.serialized(pretty: false) == job.params else {
            return fail(
                "the trial expanded from the manifest differs from the queued one (was vld upgraded?)", retryable: false
            )
        }
        let outbox: Int32
        switch Publication.open(tree: tree, job: job, runDirectory: runDir.path) {
        case .failure(let why): return fail(why.message, retryable: why.retryable)
        case .success(.alreadyPublished(let path)):
            // An earlier attempt published and the daemon died before recording it.
            events.send(.published(path: path))
            return 0
        case .success(.free(let fd)): outbox = fd
        }
        defer { close(outbox) }
        let work = TrialDirectory(runDir.appendingPathComponent("work"))
        var lastEval = -1
        let context = RunContext(
            threads: job.threads,
            log: { line in
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            },
            progress: { p in
                var evalLoss: Double?
                if let e = p.evalLoss, p.step != lastEval {
                    lastEval = p.step
                    evalLoss = e
                }
                events.send(
                    .progress(
                        done: p.step, total: p.steps, unit: trial.manifest.body.progress.unit, loss: p.loss,
                        evalLoss: evalLoss,
                        etaSeconds: p.etaSeconds, rate: p.tokensPerSecond))
            }, shouldStop: { StopRequest.requested }, checkpoint: job.checkpoint,
            cacheDirectory: URL(fileURLWithPath: tree.cache))
        let outcome: TrialOutcome
        do {
            outcome = try Kinds.run(trial, in: work, context: context)
        } catch {
            return fail("\(error)", retryable: TrialError.isRetryable(error))
        }
        switch outcome {
        case .stopped(let step):
            events.send(.stopped(done: step))
            return exitPreempted
        case .completed:
            do {
                let path = try Publication.publish(
                    work.path, outbox: outbox, tree: tree, job: job, runDirectory: runDir.path)
                events.send(.published(path: path))
                return 0
            } catch let e as PublishError {
                return fail(e.message, retryable: e.retryable)
            } catch {
                return fail("\(error)", retryable: true)
            }
        }
    }
}

/// JSON lines to the supervisor; silently nothing if the fd is not open (a worker run by hand).
/// Lines from the trainer and the heartbeat thread never interleave (one lock, one line each).
final class EventPipe: @unchecked Sendable {
    let fd: Int32
    private let lock = NSLock()
    init(fd: Int32) {
        self.fd = fcntl(fd, F_GETFD) >= 0 ? fd : -1
    }
    func send(_ event: WorkerEvent) {
        guard fd >= 0 else { return }
        var bytes = Array(event.line.utf8) + [0x0A]
        lock.lock()
        defer { lock.unlock() }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Sends a heartbeat event every `interval` seconds for as long as the process lives,
    /// so that the daemon can tell a worker that is busy (a long evaluation) from one that is
    /// stopped or frozen. A worker deadlocked in its own code still beats; the lease catches a
    /// process that does not run at all.
    func startHeartbeat(every interval: Double) {
        guard fd >= 0 else { return }
        let t = Thread { [self] in
            while true {
                usleep(UInt32(min(interval, 3600) * 1_000_000))
                send(.heartbeat)
            }
        }
        t.name = "heartbeat"
        t.start()
    }
}
