// JobQueue.swift: the job queue API over the schema of Schema.swift.
//
// Every state change is one IMMEDIATE transaction that updates the job only if it is still in
// the state the caller expects (`WHERE id = ? AND state IN (...)`) and appends a row to
// job_events; a change that finds another state throws `StoreError.conflict` instead of
// overwriting it. Ingest is idempotent on the manifest's source key, which is what makes the
// spool's "commit, then move the file" exactly-once across a crash between the two.
//
// A JobQueue owns one connection and is used from one thread at a time.

import Foundation

public final class JobQueue {
    public let db: Connection
    /// Milliseconds since the Unix epoch; injectable so tests control time.
    public let clock: () -> Int64

    public static func systemClock() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// Opens (and creates or migrates) the queue database at `path`.
    public init(path: String, clock: @escaping () -> Int64 = JobQueue.systemClock) throws {
        db = try Connection(path: path)
        self.clock = clock
        try Schema.migrate(db)
    }

    static let jobColumns = """
        j.*, m.name AS experiment, coalesce(j.trial_kind, m.kind) AS kind, m.submitter_uid AS submitter_uid,
        (SELECT group_concat(n.needs_job_id) FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id
          WHERE n.job_id = j.id AND d.state != 'succeeded') AS waiting_for
        """

    // MARK: boots

    /// Records a daemon start; returns the boot id that leases jobs from now on.
    public func startBoot(uuid: String, pid: Int32, version: String) throws -> Int {
        try db.immediate {
            try db.run(
                "INSERT INTO daemon_boots(boot_uuid, pid, version, started_at) VALUES (?, ?, ?, ?)",
                [uuid, Int(pid), version, clock()])
            return Int(db.lastInsertRowID)
        }
    }

    public func stopBoot(_ boot: Int) throws {
        try db.run("UPDATE daemon_boots SET stopped_at = ? WHERE id = ?", [clock(), boot])
    }

    // MARK: ingest

    /// Inserts the manifest and one queued job per trial, unless its source key is known, in
    /// which case nothing changes and the existing ids are returned.
    public func ingest(_ manifest: NewManifest) throws -> IngestResult {
        try db.immediate {
            let now = clock()
            let inserted = try db.query(
                """
                INSERT INTO manifests(source_key, file_name, submitter_uid, sha256, body, received_at, name, kind, trial_count)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source_key) DO NOTHING RETURNING id
                """,
                [
                    manifest.sourceKey, manifest.fileName, manifest.submitterUID, manifest.sha256, manifest.body, now,
                    manifest.name, manifest.kind, manifest.jobs.count,
                ])
            guard let manifestID = inserted.first?.int("id") else {
                let existing = try db.query("SELECT id FROM manifests WHERE source_key = ?", [manifest.sourceKey])
                let id = existing.first?.int("id") ?? 0
                let jobs = try db.query("SELECT id FROM jobs WHERE manifest_id = ? ORDER BY trial_index", [id])
                return IngestResult(manifestID: id, jobIDs: jobs.compactMap { $0.int("id") }, created: false)
            }
            var ids: [Int] = []
            let insertJob = try db.prepare(
                """
                INSERT INTO jobs(manifest_id, trial_index, name, params, priority, cpus, mem_bytes, total_steps,
                                 max_failures, created_at, updated_at, stage, trial_kind)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """)
            let insertEvent = try db.prepare(
                "INSERT INTO job_events(job_id, at, from_state, to_state, detail) VALUES (?, ?, NULL, 'queued', ?)")
            for job in manifest.jobs {
                try insertJob.bind([
                    manifestID, job.trialIndex, job.name, job.params, job.priority, job.threads,
                    job.memoryBytes, job.totalSteps, job.maxFailures, now, now, job.stage, job.kind,
                ])
                guard let id = try insertJob.rows().first?.int("id") else { continue }
                try insertEvent.bind([id, now, "submitted by uid \(manifest.submitterUID) as \(manifest.fileName)"])
                _ = try insertEvent.rows()
                ids.append(id)
            }
            // Needs name trials of the same manifest; they become job ids once all are inserted.
            let byTrial = Dictionary(
                zip(manifest.jobs.map(\.trialIndex), ids), uniquingKeysWith: { first, _ in first })
            let insertNeed = try db.prepare("INSERT OR IGNORE INTO job_needs(job_id, needs_job_id) VALUES (?, ?)")
            for (job, id) in zip(manifest.jobs, ids) {
                for trial in job.needs {
                    guard let need = byTrial[trial], need != id else {
                        throw StoreError.noSuchJob(trial)
                    }
                    try insertNeed.bind([id, need])
                    _ = try insertNeed.rows()
                }
            }
            return IngestResult(manifestID: manifestID, jobIDs: ids, created: true)
        }
    }

