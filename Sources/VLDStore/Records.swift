// Records.swift: the values the job queue stores and returns.

import Foundation

/// A job's place in its lifecycle (specs/ops.md 6.1). Terminal states never change again except
/// through an explicit `retry`.
public enum JobState: String, CaseIterable, Sendable, Codable {
    case queued, held, running, cancelling, succeeded, failed, cancelled

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }
    /// Running or stopping: a worker process may exist.
    public var isLive: Bool { self == .running || self == .cancelling }
}

/// Errors of the queue API. SQLite errors pass through as `SQLiteError`.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case noSuchJob(Int)
    /// A transition expected one state and found another (someone else changed the job first).
    case conflict(job: Int, expected: [JobState], found: JobState)
    case notQueueDatabase(path: String, reason: String)
    case newerSchema(path: String, found: Int, supported: Int)
    /// A job cannot be queued again while a job it needs has failed or was cancelled.
    case needFailed(job: Int, need: Int, stage: String?, state: JobState)

    public var description: String {
        switch self {
        case .noSuchJob(let id): return "no job \(id)"
        case .conflict(let id, let expected, let found):
            let list = expected.map(\.rawValue).joined(separator: " or ")
            return "job \(id) is \(found.rawValue), not \(list)"
        case .notQueueDatabase(let path, let reason): return "\(path) is not a vldd queue database: \(reason)"
        case .newerSchema(let path, let found, let supported):
            return
                "\(path) has schema version \(found); this vldd knows versions up to \(supported) (was it written by a newer vldd?)"
        case .needFailed(let id, let need, let stage, let state):
            return
                "job \(id) needs job \(need)\(stage.map { " (stage \($0))" } ?? ""), which \(state == .cancelled ? "was cancelled" : "failed"); retry job \(need) and its dependents are queued again"
        }
    }
}

/// One trial to queue, as the manifest validator resolved it.
public struct NewJob: Sendable {
    public var trialIndex: Int
    /// The trial's name as users see it, e.g. `vld-quick/001-schedule=cyc-1--seed1`.
    public var name: String
    /// The resolved trial manifest (JSON text).
    public var params: String
    public var priority: Int
    public var threads: Int
    public var memoryBytes: Int?
    public var totalSteps: Int?
    public var maxFailures: Int
    /// The pipeline stage of the trial (nil outside pipelines).
    public var stage: String?
    /// The trial's kind when it differs from the manifest's (a stage of another kind).
    public var kind: String?
    /// The trial indexes (of the same manifest) that must succeed before this job may start.
    public var needs: [Int]

    public init(
        trialIndex: Int, name: String, params: String, priority: Int = 0, threads: Int = 1,
        memoryBytes: Int? = nil, totalSteps: Int? = nil, maxFailures: Int = 3, stage: String? = nil,
        kind: String? = nil, needs: [Int] = []
    ) {
        self.stage = stage
        self.kind = kind
        self.needs = needs
        self.trialIndex = trialIndex
        self.name = name
        self.params = params
        self.priority = priority
        self.threads = threads
        self.memoryBytes = memoryBytes
        self.totalSteps = totalSteps
        self.maxFailures = maxFailures
    }
}

/// One accepted manifest and its trials.
public struct NewManifest: Sendable {
    /// Identifies one delivery: the same key ingested twice gives one set of jobs.
    public var sourceKey: String
    public var fileName: String
    public var submitterUID: UInt32
    public var sha256: String
    /// The manifest as submitted (JSON text).
    public var body: String
    public var name: String
    public var kind: String
    public var jobs: [NewJob]

    public init(
        sourceKey: String, fileName: String, submitterUID: UInt32, sha256: String, body: String,
        name: String, kind: String, jobs: [NewJob]
    ) {
        self.sourceKey = sourceKey
        self.fileName = fileName
        self.submitterUID = submitterUID
        self.sha256 = sha256
        self.body = body
        self.name = name
        self.kind = kind
        self.jobs = jobs
    }
}

public struct IngestResult: Sendable, Equatable {
    public var manifestID: Int
    public var jobIDs: [Int]
    /// False when the source key was already known (a redelivery): nothing was inserted.
    public var created: Bool
}

