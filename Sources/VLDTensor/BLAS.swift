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

    /// The OpenBLAS build string (core type, threading model), for `vldctl doctor` and benchmarks.
    public static var configuration: String { String(cString: openblas_get_config()) }

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