    // MARK: claiming and running

    /// Takes the next runnable job (highest priority, then oldest; `not_before` passed; needing
    /// at most `maxThreads` and `maxMemoryBytes`) and marks it running under `boot`. Nil when
    /// none is runnable.
    public func claimNext(
        boot: Int, maxThreads: Int, maxMemoryBytes: Int = Int.max,
        leaseMilliseconds: Int64 = 120_000
    ) throws -> JobRecord? {
        try db.immediate {
            let now = clock()
            let rows = try db.query(
                """
                UPDATE jobs SET state = 'running', lease_owner = ?, lease_expires_at = ?, heartbeat_at = ?,
                  attempts = attempts + 1, started_at = coalesce(started_at, ?), updated_at = ?, exit_code = NULL,
                  term_signal = NULL, pid = NULL, pgid = NULL, slurm_job_id = NULL,
                  slurm_state = NULL
                WHERE id = (SELECT q.id FROM jobs q WHERE q.state = 'queued' AND q.not_before <= ? AND q.cpus <= ?
                              AND coalesce(q.mem_bytes, 0) <= ?
                              AND NOT EXISTS (SELECT 1 FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id
                                              WHERE n.job_id = q.id AND d.state != 'succeeded')
                            ORDER BY q.priority DESC, q.id LIMIT 1)
                RETURNING id
                """, [boot, now + leaseMilliseconds, now, now, now, now, maxThreads, maxMemoryBytes])
            guard let id = rows.first?.int("id") else { return nil }
            try event(id, from: .queued, to: .running, detail: "claimed by boot \(boot)", at: now)
            return try job(id)
        }
    }

    /// Records the worker's process (after spawn) on a live job.
    public func setProcess(_ id: Int, pid: Int32) throws {
        try db.run(
            "UPDATE jobs SET pid = ?, pgid = ?, updated_at = ? WHERE id = ? AND state IN ('running','cancelling')",
            [Int(pid), Int(pid), clock(), id])
    }

    /// Stores a worker's progress report and renews its lease.
    public func heartbeat(_ id: Int, progress: JobProgress, leaseMilliseconds: Int64 = 120_000) throws {
        let now = clock()
        let fraction = progress.totalSteps > 0 ? Double(progress.step) / Double(progress.totalSteps) : nil
        try db.run(
            """
            UPDATE jobs SET step = ?, total_steps = ?, loss = coalesce(?, loss), eta_s = ?, progress = ?,
              progress_msg = coalesce(?, progress_msg), heartbeat_at = ?, lease_expires_at = ?, updated_at = ?
            WHERE id = ? AND state IN ('running','cancelling')
            """,
            [
                progress.step, progress.totalSteps, progress.loss, progress.etaSeconds, fraction, progress.message,
                now, now + leaseMilliseconds, now, id,
            ])
    }

    /// Renews the lease of a live job whose worker sent a heartbeat but no progress.
    public func renewLease(_ id: Int, leaseMilliseconds: Int64) throws {
        let now = clock()
        try db.run(
            """
            UPDATE jobs SET heartbeat_at = ?, lease_expires_at = ?, updated_at = ? WHERE id = ? AND state IN ('running','cancelling')
            """, [now, now + leaseMilliseconds, now, id])
    }

