// BLAS.swift: the only place vld calls OpenBLAS.
//
// Row-major single-precision GEMM, C = alpha * op(A) * op(B) + beta * C, with explicit leading
// dimensions so that callers can address strided sub-matrices (one attention head inside a
// fused QKV row, one slice of rows for one thread) without copying.

import COpenBLAS

public enum BLAS {
    /// Makes each BLAS call single-threaded. vld parallelises around BLAS with its own pool
    /// (see ThreadPool), so BLAS threads would only oversubscribe the cores.
    public static func useSingleThreadedCalls() { openblas_set_num_threads(1) }

    /// Lets OpenBLAS thread each call over `n` threads (only `vld-bench --sgemm` does, to measure
    /// the library at its best; it restores single-threaded calls afterwards).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C, all row-major.
    /// `transA`: A is stored (K,M) and used transposed; likewise `transB` for B stored (N,K).
    @inline(__always)
    public static func sgemm(
        transA: Bool, transB: Bool, M: Int, N: Int, K: Int,
        alpha: Float = 1, A: UnsafePointer<Float>, lda: Int,
        B: UnsafePointer<Float>, ldb: Int,
        beta: Float, C: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if M == 0 || N == 0 { return }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(M), Int32(N), Int32(K), alpha, A, Int32(lda), B, Int32(ldb), beta, C, Int32(ldc))
    }
}

extension BLAS {
    /// y (M) = alpha * A (M,N) x (N) + beta * y, A row-major with leading dimension lda.
    @inline(__always)
    public static func sgemv(
        M: Int, N: Int, alpha: Float = 1, A: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>, beta: Float,
        y: UnsafeMutablePointer<Float>
    ) {
        if M == 0 { return }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(M), Int32(N), alpha, A, Int32(lda), x, 1, beta, y, 1)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

extension BLAS {
    /// The kernel family OpenBLAS chose at load time (e.g. "Haswell", "SkylakeX", "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// The OPENBLAS_CORETYPE this CPU supports, from the flags in /proc/cpuinfo: SkylakeX with
    /// AVX-512, Haswell with AVX2 and FMA, nil otherwise.
    public static func supportedCoreType() -> String? {
        guard let fp = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(fp) }
        var line: UnsafeMutablePointer<CChar>?
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, fp) > 0 {
            let text = String(cString: line!)
            guard text.hasPrefix("flags") else { continue }
            let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
            if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
            return nil
        }
        return nil
    }

    /// How wide the vectors of an OpenBLAS kernel family are: 2 for the AVX-512 families, 1 for
    /// the AVX2+FMA ones, 0 for everything older or unknown.
    public static func vectorLevel(ofCore name: String) -> Int {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 2
        case "haswell", "zen", "excavator": return 1
        default: return 0
        }
    }

    /// Whether OpenBLAS has unpacked kernels for small products here: its AVX-512 families do
    /// (0.3.21), and use them when a call is small enough (measured: M <= 32 rows against 16
    /// weight rows of up to 1,024 columns ran at 166-210 GFLOP/s on one core of an AMD EPYC with
    /// AVX-512, the same product in one call at 120-150).
    public static let hasSmallMatrixKernels = vectorLevel(ofCore: coreName) == 2

    /// The OPENBLAS_CORETYPE to re-execute with, or nil when OpenBLAS's own choice is as wide as
    /// the CPU allows. OpenBLAS picks its kernels once, from CPUID, when the library loads; on
    /// virtual CPUs that report an unknown model it falls back to its Prescott (SSE3) kernels,
    /// which ran `small` training 3x slower than Haswell's on a virtual Xeon.
    public static func betterCoreType(chosen: String, supported: String?) -> String? {
        guard let supported, vectorLevel(ofCore: supported) > vectorLevel(ofCore: chosen) else { return nil }
        return supported
    }

    /// The environment OpenBLAS should have been loaded with, or nil when it was: the kernel family
    /// (`betterCoreType`), and OPENBLAS_NUM_THREADS=1. OpenBLAS starts its own threads when it
    /// loads, one per core, and an idle one spins calling sched_yield for about 0.1 s after each
    /// wake; vld never gives them work (its pool calls single-threaded BLAS), but while they spin
    /// they take a core from the pool: batch-1 sampling of `tiny` ran at 13k tokens/s instead of
    /// 130k in the first tenth of a second of a process (vld-bench, 2 threads, 2026-12-07).
    /// OpenBLAS still starts threads when asked later (`vld-bench --sgemm`). Variables already set
    /// are the user's choice and are kept.
    public static func preferredEnvironment(
        chosenCore: String, supportedCore: String?, environment: [String: String]
    ) -> [String: String]? {
        var wanted: [String: String] = [:]
        if environment["OPENBLAS_CORETYPE"] == nil,
            let better = betterCoreType(chosen: chosenCore, supported: supportedCore)
        {
            wanted["OPENBLAS_CORETYPE"] = better
        }
        if environment["OPENBLAS_NUM_THREADS"] == nil { wanted["OPENBLAS_NUM_THREADS"] = "1" }
        return wanted.isEmpty ? nil : wanted
    }

    /// Both can only be set before the library loads, so executables call this first: when
    /// `preferredEnvironment` asks for a change, it sets the variables and re-executes the
    /// program once with the same arguments. It returns (doing nothing) in every other case;
    /// VLD_NO_BLAS_REEXEC=1 turns it off.
    public static func reexecWithSupportedKernelsIfNeeded() {
        guard getenv("VLD_NO_BLAS_REEXEC") == nil,
            let wanted = preferredEnvironment(
                chosenCore: coreName, supportedCore: supportedCoreType(),
                environment: ["OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"].reduce(into: [:]) { env, key in
                    if let v = getenv(key) { env[key] = String(cString: v) }
                })
        else { return }
        for (key, value) in wanted { setenv(key, value, 1) }
        setenv("VLD_NO_BLAS_REEXEC", "1", 1)
        let args = CommandLine.unsafeArgv
        execv("/proc/self/exe", args)
        // execv only returns on failure; carry on with the slower kernels.
    }
}
