// Worker.swift: one job, run in its own process (`vldd worker --job N --state DIR`).
//
// The supervisor writes runs/<id>/job.json and spawns the worker with runs/<id> as its working
// directory, its own process group, a scrubbed environment and a pipe on fd 3. The worker
// re-expands the manifest the job came from, takes its trial, and runs it in runs/<id>/work/
// (checkpoints included, so a requeued job resumes there). Progress goes to fd 3 as JSON lines:
//
//   {"event":"progress","step":120,"steps":800,"loss":1.93,"eta":41.5,"tokensPerSecond":52000}
//   {"event":"eval","step":200,"metrics":{"evalLoss":1.2,...}}
//   {"event":"published","path":"/var/lib/vldd/outbox/17-vld-quick-001-..."}
//   {"event":"error","message":"..."}
//
// Exit status: 0 published; 75 (EX_TEMPFAIL) stopped by SIGTERM after a checkpoint, to be
// requeued; 1 failed (the message is the last "error" event and the last line of stderr).
// Publishing is one rename of work/ to outbox/<id>-<name>; results.json is written last inside
// work/, so the outbox never shows a half-written job.

import CLinux
import Foundation
import VLDExperiments
import VLDModel

/// The job description the supervisor hands to a worker (runs/<id>/job.json).
public struct WorkerJob: Codable, Equatable, Sendable {
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

    public init(job: Int, name: String, trialIndex: Int, manifest: String, params: String, threads: Int, outboxName: String) {
        self.job = job
        self.name = name
        self.trialIndex = trialIndex
        self.manifest = manifest
        self.params = params
        self.threads = threads
        self.outboxName = outboxName
    }

    /// `<id>-<name>` with the trial name's "/" turned into "-": unique by the id, readable by the name.
    public static func outboxName(job: Int, name: String) -> String {
        let safe = name.map { c -> Character in c.isLetter || c.isNumber || "._-=,()".contains(c) ? c : "-" }
        return "\(job)-" + String(String(safe).prefix(150))
    }
}

public enum Worker {
    public static let exitPreempted: Int32 = 75

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
        func fail(_ message: String) -> Int32 {
            events.send(["event": "error", "message": message])
            FileHandle.standardError.write(Data("vldd worker: job \(id): \(message)\n".utf8))
            return 1
        }
        let runDir = URL(fileURLWithPath: tree.run(id))
        // One worker per job directory: a previous worker of this job (its daemon was killed)
        // may still be writing its checkpoint; wait for it to finish.
        let lockFD = open(runDir.path + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard lockFD >= 0 else { return fail("cannot open \(runDir.path)/lock: \(String(cString: strerror(errno)))") }
        var waited = 0.0
        while flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            if waited == 0 { FileHandle.standardError.write(Data("vldd worker: job \(id): waiting for the previous worker of this job to stop\n".utf8)) }
            if waited > 600 || StopRequest.requested { return exitPreempted }
            usleep(200_000)
            waited += 0.2
        }
        let job: WorkerJob
        do {
            job = try JSONDecoder().decode(WorkerJob.self, from: Data(contentsOf: runDir.appendingPathComponent("job.json")))
        } catch {
            return fail("cannot read \(runDir.path)/job.json: \(error)")
        }
        let trial: Trial
        do {
            let experiment = try Experiment.parse(Data(job.manifest.utf8), limits: .unbounded, cores: job.threads)
            guard job.trialIndex < experiment.trials.count else {
                return fail("the manifest has \(experiment.trials.count) trials; job trial \(job.trialIndex) does not exist")
            }
            trial = experiment.trials[job.trialIndex]
        } catch {
            return fail("the manifest no longer validates: \(error)")
        }
        guard trial.json.serialized(pretty: false) == job.params else {
            return fail("the trial expanded from the manifest differs from the queued one (was vld upgraded?)")
        }
        let final = URL(fileURLWithPath: tree.outbox).appendingPathComponent(job.outboxName)
        if FileManager.default.fileExists(atPath: final.appendingPathComponent("results.json").path) {
            // An earlier attempt published and the daemon died before recording it.
            events.send(["event": "published", "path": final.path])
            return 0
        }
        let work = runDir.appendingPathComponent("work")
        var lastEval = -1
        let context = RunContext(threads: job.threads, log: { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }, progress: { p in
            var event: [String: Any] = ["event": "progress", "step": p.step, "steps": p.steps, "loss": p.loss,
                                        "eta": p.etaSeconds, "tokensPerSecond": p.tokensPerSecond]
            if let e = p.evalLoss, p.step != lastEval {
                lastEval = p.step
                event["evalLoss"] = e
            }
            events.send(event)
        }, shouldStop: { StopRequest.requested })
        let outcome: TrialOutcome
        do {
            outcome = try TrainRunner.run(trial, in: work, context: context)
        } catch {
            return fail("\(error)")
        }
        switch outcome {
        case .stopped(let step):
            events.send(["event": "stopped", "step": step])
            return exitPreempted
        case .completed:
            let rc = clinux_rename_noreplace(work.path, final.path)
            guard rc == 0 else {
                return fail("cannot publish \(work.path) as \(final.path): \(String(cString: strerror(errno)))")
            }
            syncDirectory(tree.outbox)
            syncDirectory(runDir.path)
            events.send(["event": "published", "path": final.path])
            return 0
        }
    }
}

/// JSON lines to the supervisor; silently nothing if the fd is not open (a worker run by hand).
final class EventPipe {
    let fd: Int32
    init(fd: Int32) {
        self.fd = fcntl(fd, F_GETFD) >= 0 ? fd : -1
    }
    func send(_ object: [String: Any]) {
        guard fd >= 0, let data = try? JSONSerialization.data(withJSONObject: object.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return NSNull() }
            return v
        }, options: [.sortedKeys]) else { return }
        var bytes = [UInt8](data) + [0x0A]
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}