    /// Live jobs of `boot` whose lease has run out: their worker has sent nothing since
    /// `lease_expires_at`.
    public func expiredLeases(boot: Int) throws -> [Int] {
        try db.query(
            """
            SELECT id FROM jobs WHERE state IN ('running','cancelling') AND lease_owner = ? AND lease_expires_at < ? ORDER BY id
            """, [boot, clock()]
        ).compactMap { $0.int("id") }
    }

    /// Appends metric values (one evaluation of a job); a repeated (name, step) is replaced, which
    /// is what a resumed job that re-evaluates a step wants.
    public func recordMetrics(_ id: Int, step: Int, values: [(String, Double)]) throws {
        guard !values.isEmpty else { return }
        try db.immediate {
            let now = clock()
            let stmt = try db.prepare(
                "INSERT OR REPLACE INTO metrics(job_id, name, step, value, at) VALUES (?, ?, ?, ?, ?)")
            for (name, value) in values where value.isFinite {
                try stmt.bind([id, name, step, value, now])
                _ = try stmt.rows()
            }
        }
    }

    /// How a worker process ended, as the supervisor saw it.
    public enum Outcome: Sendable, Equatable {
        /// Exit 0 with results published at `outbox`.
        case succeeded(outbox: String)
        /// Exit 75 after a checkpoint (daemon stop, preemption): queued again, no failure counted.
        case preempted(detail: String)
        /// Any other end. Retried with backoff (`retryBaseMilliseconds` * 2^failures) until
        /// `max_failures`, unless `retryable` is false.
        case failed(error: String, exitCode: Int?, signal: Int?, retryable: Bool)
    }

    /// Moves a running (or cancelling) job to its next state after its process ended; returns
    /// the updated job. A cancelling job ends cancelled unless it had already succeeded.
    @discardableResult
    public func finish(_ id: Int, outcome: Outcome, retryBaseMilliseconds: Int64 = 30_000) throws -> JobRecord {
        try db.immediate {
            let now = clock()
            guard let current = try job(id) else { throw StoreError.noSuchJob(id) }
            guard current.state.isLive else {
                throw StoreError.conflict(job: id, expected: [.running, .cancelling], found: current.state)
            }
            let clearLease = "lease_owner = NULL, lease_expires_at = NULL, pid = NULL, pgid = NULL"
            switch outcome {
            case .succeeded(let outbox):
                try update(
                    id, from: current.state, to: .succeeded, at: now, detail: "results published at \(outbox)",
                    set:
                        "exit_code = 0, error = NULL, outbox_path = ?, finished_at = ?, progress = 1, eta_s = 0, \(clearLease)",
                    [outbox, now])
            case .preempted(let detail) where current.state == .running:
                try update(
                    id, from: .running, to: .queued, at: now, detail: detail,
                    set: "exit_code = 75, eta_s = NULL, \(clearLease)", [])
            case .preempted(let detail):
                try update(
                    id, from: .cancelling, to: .cancelled, at: now, detail: "cancelled (\(detail))",
                    set: "exit_code = 75, finished_at = ?, \(clearLease)", [now])
                try failDependents(of: id, at: now)
            case .failed(let error, let code, let signal, let retryable):
                if current.state == .cancelling {
                    try update(
                        id, from: .cancelling, to: .cancelled, at: now, detail: "cancelled; the worker ended: \(error)",
                        set: "exit_code = ?, term_signal = ?, finished_at = ?, \(clearLease)", [code, signal, now])
                    try failDependents(of: id, at: now)
                } else if retryable && current.failures + 1 < current.maxFailures {
                    let shift = Int64(min(current.failures, 20))
                    let notBefore = now + retryBaseMilliseconds * (Int64(1) << shift)
                    let wait = Double(notBefore - now) / 1000
                    try update(
                        id, from: .running, to: .queued, at: now,
                        detail: "\(error); retry \(current.failures + 2) of \(current.maxFailures) in \(Int(wait)) s",
                        set:
                            "failures = failures + 1, not_before = ?, exit_code = ?, term_signal = ?, error = ?, eta_s = NULL, \(clearLease)",
                        [notBefore, code, signal, error])
                } else {
                    let why =
                        retryable ? "\(error) (failed \(current.failures + 1) of \(current.maxFailures) times)" : error
                    try update(
                        id, from: .running, to: .failed, at: now, detail: why,
                        set:
                            "failures = failures + 1, exit_code = ?, term_signal = ?, error = ?, finished_at = ?, eta_s = NULL, \(clearLease)",
                        [code, signal, why, now])
                    try failDependents(of: id, at: now)
                }
            }
            return try job(id)!
        }
    }

