// JobQueue+Slurm.swift: what the queue records for jobs that run on Slurm (issue 16).

import Foundation

extension JobQueue {
    /// Records the Slurm job that runs a live job's current attempt.
    public func setSlurmJob(_ id: Int, slurmJobID: String, detail: String) throws {
        try db.immediate {
            let now = clock()
            let changed = try db.run(
                """
                UPDATE jobs SET slurm_job_id = ?, slurm_state = 'PENDING', updated_at = ?
                WHERE id = ? AND state IN ('running','cancelling')
                """, [slurmJobID, now, id])
            guard changed == 1, let job = try job(id) else { return }
            try event(id, from: job.state, to: job.state, detail: detail, at: now)
        }
    }

    /// Slurm's latest state of a live job's Slurm job.
    public func setSlurmState(_ id: Int, _ state: String) throws {
        try db.run(
            "UPDATE jobs SET slurm_state = ?, updated_at = ? WHERE id = ? AND state IN ('running','cancelling')",
            [state, clock(), id])
    }

    /// Gives a claimed job back to the queue before anything ran (Slurm could not be reached, or
    /// a submission turned out not to have happened): no failure, and with `countAttempt` false
    /// no attempt (the next claim reuses its number; only where no Slurm job can carry it). A job
    /// whose cancel arrived meanwhile is cancelled instead.
    public func unclaim(_ id: Int, detail: String, countAttempt: Bool = false) throws {
        try db.immediate {
            let now = clock()
            let clear =
                "lease_owner = NULL, lease_expires_at = NULL, slurm_job_id = NULL, slurm_state = NULL, pid = NULL, pgid = NULL"
            if try job(id)?.state == .cancelling {
                try update(
                    id, from: .cancelling, to: .cancelled, at: now, detail: "cancelled before it ran (\(detail))",
                    set: "finished_at = ?, \(clear)", [now])
                try failDependents(of: id, at: now)
                return
            }
            try update(
                id, from: .running, to: .queued, at: now, detail: detail,
                set: (countAttempt ? "" : "attempts = max(0, attempts - 1), ") + clear, [])
        }
    }

    /// Live jobs that other daemon boots left become `boot`'s (`executor = slurm`: the cluster
    /// runs them on and this daemon follows them, instead of `reconcile` requeueing them; one
    /// without a Slurm id is looked up by name). Local workers of an earlier daemon (a pid) are
    /// left to `reconcile`. Returns them.
    public func adoptLiveJobs(boot: Int, leaseMilliseconds: Int64) throws -> [JobRecord] {
        try db.immediate {
            let now = clock()
            let rows = try db.query(
                """
                UPDATE jobs SET lease_owner = ?, lease_expires_at = ?, updated_at = ?
                WHERE state IN ('running','cancelling') AND (lease_owner IS NULL OR lease_owner != ?)
                  AND (slurm_job_id IS NOT NULL OR pid IS NULL)
                RETURNING id
                """, [boot, now + leaseMilliseconds, now, boot])
            var adopted: [JobRecord] = []
            for id in rows.compactMap({ $0.int("id") }).sorted() {
                guard let job = try job(id) else { continue }
                try event(
                    id, from: job.state, to: job.state,
                    detail: job.slurmJobID.map {
                        "followed again by daemon boot \(boot): Slurm job \($0) was left running"
                    } ?? "followed again by daemon boot \(boot): its Slurm job is looked up by name",
                    at: now)
                adopted.append(job)
            }
            return adopted
        }
    }
}
