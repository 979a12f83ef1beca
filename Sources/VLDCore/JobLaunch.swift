// JobLaunch.swift: what both executors do before a claimed job runs (local worker processes,
// Supervisor.swift; Slurm jobs, SlurmExecutor.swift): resolve the checkpoints its trial reads,
// write runs/<id>/job.json, and give the worker its environment.

import Foundation
import VLDExperiments
import VLDStore

extension Supervisor {
    /// The checkpoints `job`'s trial reads: a stage's is the published checkpoint of the job of
    /// that trial in the same manifest, a job's that of the submitter's own succeeded job, a
    /// path's its real location under `checkpoint_roots` (links followed, so none leads out).
    /// A reference that cannot be resolved carries its reason; the worker fails with it.
    func resolveCheckpoints(_ job: JobRecord, manifest: ManifestRecord) -> [(
        ref: String, resolved: Result<String, TrialError>
    )] {
        guard
            let experiment = try? Experiment.parse(
                Data(manifest.body.utf8), limits: .unbounded, cores: config.threadsPerJob),
            job.trialIndex < experiment.trials.count
        else { return [] }
        let trial = experiment.trials[job.trialIndex]
        return trial.manifest.body.checkpointRefs.map { _, ref in
            func published(_ record: JobRecord?, _ what: String) -> Result<String, TrialError> {
                guard let record, record.state == .succeeded, let outbox = record.outboxPath else {
                    return .failure(
                        TrialError(
                            "\(ref): \(what) has not succeeded\(record.map { " (it is \($0.state.rawValue))" } ?? "")"))
                }
                return .success(TrialDirectory(URL(fileURLWithPath: outbox)).checkpoint.path)
            }
            switch ref {
            case .stage:
                guard let target = experiment.trial(for: ref) else {
                    return (ref.description, .failure(TrialError("\(ref) names no trial of \(manifest.name)")))
                }
                let record = try? queue.jobs(JobFilter(manifestID: job.manifestID)).first {
                    $0.trialIndex == target.index
                }
                return (ref.description, published(record, "its trial (job \(record?.id ?? 0))"))
            case let .job(id):
                let record = try? queue.job(id)
                guard let record, record.submitterUID == job.submitterUID else {
                    return (ref.description, .failure(TrialError("\(ref): no job \(id) of the submitter's")))
                }
                return (ref.description, published(record, "job \(id)"))
            case let .path(p):
                guard let real = config.resolveCheckpoint(p) else {
                    return (
                        ref.description,
                        .failure(
                            TrialError(
                                "\(p) does not exist or is not under checkpoint_roots once links are followed"))
                    )
                }
                return (ref.description, .success(real))
            }
        }
    }

    /// Writes runs/<id>/job.json for a claimed job; returns the run directory.
    func prepare(_ job: JobRecord) throws -> String {
        guard let manifest = try queue.manifest(job.manifestID) else {
            throw SystemError(message: "manifest \(job.manifestID) is missing")
        }
        let runDir = tree.run(job.id)
        if mkdir(runDir, 0o750) != 0 && errno != EEXIST { throw SystemError("mkdir", path: runDir) }
        var description = WorkerJob(
            job: job.id, name: job.name, trialIndex: job.trialIndex, manifest: manifest.body,
            params: job.params, threads: job.threads,
            outboxName: WorkerJob.outboxName(job: job.id, name: job.name), groupID: groupID,
            heartbeatSeconds: Supervisor.heartbeatSeconds(lease: config.leaseSeconds))
        description.checkpoints = resolveCheckpoints(job, manifest: manifest)
        try writeFileAtomically(
            Data((description.json.serialized() + "\n").utf8), to: runDir + "/job.json", mode: 0o640)
        return runDir
    }

    /// The environment of a worker: fixed values, the job's thread count, and the few variables
    /// passed through from the daemon's own environment.
    func workerEnvironment(_ job: JobRecord, runDirectory runDir: String) -> [String] {
        var env = [
            "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=\(runDir)", "VLD_JOB_ID=\(job.id)",
            "OPENBLAS_NUM_THREADS=\(job.threads)", "OMP_NUM_THREADS=\(job.threads)",
        ]
        // Test hooks: VLDD_FAULT_WORKER_FSIZE (a file-size limit for workers, to make their writes fail)
        // and VLD_FAULT_STEP_DELAY_MS (slower steps, to interrupt a job between checkpoints on any machine).
        for key in ["OPENBLAS_CORETYPE", "TZ", "VLDD_FAULT_WORKER_FSIZE", "VLD_FAULT_STEP_DELAY_MS"] {
            if let value = ProcessInfo.processInfo.environment[key] { env.append("\(key)=\(value)") }
        }
        return env
    }
}