    // MARK: user commands

    /// Cancels a job: queued or held ones at once; running ones go to `cancelling` (the
    /// supervisor stops the worker and `finish` records the end). Returns the new state.
    @discardableResult
    public func cancel(_ id: Int, by uid: UInt32? = nil) throws -> JobState {
        try db.immediate {
            let now = clock()
            guard let current = try job(id) else { throw StoreError.noSuchJob(id) }
            let who = uid.map { " by uid \($0)" } ?? ""
            switch current.state {
            case .queued, .held:
                try update(
                    id, from: current.state, to: .cancelled, at: now, detail: "cancelled\(who)",
                    set: "cancel_requested = 1, finished_at = ?", [now])
                try failDependents(of: id, at: now)
                return .cancelled
            case .running:
                try update(
                    id, from: .running, to: .cancelling, at: now, detail: "cancel requested\(who)",
                    set: "cancel_requested = 1", [])
                return .cancelling
            case .cancelling, .succeeded, .failed, .cancelled:
                throw StoreError.conflict(job: id, expected: [.queued, .held, .running], found: current.state)
            }
        }
    }

    public func hold(_ id: Int, by uid: UInt32? = nil) throws {
        try simpleTransition(
            id, from: .queued, to: .held, detail: "held" + (uid.map { " by uid \($0)" } ?? ""), set: "", [])
    }

    public func release(_ id: Int, by uid: UInt32? = nil) throws {
        try simpleTransition(
            id, from: .held, to: .queued, detail: "released" + (uid.map { " by uid \($0)" } ?? ""), set: "", [])
    }

    /// Queues a failed or cancelled job again with a fresh failure count; it resumes from its
    /// last checkpoint if one exists.
    public func retry(_ id: Int, by uid: UInt32? = nil) throws {
        try db.immediate {
            let now = clock()
            guard let current = try job(id) else { throw StoreError.noSuchJob(id) }
            guard current.state == .failed || current.state == .cancelled else {
                throw StoreError.conflict(job: id, expected: [.failed, .cancelled], found: current.state)
            }
            let failedNeed = try db.query(
                """
                SELECT d.id, d.stage, d.state FROM job_needs n JOIN jobs d ON d.id = n.needs_job_id
                WHERE n.job_id = ? AND d.state IN ('failed','cancelled') ORDER BY d.id LIMIT 1
                """, [id]
            ).first
            if let row = failedNeed, let need = row.int("id") {
                throw StoreError.needFailed(
                    job: id, need: need, stage: row.string("stage"),
                    state: JobState(rawValue: row.string("state") ?? "") ?? .failed)
            }
            try requeue(
                id, from: current.state, at: now, detail: "retry requested" + (uid.map { " by uid \($0)" } ?? ""))
        }
    }

    /// Queues a failed or cancelled job again, and with it every job that failed because it did.
    private func requeue(_ id: Int, from state: JobState, at now: Int64, detail: String) throws {
        try update(
            id, from: state, to: .queued, at: now, detail: detail,
            set:
                "failures = 0, not_before = 0, cancel_requested = 0, error = NULL, exit_code = NULL, term_signal = NULL, finished_at = NULL, blocked_by = NULL",
            [])
        let blocked = try db.query("SELECT id FROM jobs WHERE blocked_by = ? AND state = 'failed' ORDER BY id", [id])
        for row in blocked {
            guard let dependent = row.int("id") else { continue }
            try requeue(
                dependent, from: .failed, at: now, detail: "queued again: job \(id), which it needs, was retried")
        }
    }

