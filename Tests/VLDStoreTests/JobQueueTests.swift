// JobQueueTests.swift: the queue on real SQLite files in fresh temporary directories.

import Foundation
import Testing
@testable import VLDStore

/// A fresh directory per test, removed at the end.
final class TempDir {
    let url: URL
    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("vldstore-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
}

/// A value shared between test threads.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}

/// A clock the test moves by hand.
final class TestClock: @unchecked Sendable {
    var now: Int64 = 1_700_000_000_000
    func read() -> Int64 { now }
}

func sampleManifest(
    key: String = "k1", trials: Int = 2, name: String = "exp", priority: Int = 0,
    threads: Int = 1, uid: UInt32 = 1000
) -> NewManifest {
    NewManifest(
        sourceKey: key, fileName: "\(name).json", submitterUID: uid, sha256: "00", body: #"{"name":"\#(name)"}"#,
        name: name, kind: "train",
        jobs: (0..<trials).map {
            NewJob(
                trialIndex: $0, name: "\(name)/\($0)", params: #"{"i":\#($0)}"#,
                priority: priority, threads: threads, totalSteps: 100)
        })
}

struct JobQueueTests {
    @Test func ingestIsIdempotentOnTheSourceKey() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let first = try q.ingest(sampleManifest(key: "a", trials: 3))
        #expect(first.created)
        #expect(first.jobIDs.count == 3)
        let again = try q.ingest(sampleManifest(key: "a", trials: 3))
        #expect(!again.created)
        #expect(again.manifestID == first.manifestID)
        #expect(again.jobIDs == first.jobIDs)
        #expect(try q.counts()[.queued] == 3)
        let other = try q.ingest(sampleManifest(key: "b", trials: 1))
        #expect(other.created && other.manifestID != first.manifestID)
        #expect(try q.counts()[.queued] == 4)
    }

