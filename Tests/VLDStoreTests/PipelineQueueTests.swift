// PipelineQueueTests.swift: queue schema v2: job dependencies, failing and re-queueing the
// dependents of a need, and the migration of a real v1 database (Fixtures/queue-v1.sqlite3).

import Foundation
import Testing
@testable import VLDStore

/// teacher (trial 0) -> student (trials 1 and 2, each needing the teacher) -> eval (trial 3, needing both students).
private func pipelineManifest() -> NewManifest {
    var m = sampleManifest(key: "pipe", trials: 4, name: "pipe")
    let stages = ["teacher", "student", "student", "eval"]
    let needs: [[Int]] = [[], [0], [0], [1, 2]]
    for i in 0..<4 {
        m.jobs[i].stage = stages[i]
        m.jobs[i].needs = needs[i]
    }
    return m
}

private func fail(_ q: JobQueue, _ id: Int) throws {
    try q.finish(id, outcome: .failed(error: "diverged", exitCode: 65, signal: nil, retryable: false))
}

@Test func aJobStartsOnlyWhenEveryJobItNeedsSucceeded() throws {
    let dir = TempDir()
    let q = try JobQueue(path: dir.path("q.sqlite3"))
    let ids = try q.ingest(pipelineManifest()).jobIDs
    #expect(try q.job(ids[1])?.waitingFor == [ids[0]])
    #expect(try q.job(ids[3])?.waitingFor == [ids[1], ids[2]])
    #expect(try q.job(ids[3])?.stage == "eval")
    let first = try q.claimNext(boot: try q.startBoot(uuid: "b", pid: 1, version: "t"), maxThreads: 8)
    #expect(first?.id == ids[0])
    // Nothing else is runnable while the teacher runs.
    #expect(try q.claimNext(boot: 1, maxThreads: 8) == nil)
    try q.finish(ids[0], outcome: .succeeded(outbox: "/o/1"))
    #expect(try q.job(ids[1])?.waitingFor == [])
    let a = try q.claimNext(boot: 1, maxThreads: 8), b = try q.claimNext(boot: 1, maxThreads: 8)
    #expect([a?.id, b?.id] == [ids[1], ids[2]])
    #expect(try q.claimNext(boot: 1, maxThreads: 8) == nil)
    try q.finish(ids[1], outcome: .succeeded(outbox: "/o/2"))
    #expect(try q.claimNext(boot: 1, maxThreads: 8) == nil)
    #expect(try q.job(ids[3])?.waitingFor == [ids[2]])
    try q.finish(ids[2], outcome: .succeeded(outbox: "/o/3"))
    #expect(try q.claimNext(boot: 1, maxThreads: 8)?.id == ids[3])
}

@Test func aFailedNeedFailsItsDependentsAndRetryingItQueuesThemAgain() throws {
    let dir = TempDir()
    let q = try JobQueue(path: dir.path("q.sqlite3"))
    let ids = try q.ingest(pipelineManifest()).jobIDs
    try q.hold(ids[2])
    _ = try q.claimNext(boot: try q.startBoot(uuid: "b", pid: 1, version: "t"), maxThreads: 8)
    try fail(q, ids[0])
    // In the same transaction, transitively, held ones included.
    #expect(try (0..<4).map { try q.job(ids[$0])!.state } == [.failed, .failed, .failed, .failed])
    #expect(try q.job(ids[1])?.error == "needs stage teacher failed (job \(ids[0]))")
    #expect(try q.job(ids[3])?.error == "needs stage student failed (job \(ids[1]))")
    #expect(try q.job(ids[3])?.blockedBy == ids[1])
    #expect(try q.events(ids[2]).last?.detail == "needs stage teacher failed (job \(ids[0]))")
    // A dependent cannot be retried alone; the need can, and takes its dependents with it.
    #expect(throws: StoreError.needFailed(job: ids[1], need: ids[0], stage: "teacher", state: .failed)) {
        try q.retry(ids[1])
    }
    try q.retry(ids[0])
    #expect(try (0..<4).map { try q.job(ids[$0])!.state } == [.queued, .queued, .queued, .queued])
    #expect(try q.job(ids[3])?.blockedBy == nil)
    #expect(try q.events(ids[3]).last?.detail == "queued again: job \(ids[1]), which it needs, was retried")
    // Cancelling a queued need fails its dependents with the reason.
    #expect(try q.cancel(ids[0]) == .cancelled)
    #expect(try q.job(ids[2])?.error == "needs stage teacher was cancelled (job \(ids[0]))")
}

@Test func aVersion1QueueMigratesKeepingEveryJobItsStateAndItsEvents() throws {
    let dir = TempDir()
    let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/queue-v1.sqlite3")
    let path = dir.path("vldd.sqlite3")
    try FileManager.default.copyItem(atPath: fixture.path, toPath: path)
    func snapshot(_ db: Connection) throws -> [String] {
        try db.query("SELECT id, name, state, attempts, failures, outbox_path, error FROM jobs ORDER BY id").map {
            "\($0.int("id")!) \($0.string("name")!) \($0.string("state")!) \($0.int("attempts")!) \($0.int("failures")!) \($0.string("outbox_path") ?? "-") \($0.string("error") ?? "-")"
        }
    }
    let before: [String]
    let eventsBefore: Int, metricsBefore: Int
    do {
        let db = try Connection(path: path)
        #expect(try db.query("PRAGMA user_version").first?.int("user_version") == 1)
        before = try snapshot(db)
        eventsBefore = try db.query("SELECT count(*) AS n FROM job_events").first!.int("n")!
        metricsBefore = try db.query("SELECT count(*) AS n FROM metrics").first!.int("n")!
    }
    #expect(before.count == 6)
    let q = try JobQueue(path: path)
    #expect(try q.db.query("PRAGMA user_version").first?.int("user_version") == Schema.latestVersion)
    #expect(FileManager.default.fileExists(atPath: path + ".v1.bak"))
    #expect(try snapshot(q.db) == before)
    #expect(try q.db.query("SELECT count(*) AS n FROM job_events").first!.int("n") == eventsBefore)
    #expect(try q.db.query("SELECT count(*) AS n FROM metrics").first!.int("n") == metricsBefore)
    let states = try (1...6).map { try q.job($0)!.state }
    #expect(states == [.succeeded, .succeeded, .failed, .cancelled, .queued, .held])
    #expect(try q.job(5)?.stage == nil && q.job(5)?.waitingFor == [])
    // The migrated queue works: the requeued job is claimed, the failed one can be retried.
    let boot = try q.startBoot(uuid: "after-migration", pid: 1, version: "t")
    #expect(try q.claimNext(boot: boot, maxThreads: 8)?.id == 5)
    try q.retry(3)
    #expect(try q.job(3)?.state == .queued)
    // And takes pipelines.
    let ids = try q.ingest(pipelineManifest()).jobIDs
    #expect(try q.job(ids[1])?.waitingFor == [ids[0]])
}