    /// Fails the queued and held jobs that need `id` (which just failed or was cancelled), and
    /// theirs in turn: they could never start. Must run inside a transaction.
    func failDependents(of id: Int, at now: Int64) throws {
        guard let need = try job(id) else { return }
        let what = need.stage.map { "stage \($0)" } ?? "job \(id)"
        let verb = need.state == .cancelled ? "was cancelled" : "failed"
        let dependents = try db.query(
            """
            SELECT j.id, j.state FROM job_needs n JOIN jobs j ON j.id = n.job_id
            WHERE n.needs_job_id = ? AND j.state IN ('queued','held') ORDER BY j.id
            """, [id])
        for row in dependents {
            guard let dependent = row.int("id"), let state = JobState(rawValue: row.string("state") ?? "") else {
                continue
            }
            let why = "needs \(what) \(verb) (job \(id))"
            try update(
                dependent, from: state, to: .failed, at: now, detail: why,
                set: "error = ?, finished_at = ?, blocked_by = ?", [why, now, id])
            try failDependents(of: dependent, at: now)
        }
    }

    /// At daemon start: jobs that a previous boot left running go back to the queue (they resume
    /// from their checkpoints); jobs it left cancelling are cancelled. Returns the ids requeued.
    public func reconcile(currentBoot: Int) throws -> (requeued: [Int], cancelled: [Int]) {
        try db.immediate {
            let now = clock()
            let live = try db.query(
                """
                SELECT id, state FROM jobs WHERE state IN ('running','cancelling') AND (lease_owner IS NULL OR lease_owner != ?)
                ORDER BY id
                """, [currentBoot])
            var requeued: [Int] = [], cancelled: [Int] = []
            for row in live {
                guard let id = row.int("id"), let state = JobState(rawValue: row.string("state") ?? "") else {
                    continue
                }
                let clear = "lease_owner = NULL, lease_expires_at = NULL, pid = NULL, pgid = NULL"
                if state == .running {
                    try update(
                        id, from: .running, to: .queued, at: now,
                        detail:
                            "the daemon that ran it stopped without finishing it; requeued to resume from its last checkpoint",
                        set: "eta_s = NULL, \(clear)", [])
                    requeued.append(id)
                } else {
                    try update(
                        id, from: .cancelling, to: .cancelled, at: now,
                        detail: "cancelled (the daemon stopped while the cancel was in progress)",
                        set: "finished_at = ?, \(clear)", [now])
                    try failDependents(of: id, at: now)
                    cancelled.append(id)
                }
            }
            return (requeued, cancelled)
        }
    }

    /// Records that the grid summary of a manifest was published at `path`.
    public func setSummaryPath(manifest: Int, path: String) throws {
        try db.run("UPDATE manifests SET summary_path = ? WHERE id = ?", [path, manifest])
    }

    // MARK: queries

    public func job(_ id: Int) throws -> JobRecord? {
        try db.query(
            "SELECT \(Self.jobColumns) FROM jobs j JOIN manifests m ON m.id = j.manifest_id WHERE j.id = ?", [id]
        )
        .first.map(JobRecord.init(row:))
    }

    /// Jobs matching `filter`, newest first.
    public func jobs(_ filter: JobFilter = JobFilter()) throws -> [JobRecord] {
        var conditions: [String] = []
        var args: [any SQLValueConvertible] = []
        if let states = filter.states {
            let sorted = states.map(\.rawValue).sorted()
            conditions.append("j.state IN (\(sorted.map { _ in "?" }.joined(separator: ", ")))")
            args += sorted as [any SQLValueConvertible]
        }
        if let name = filter.nameContains {
            conditions.append("instr(j.name, ?) > 0")
            args.append(name)
        }
        if let manifest = filter.manifestID {
            conditions.append("j.manifest_id = ?")
            args.append(manifest)
        }
        if let uid = filter.submitterUID {
            conditions.append("m.submitter_uid = ?")
            args.append(uid)
        }
        var sql = "SELECT \(Self.jobColumns) FROM jobs j JOIN manifests m ON m.id = j.manifest_id"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY j.id DESC"
        if let limit = filter.limit {
            sql += " LIMIT ?"
            args.append(limit)
        }
        return try db.query(sql, args).map(JobRecord.init(row:))
    }