    @Test func claimsByPriorityThenAgeAndRespectsBackoffAndThreads() throws {
        let dir = TempDir()
        let clock = TestClock()
        let q = try JobQueue(path: dir.path("q.sqlite3"), clock: clock.read)
        let boot = try q.startBoot(uuid: "b1", pid: 1, version: "t")
        let low = try q.ingest(sampleManifest(key: "low", trials: 1, name: "low")).jobIDs[0]
        let high = try q.ingest(sampleManifest(key: "high", trials: 1, name: "high", priority: 5)).jobIDs[0]
        let wide = try q.ingest(sampleManifest(key: "wide", trials: 1, name: "wide", priority: 9, threads: 4)).jobIDs[0]
        // The 4-thread job does not fit in 2 threads, so it is passed over, not blocking.
        #expect(try q.claimNext(boot: boot, maxThreads: 2)?.id == high)
        #expect(try q.claimNext(boot: boot, maxThreads: 2)?.id == low)
        #expect(try q.claimNext(boot: boot, maxThreads: 2) == nil)
        let claimed = try #require(try q.claimNext(boot: boot, maxThreads: 4))
        #expect(claimed.id == wide && claimed.state == .running && claimed.attempts == 1)

        // A failure requeues with exponential backoff; the job is not runnable before it.
        let after = try q.finish(
            low, outcome: .failed(error: "worker exited with status 1", exitCode: 1, signal: nil, retryable: true),
            retryBaseMilliseconds: 10_000)
        #expect(after.state == .queued && after.failures == 1 && after.notBefore == clock.now + 10_000)
        #expect(try q.claimNext(boot: boot, maxThreads: 8) == nil)
        #expect(try q.nextWakeup() == clock.now + 10_000)
        clock.now += 10_000
        #expect(try q.claimNext(boot: boot, maxThreads: 8)?.id == low)
        let second = try q.finish(
            low, outcome: .failed(error: "again", exitCode: 1, signal: nil, retryable: true),
            retryBaseMilliseconds: 10_000)
        #expect(second.notBefore == clock.now + 20_000)
        clock.now += 20_000
        _ = try q.claimNext(boot: boot, maxThreads: 8)
        // The third failure of max_failures = 3 is final, and says so.
        let last = try q.finish(low, outcome: .failed(error: "third", exitCode: 1, signal: nil, retryable: true))
        #expect(last.state == .failed && last.failures == 3)
        #expect(last.error == "third (failed 3 of 3 times)")
        let history = try q.events(low).map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)" }
        #expect(
            history == [
                "->queued", "queued>running", "running>queued", "queued>running", "running>queued",
                "queued>running", "running>failed",
            ])
    }

    @Test func claimsOnlyJobsWhoseMemoryFits() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let boot = try q.startBoot(uuid: "b", pid: 1, version: "t")
        var big = sampleManifest(key: "big", trials: 1, name: "big", priority: 5)
        big.jobs[0].memoryBytes = 8 << 30
        let bigID = try q.ingest(big).jobIDs[0]
        var small = sampleManifest(key: "small", trials: 1, name: "small")
        small.jobs[0].memoryBytes = 1 << 30
        let smallID = try q.ingest(small).jobIDs[0]
        // 4 GiB free: the higher-priority 8 GiB job is passed over, the 1 GiB one runs.
        #expect(try q.claimNext(boot: boot, maxThreads: 8, maxMemoryBytes: 4 << 30)?.id == smallID)
        #expect(try q.claimNext(boot: boot, maxThreads: 8, maxMemoryBytes: 4 << 30) == nil)
        #expect(try q.claimNext(boot: boot, maxThreads: 8)?.id == bigID)
    }

    @Test func preemptionRequeuesWithoutCountingAFailure() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let boot = try q.startBoot(uuid: "b", pid: 1, version: "t")
        let id = try q.ingest(sampleManifest(trials: 1)).jobIDs[0]
        _ = try q.claimNext(boot: boot, maxThreads: 1)
        let job = try q.finish(id, outcome: .preempted(detail: "daemon stopping"))
        #expect(job.state == .queued && job.failures == 0 && job.exitCode == 75 && job.notBefore == 0)
    }

    @Test func guardedTransitionsRefuseTheWrongState() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let boot = try q.startBoot(uuid: "b", pid: 1, version: "t")
        let ids = try q.ingest(sampleManifest(trials: 2)).jobIDs
        try q.hold(ids[0])
        #expect(throws: StoreError.conflict(job: ids[0], expected: [.queued], found: .held)) { try q.hold(ids[0]) }
        // A held job is never claimed.
        #expect(try q.claimNext(boot: boot, maxThreads: 1)?.id == ids[1])
        try q.release(ids[0])
        #expect(try q.cancel(ids[0]) == .cancelled)
        #expect(throws: StoreError.conflict(job: ids[0], expected: [.queued, .held, .running], found: .cancelled)) {
            try q.cancel(ids[0])
        }
        // Cancelling a running job goes through `cancelling`; the worker's end then cancels it.
        #expect(try q.cancel(ids[1]) == .cancelling)
        let ended = try q.finish(
            ids[1], outcome: .failed(error: "killed by SIGTERM", exitCode: nil, signal: 15, retryable: true))
        #expect(ended.state == .cancelled && ended.failures == 0)
        try q.retry(ids[1])
        #expect(try q.job(ids[1])?.state == .queued)
        #expect(throws: StoreError.noSuchJob(999)) { try q.cancel(999) }
    }

    @Test func reconcileRequeuesTheJobsOfADeadDaemon() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let old = try q.startBoot(uuid: "old", pid: 1, version: "t")
        let ids = try q.ingest(sampleManifest(trials: 3)).jobIDs
        _ = try q.claimNext(boot: old, maxThreads: 1)
        _ = try q.claimNext(boot: old, maxThreads: 1)
        _ = try q.cancel(ids[1])
        let new = try q.startBoot(uuid: "new", pid: 2, version: "t")
        let result = try q.reconcile(currentBoot: new)
        #expect(result.requeued == [ids[0]] && result.cancelled == [ids[1]])
        #expect(try q.counts()[.queued] == 2)
        #expect(try q.events(ids[0]).last?.detail?.contains("resume from its last checkpoint") == true)
    }

    @Test func slurmJobsOfADeadDaemonAreAdoptedNotRequeued() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let old = try q.startBoot(uuid: "old", pid: 1, version: "t")
        let ids = try q.ingest(sampleManifest(trials: 4)).jobIDs
        for _ in 0..<3 { _ = try q.claimNext(boot: old, maxThreads: 1) }
        try q.setSlurmJob(ids[0], slurmJobID: "41", detail: "submitted to Slurm as job 41")
        try q.setSlurmJob(ids[1], slurmJobID: "42", detail: "submitted to Slurm as job 42")
        try q.setSlurmState(ids[1], "RUNNING")
        _ = try q.cancel(ids[1])
        // Job 3 was claimed and its sbatch never answered: adopted too, to be looked up by name.
        let new = try q.startBoot(uuid: "new", pid: 2, version: "t")
        let adopted = try q.adoptLiveJobs(boot: new, leaseMilliseconds: 1000)
        #expect(adopted.map(\.id) == [ids[0], ids[1], ids[2]] && adopted.map(\.slurmJobID) == ["41", "42", nil])
        #expect(adopted[1].state == .cancelling && adopted[1].slurmState == "RUNNING")
        let result = try q.reconcile(currentBoot: new)
        #expect(result.requeued.isEmpty && result.cancelled.isEmpty)
        #expect(try q.job(ids[0])?.state == .running && q.job(ids[0])?.attempts == 1)
        #expect(
            try q.events(ids[0]).last?.detail == "followed again by daemon boot \(new): Slurm job 41 was left running")
        #expect(try q.events(ids[2]).last?.detail?.hasSuffix("its Slurm job is looked up by name") == true)
        // Adopting again changes nothing; a new claim forgets the previous Slurm job.
        #expect(try q.adoptLiveJobs(boot: new, leaseMilliseconds: 1000).isEmpty)
        _ = try q.finish(ids[0], outcome: .preempted(detail: "stopped"))
        let again = try #require(try q.claimNext(boot: new, maxThreads: 1))
        #expect(again.id == ids[0] && again.slurmJobID == nil && again.attempts == 2)
        // A claim Slurm did not take goes back without counting an attempt...
        try q.unclaim(ids[0], detail: "not submitted")
        let back = try #require(try q.job(ids[0]))
        #expect(back.state == .queued && back.attempts == 1 && back.failures == 0)
        // ...unless its cancel arrived meanwhile.
        _ = try q.cancel(ids[2])
        try q.unclaim(ids[2], detail: "not submitted")
        #expect(try q.job(ids[2])?.state == .cancelled)
    }

    @Test func heartbeatAndMetricsAreStored() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        let boot = try q.startBoot(uuid: "b", pid: 1, version: "t")
        let id = try q.ingest(sampleManifest(trials: 1)).jobIDs[0]
        _ = try q.claimNext(boot: boot, maxThreads: 1)
        try q.heartbeat(id, progress: JobProgress(step: 25, totalSteps: 100, loss: 1.5, etaSeconds: 30))
        let job = try #require(try q.job(id))
        #expect(job.step == 25 && job.progress == 0.25 && job.loss == 1.5 && job.etaSeconds == 30)
        try q.recordMetrics(id, step: 25, values: [("evalLoss", 1.25), ("nan", .nan)])
        try q.recordMetrics(id, step: 25, values: [("evalLoss", 1.0)])
        let metrics = try q.metrics(id)
        #expect(metrics.count == 1 && metrics[0].value == 1.0)
    }

    @Test func listingsFilterByStateNameAndOwner() throws {
        let dir = TempDir()
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        _ = try q.ingest(sampleManifest(key: "a", trials: 2, name: "alpha", uid: 1))
        let b = try q.ingest(sampleManifest(key: "b", trials: 1, name: "beta", uid: 2))
        try q.hold(b.jobIDs[0])
        #expect(try q.jobs().map(\.name) == ["beta/0", "alpha/1", "alpha/0"])
        #expect(try q.jobs(JobFilter(states: [.held])).map(\.name) == ["beta/0"])
        #expect(try q.jobs(JobFilter(nameContains: "alp")).count == 2)
        #expect(try q.jobs(JobFilter(submitterUID: 2)).map(\.experiment) == ["beta"])
        #expect(try q.jobs(JobFilter(limit: 1)).count == 1)
    }

    @Test func refusesForeignAndNewerDatabases() throws {
        let dir = TempDir()
        let foreign = try Connection(path: dir.path("other.sqlite3"))
        try foreign.execute("CREATE TABLE t(x)")
        #expect(
            throws: StoreError.notQueueDatabase(
                path: dir.path("other.sqlite3"), reason: "it holds tables but no vldd application_id")
        ) {
            _ = try JobQueue(path: dir.path("other.sqlite3"))
        }
        let q = try JobQueue(path: dir.path("q.sqlite3"))
        try q.db.execute("PRAGMA user_version = 99")
        #expect(throws: StoreError.newerSchema(path: dir.path("q.sqlite3"), found: 99, supported: Schema.latestVersion))
        {
            _ = try JobQueue(path: dir.path("q.sqlite3"))
        }
    }

    @Test func parallelWritersOnSeparateConnectionsNeverSeeBusy() throws {
        // 8 threads, each with its own connection, ingest and claim concurrently while a ninth
        // holds a long read: every claim is unique and no SQLITE_BUSY escapes.
        let dir = TempDir()
        let path = dir.path("q.sqlite3")
        let setup = try JobQueue(path: path)
        let boot = try setup.startBoot(uuid: "b", pid: 1, version: "t")
        let group = DispatchGroup()
        let claimed = Locked<[Int]>([])
        let errors = Locked<[String]>([])
        for t in 0..<8 {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                do {
                    let q = try JobQueue(path: path)
                    for i in 0..<25 {
                        _ = try q.ingest(sampleManifest(key: "t\(t)-\(i)", trials: 2))
                        if let job = try q.claimNext(boot: boot, maxThreads: 1) {
                            claimed.update { $0.append(job.id) }
                        }
                    }
                } catch {
                    errors.update { $0.append("\(error)") }
                }
            }
        }
        let reader = try Connection(path: path)
        try reader.read {
            for _ in 0..<50 { _ = try reader.query("SELECT count(*) FROM jobs j JOIN job_events e ON e.job_id = j.id") }
        }
        group.wait()
        #expect(errors.value.isEmpty, "\(errors.value.prefix(3))")
        #expect(Set(claimed.value).count == claimed.value.count)
        #expect(claimed.value.count == 200)
        let counts = try setup.counts()
        #expect(counts[.queued] == 200 && counts[.running] == 200)
        #expect(try setup.db.query("PRAGMA integrity_check").first?.string("integrity_check") == "ok")
        #expect(try setup.db.query("PRAGMA foreign_key_check").isEmpty)
    }
}
