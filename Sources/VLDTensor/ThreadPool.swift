// ThreadPool.swift: a fixed set of worker threads for the engine's data-parallel loops.
//
// The caller chooses the size (one per core it may use). The caller's thread takes part as
// worker 0, so a pool of N threads starts N-1 OS threads. Work is split statically and evenly,
// which makes every reduction order (and so every floating-point result) a function of the
// thread count alone: the same thread count gives bitwise the same numbers.
//
// Workers spin for up to 200 us after each job (kernels arrive back to back during a training
// step, and between the steps of decoding the caller samples tokens alone; a futex wake costs
// tens of microseconds on a virtual machine, more than a short kernel), then sleep on a condition
// variable so an idle pool costs nothing. The caller waits for the workers by spinning too.
//
// BLAS is set to one thread per call: the pool is the only source of parallelism, so the pool
// and OpenBLAS can never oversubscribe the cores.

import CKernels
import COpenBLAS
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A fixed-size pool of threads running one data-parallel job at a time.
///
/// The workers share a `PoolState` (never the pool itself), so dropping the last reference to
/// the pool runs `deinit`, which stops and joins them.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads taking part in each job, including the caller.
    public let threads: Int
    private let state = PoolState()
    private var handles: [pthread_t] = []
    private let lock = NSLockLite()
    private var serialDepth = 0

    /// Starts `threads - 1` worker threads and sets OpenBLAS to single-threaded calls.
    public init(threads: Int) {
        require(threads >= 1, "a thread pool needs at least one thread")
        self.threads = threads
        BLAS.useSingleThreadedCalls()
        for index in 1..<max(threads, 1) {
            let box = Unmanaged.passRetained(WorkerStart(state: state, index: index))
            var handle = pthread_t()
            let rc = pthread_create(
                &handle, nil,
                { raw in
                    let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                    start.state.workerLoop(index: start.index)
                    return nil
                }, box.toOpaque())
            require(rc == 0, "pthread_create failed: \(rc)")
            handles.append(handle)
        }
    }

    deinit {
        state.stop()
        for h in handles { pthread_join(h, nil) }
    }

    /// Runs `body(worker)` once on every thread of the pool (worker in 0..<threads) and returns
    /// when all have finished. Not reentrant: a body must not call back into the same pool.
    public func run(_ body: (Int) -> Void) {
        if threads == 1 { body(0); return }
        if serialDepth > 0 {
            for w in 0..<threads { body(w) }
            return
        }
        lock.lock()
        defer { lock.unlock() }
        withoutActuallyEscaping(body) { escaping in state.post(escaping, workers: threads - 1) }
    }

    /// Runs `body` with every job of this pool executed on the caller alone, each worker's share
    /// in worker order: the same partition, so bitwise the same numbers as in parallel, without
    /// waking a thread. For work too small to pay for a fork-join (decoding a few rows of a small
    /// model); the caller must be the only user of the pool meanwhile.
    public func serially<T>(_ body: () throws -> T) rethrows -> T {
        serialDepth += 1
        defer { serialDepth -= 1 }
        return try body()
    }

    /// Splits 0..<n into `threads` contiguous, nearly equal ranges and runs `body` on each in
    /// parallel. With `n < minPerThread * 2` (too little work to be worth a wake-up) it runs
    /// `body(0..<n)` on the caller.
    public func parallelFor(_ n: Int, minPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        if n <= 0 { return }
        let useThreads = Swift.min(threads, Swift.max(1, n / Swift.max(minPerThread, 1)))
        if useThreads == 1 { body(0..<n); return }
        run { w in
            if w < useThreads { body(ThreadPool.chunk(n, parts: useThreads, index: w)) }
        }
    }

    /// The `index`-th of `parts` contiguous ranges covering 0..<n.
    @inline(__always) public static func chunk(_ n: Int, parts: Int, index: Int) -> Range<Int> {
        let base = n / parts, extra = n % parts
        let lo = index * base + Swift.min(index, extra)
        return lo..<(lo + base + (index < extra ? 1 : 0))
    }
}

/// What the caller and the workers share: the job, a generation counter that announces each
/// job, the count of workers still busy with it, and a condition variable for sleeping workers.
private final class PoolState: @unchecked Sendable {
    let generation = Atomic<Int>(0)
    let pending = Atomic<Int>(0)
    let sleepers = Atomic<Int>(0)
    let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    var job: ((Int) -> Void)?
    var stopping = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(cond)
        mutex.deallocate()
        cond.deallocate()
    }

    private func announce() {
        pthread_mutex_lock(mutex)
        generation.add(1, ordering: .releasing)
        if sleepers.load(ordering: .relaxed) > 0 || stopping { pthread_cond_broadcast(cond) }
        pthread_mutex_unlock(mutex)
    }

    /// Runs `job` on the caller (as worker 0) and on every worker; returns when all are done.
    func post(_ body: @escaping (Int) -> Void, workers: Int) {
        job = body
        pending.store(workers, ordering: .relaxed)
        announce()
        body(0)
        var spins = 0
        var since = 0.0
        while pending.load(ordering: .acquiring) != 0 {
            vld_cpu_relax()
            spins += 1
            // Yield only when a worker is late by a millisecond (it was descheduled): until then
            // a yield is a system call per turn for nothing.
            if spins & 255 == 0 {
                let now = monotonicSeconds()
                if since == 0 { since = now } else if now - since > 1e-3 { sched_yield() }
            }
        }
        job = nil
    }

    func stop() {
        stopping = true
        announce()
    }

    /// A worker starts from generation 0, so a job posted before its thread first ran is not
    /// mistaken for one it has already seen.
    func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var idleSince = 0.0
            var g = generation.load(ordering: .acquiring)
            while g == seen {
                vld_cpu_relax()
                spins += 1
                if spins & 255 == 0 {
                    let now = monotonicSeconds()
                    if idleSince == 0 { idleSince = now }
                    if now - idleSince > PoolState.spinSeconds {
                        pthread_mutex_lock(mutex)
                        sleepers.add(1, ordering: .relaxed)
                        while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(cond, mutex) }
                        sleepers.subtract(1, ordering: .relaxed)
                        pthread_mutex_unlock(mutex)
                        idleSince = 0
                    }
                }
                g = generation.load(ordering: .acquiring)
            }
            seen = g
            if stopping { return }
            job?(index)
            pending.subtract(1, ordering: .releasing)
        }
    }
}

extension PoolState {
    /// How long an idle worker spins before it sleeps.
    static let spinSeconds = 200e-6
}

/// Seconds on the monotonic clock (a vDSO call, no system call): the pool's spin timer and the
/// benchmarks' stopwatch.
@inline(__always) public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

private final class WorkerStart {
    let state: PoolState
    let index: Int
    init(state: PoolState, index: Int) { self.state = state; self.index = index }
}

/// A pthread mutex owned by one object (keeps `run` from being entered twice at once).
final class NSLockLite: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func lock() { pthread_mutex_lock(&m) }
    func unlock() { pthread_mutex_unlock(&m) }
}
