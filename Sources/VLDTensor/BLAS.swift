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

    /// OpenBLAS picks its kernels once, from CPUID, when the library loads. On virtual CPUs that
    /// report an unknown model it falls back to its Prescott (SSE3) kernels, about 3x slower
    /// than what the CPU can do (measured on the 2-core development machine: 30 vs 100 GFLOP/s
    /// training `small`). The choice can only be overridden through OPENBLAS_CORETYPE before the
    /// library loads, so executables call this first: when OpenBLAS chose Prescott, the variable
    /// is unset and the CPU supports better kernels, it sets the variable and re-executes the
    /// program with the same arguments. It returns (doing nothing) in every other case.
    public static func reexecWithSupportedKernelsIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, getenv("VLD_NO_BLAS_REEXEC") == nil,
            coreName.lowercased() == "prescott", let better = supportedCoreType()
        else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv("VLD_NO_BLAS_REEXEC", "1", 1)
        let args = CommandLine.unsafeArgv
        execv("/proc/self/exe", args)
        // execv only returns on failure; carry on with the slower kernels.
    }
}