    public func events(_ id: Int) throws -> [JobEvent] {
        try db.query("SELECT * FROM job_events WHERE job_id = ? ORDER BY id", [id]).map { row in
            JobEvent(
                id: row.int("id") ?? 0, jobID: row.int("job_id") ?? 0, at: Int64(row.int("at") ?? 0),
                from: row.string("from_state").flatMap(JobState.init(rawValue:)),
                to: JobState(rawValue: row.string("to_state") ?? "") ?? .failed, detail: row.string("detail"))
        }
    }

    public func manifest(_ id: Int) throws -> ManifestRecord? {
        try db.query("SELECT * FROM manifests WHERE id = ?", [id]).first.map { row in
            ManifestRecord(
                id: row.int("id") ?? 0, name: row.string("name") ?? "", kind: row.string("kind") ?? "",
                fileName: row.string("file_name") ?? "",
                submitterUID: UInt32(truncatingIfNeeded: row.int("submitter_uid") ?? 0),
                sha256: row.string("sha256") ?? "", body: row.string("body") ?? "{}",
                receivedAt: Int64(row.int("received_at") ?? 0), trialCount: row.int("trial_count") ?? 0,
                summaryPath: row.string("summary_path"))
        }
    }

    public func metrics(_ id: Int) throws -> [(name: String, step: Int, value: Double)] {
        try db.query("SELECT name, step, value FROM metrics WHERE job_id = ? ORDER BY step, name", [id]).map {
            ($0.string("name") ?? "", $0.int("step") ?? 0, $0.double("value") ?? .nan)
        }
    }

    /// Number of jobs in each state (states with none are included as 0).
    public func counts() throws -> [JobState: Int] {
        var result = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0, 0) })
        for row in try db.query("SELECT state, count(*) AS n FROM jobs GROUP BY state") {
            if let state = JobState(rawValue: row.string("state") ?? "") { result[state] = row.int("n") ?? 0 }
        }
        return result
    }

    /// The earliest `not_before` among queued jobs still waiting for their backoff, if any.
    public func nextWakeup() throws -> Int64? {
        try db.query("SELECT min(not_before) AS t FROM jobs WHERE state = 'queued' AND not_before > ?", [clock()])
            .first.flatMap { $0.int("t") }.map(Int64.init)
    }

    // MARK: helpers

    func event(_ id: Int, from: JobState?, to: JobState, detail: String?, at: Int64) throws {
        try db.run(
            "INSERT INTO job_events(job_id, at, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?)",
            [id, at, from?.rawValue, to.rawValue, detail])
    }

    /// The guarded update: `state` changes only if it is still `from`. Must run inside a transaction.
    func update(
        _ id: Int, from: JobState, to: JobState, at now: Int64, detail: String?, set: String,
        _ args: [any SQLValueConvertible]
    ) throws {
        let extra = set.isEmpty ? "" : ", " + set
        let changed = try db.run(
            "UPDATE jobs SET state = ?, updated_at = ?\(extra) WHERE id = ? AND state = ?",
            [to.rawValue, now] + args + [id, from.rawValue])
        guard changed == 1 else {
            guard let current = try job(id) else { throw StoreError.noSuchJob(id) }
            throw StoreError.conflict(job: id, expected: [from], found: current.state)
        }
        try event(id, from: from, to: to, detail: detail, at: now)
    }

    private func simpleTransition(
        _ id: Int, from: JobState, to: JobState, detail: String, set: String,
        _ args: [any SQLValueConvertible]
    ) throws {
        try db.immediate {
            try update(id, from: from, to: to, at: clock(), detail: detail, set: set, args)
        }
    }
}
