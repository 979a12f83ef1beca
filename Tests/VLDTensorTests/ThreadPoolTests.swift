// ThreadPoolTests.swift: ThreadPool.chunk partitions, parallelFor covers 0..<n exactly once with
// the documented split, run visits every worker once, idle workers wake up again, concurrent
// callers of one pool are serialised, a fresh pool runs its first job, and a dropped pool is freed.

import Foundation
import Testing
import VLDTensor

/// Collects the ranges handed to parallelFor bodies from whichever thread runs them.
private final class RangeLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Range<Int>] = []
    func add(_ r: Range<Int>) { lock.lock(); items.append(r); lock.unlock() }
    var ranges: [Range<Int>] {
        lock.lock(); defer { lock.unlock() }; return items.sorted { $0.lowerBound < $1.lowerBound }
    }
}

@Test func chunkPartitionsEvenly() {
    for n in 0...50 {
        for parts in 1...8 {
            var next = 0
            for i in 0..<parts {
                let r = ThreadPool.chunk(n, parts: parts, index: i)
                #expect(
                    r.lowerBound == next, "chunk(\(n), parts: \(parts), index: \(i)) = \(r) starts where the last ended"
                )
                // Sizes are n/parts or one more, the larger ones first.
                #expect(r.count == n / parts + (i < n % parts ? 1 : 0), "chunk(\(n), \(parts), \(i)) size \(r.count)")
                next = r.upperBound
            }
            #expect(next == n, "chunks of \(n) into \(parts) end at n")
        }
    }
}

@Test(arguments: [1, 2, 3, 4])
func parallelForCoversEachIndexOnce(threads: Int) {
    let tp = threads <= 2 ? pool(threads) : startedPool(threads: threads)
    for n in [0, 1, 2, 3, 5, 16, 17, 100, 1001] {
        for minPerThread in [1, 4, 64] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
            counts.initialize(repeating: 0, count: max(n, 1))
            defer { counts.deallocate() }
            let log = RangeLog()
            tp.parallelFor(n, minPerThread: minPerThread) { r in
                log.add(r)
                for i in r { counts[i] += 1 }
            }
            let what = "parallelFor(\(n), minPerThread: \(minPerThread)) on \(threads) threads"
            #expect((0..<n).allSatisfy { counts[$0] == 1 }, "\(what) visits every index once")
            // The split: min(threads, n / minPerThread) (at least 1) contiguous chunks, none empty.
            let parts = n == 0 ? 0 : min(threads, max(1, n / minPerThread))
            let expected = (0..<parts).map { ThreadPool.chunk(n, parts: parts, index: $0) }
            #expect(log.ranges == expected, "\(what): ranges \(log.ranges)")
        }
    }
}

@Test(arguments: [1, 2, 3])
func runVisitsEveryWorkerOnce(threads: Int) {
    let tp = threads <= 2 ? pool(threads) : startedPool(threads: threads)
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    counts.initialize(repeating: 0, count: threads)
    defer { counts.deallocate() }
    let jobs = 300
    for j in 0..<jobs {
        tp.run { w in counts[w] += 1 }
        // Let the workers fall asleep on the condition variable now and then: they must wake again.
        if j % 100 == 99 { usleep(30_000) }
    }
    #expect((0..<threads).map { counts[$0] } == [Int](repeating: jobs, count: threads))
}

/// Several threads submitting to one pool: each job still runs whole and exactly once.
@Test func concurrentCallersAreSerialised() {
    let pool = startedPool(threads: 2)
    let n = 257, rounds = 50, callers = 4
    let totals = UnsafeMutablePointer<Int>.allocate(capacity: callers * n)
    totals.initialize(repeating: 0, count: callers * n)
    defer { totals.deallocate() }
    DispatchQueue.concurrentPerform(iterations: callers) { c in
        for _ in 0..<rounds {
            pool.parallelFor(n) { r in for i in r { totals[c * n + i] += 1 } }
        }
    }
    #expect((0..<(callers * n)).allSatisfy { totals[$0] == rounds })
}

/// A job submitted right after `init` must run. Runs in a child process (an exit test) with a
/// 3 s alarm, because the failure mode is `run` spinning forever: a worker that starts after the
/// first job was published takes that job's generation as already seen and sleeps through it.
@Test func freshPoolRunsItsFirstJob() async {
    await #expect(processExitsWith: .success) {
        alarm(3)
        for _ in 0..<50 {
            let pool = ThreadPool(threads: 3)
            pool.run { _ in }
        }
    }
}

/// Dropping the last reference to a pool runs deinit, which stops and joins its worker threads.
@Test func droppedPoolIsDeallocated() {
    weak var weakPool: ThreadPool?
    do {
        let pool = startedPool(threads: 2)
        weakPool = pool
        pool.run { _ in }
    }
    #expect(weakPool == nil, "ThreadPool was not deallocated: its worker threads keep it alive and are never stopped")
}
