// SlurmRestarts.swift: what `executor = slurm` does when the daemon starts with jobs a previous
// daemon left (issue 16): follow them again on Slurm (those whose Slurm id was never recorded are
// looked up by name, SlurmExecutor.swift), or, with `executor = local`, cancel them on Slurm so
// that the requeued jobs do not run twice.

import Foundation
import VLDStore

extension Supervisor {
    /// Follows the live jobs a previous daemon left (after `recoverSlurmJobs`); those without a
    /// Slurm id are looked up by name.
    public func adopt(_ jobs: [JobRecord]) {
        for job in jobs {
            let events = tree.run(job.id) + "/events-\(job.attempts).jsonl"
            running[job.id] = Running(
                job: job, pid: 0, pipe: -1, leaseSeconds: config.leaseSeconds,
                slurm: SlurmRun(id: job.slurmJobID, attempt: job.attempts, events: events))
        }
        if !jobs.isEmpty {
            log.notice(
                "slurm: following the jobs a previous daemon left",
                ["jobs": jobs.map { "\($0.id)=\($0.slurmJobID ?? "?")" }.joined(separator: ",")])
        }
    }

    /// At daemon start, before the queue requeues what a previous daemon left running: with
    /// `executor = slurm`, every live job becomes this boot's and is followed on Slurm (a job
    /// claimed without a recorded Slurm id is looked up by its name); with `local`, when live jobs
    /// were left on Slurm, every live Slurm job with the daemon's name prefix is cancelled (one
    /// listing, so the start never waits on one command per job) so that the requeued jobs do not
    /// run twice. Returns the jobs to follow.
    public static func recoverSlurmJobs(
        queue: JobQueue, boot: Int, config: DaemonConfig, prefix: String, log: Logger
    ) throws -> [JobRecord] {
        guard config.executor == .slurm else {
            let left = try queue.jobs(JobFilter(states: [.running, .cancelling])).filter {
                $0.slurmJobID != nil || $0.slurmState != nil
            }
            guard !left.isEmpty else { return [] }
            let client = SlurmClient()
            do {
                for (slurmID, info) in try client.jobs(named: prefix) where !info.isTerminal {
                    do {
                        try client.cancel(slurmID)
                        log.warning(
                            "slurm: executor is local now; cancelled a Slurm job a previous daemon started",
                            ["slurm_job": slurmID, "name": info.name])
                    } catch {
                        log.error(
                            "slurm: cannot cancel a previous daemon's Slurm job; cancel it by hand or its job may run twice",
                            ["slurm_job": slurmID, "error": "\(error)"])
                    }
                }
            } catch {
                log.error(
                    "slurm: executor is local now and Slurm cannot be asked about the jobs a previous daemon left "
                        + "there; cancel them by hand ('scancel --name' with prefix \(prefix)) or they may run twice",
                    [
                        "jobs": left.map { "\($0.id)=\($0.slurmJobID ?? "?")" }.joined(separator: ","),
                        "error": "\(error)",
                    ])
            }
            return []
        }
        return try queue.adoptLiveJobs(boot: boot, leaseMilliseconds: Int64(config.leaseSeconds * 1000))
    }
}