/// A job row joined with its manifest's submitter.
public struct JobRecord: Sendable, Equatable {
    public var id: Int
    public var manifestID: Int
    public var trialIndex: Int
    public var name: String
    public var experiment: String
    public var kind: String
    public var submitterUID: UInt32
    public var params: String
    public var state: JobState
    public var priority: Int
    public var notBefore: Int64
    public var attempts: Int
    public var failures: Int
    public var maxFailures: Int
    public var cancelRequested: Bool
    public var pid: Int?
    /// The Slurm job that runs (or last ran) this job, with `executor = slurm`.
    public var slurmJobID: String?
    /// Slurm's last reported state of that job, with its reason.
    public var slurmState: String?
    public var threads: Int
    public var memoryBytes: Int?
    public var progress: Double?
    public var progressMessage: String?
    public var etaSeconds: Int?
    public var step: Int?
    public var totalSteps: Int?
    public var loss: Double?
    public var exitCode: Int?
    public var termSignal: Int?
    public var error: String?
    public var outboxPath: String?
    public var createdAt: Int64
    public var startedAt: Int64?
    public var finishedAt: Int64?
    public var heartbeatAt: Int64?
    public var updatedAt: Int64
    /// The pipeline stage (nil outside pipelines).
    public var stage: String?
    /// The jobs this one needs that have not succeeded yet: it waits for them.
    public var waitingFor: [Int]
    /// Set when the job failed because a job it needs failed or was cancelled (that job's id).
    public var blockedBy: Int?

    init(row: Row) {
        id = row.int("id") ?? 0
        manifestID = row.int("manifest_id") ?? 0
        trialIndex = row.int("trial_index") ?? 0
        name = row.string("name") ?? ""
        experiment = row.string("experiment") ?? ""
        kind = row.string("kind") ?? ""
        submitterUID = UInt32(truncatingIfNeeded: row.int("submitter_uid") ?? 0)
        params = row.string("params") ?? "{}"
        state = JobState(rawValue: row.string("state") ?? "") ?? .failed
        priority = row.int("priority") ?? 0
        notBefore = Int64(row.int("not_before") ?? 0)
        attempts = row.int("attempts") ?? 0
        failures = row.int("failures") ?? 0
        maxFailures = row.int("max_failures") ?? 0
        cancelRequested = row.int("cancel_requested") == 1
        pid = row.int("pid")
        slurmJobID = row.string("slurm_job_id")
        slurmState = row.string("slurm_state")
        threads = row.int("cpus") ?? 1
        memoryBytes = row.int("mem_bytes")
        progress = row.double("progress")
        progressMessage = row.string("progress_msg")
        etaSeconds = row.int("eta_s")
        step = row.int("step")
        totalSteps = row.int("total_steps")
        loss = row.double("loss")
        exitCode = row.int("exit_code")
        termSignal = row.int("term_signal")
        error = row.string("error")
        outboxPath = row.string("outbox_path")
        createdAt = Int64(row.int("created_at") ?? 0)
        startedAt = row.int("started_at").map(Int64.init)
        finishedAt = row.int("finished_at").map(Int64.init)
        heartbeatAt = row.int("heartbeat_at").map(Int64.init)
        updatedAt = Int64(row.int("updated_at") ?? 0)
        stage = row.string("stage")
        waitingFor = (row.string("waiting_for") ?? "").split(separator: ",").compactMap { Int($0) }.sorted()
        blockedBy = row.int("blocked_by")
    }
}

public struct JobEvent: Sendable, Equatable {
    public var id: Int
    public var jobID: Int
    public var at: Int64
    public var from: JobState?
    public var to: JobState
    public var detail: String?
}

public struct ManifestRecord: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var kind: String
    public var fileName: String
    public var submitterUID: UInt32
    public var sha256: String
    public var body: String
    public var receivedAt: Int64
    public var trialCount: Int
    public var summaryPath: String?
}

/// What a running worker last reported.
public struct JobProgress: Sendable, Equatable {
    public var step: Int
    public var totalSteps: Int
    public var loss: Double?
    public var etaSeconds: Int?
    public var message: String?

    public init(step: Int, totalSteps: Int, loss: Double? = nil, etaSeconds: Int? = nil, message: String? = nil) {
        self.step = step
        self.totalSteps = totalSteps
        self.loss = loss
        self.etaSeconds = etaSeconds
        self.message = message
    }
}

/// Filters for `JobQueue.jobs`.
public struct JobFilter: Sendable {
    public var states: Set<JobState>?
    /// Substring of the job name (case-sensitive).
    public var nameContains: String?
    public var manifestID: Int?
    public var submitterUID: UInt32?
    /// Newest first, at most this many.
    public var limit: Int?

    public init(
        states: Set<JobState>? = nil, nameContains: String? = nil, manifestID: Int? = nil,
        submitterUID: UInt32? = nil, limit: Int? = nil
    ) {
        self.states = states
        self.nameContains = nameContains
        self.manifestID = manifestID
        self.submitterUID = submitterUID
        self.limit = limit
    }
}
