// Linear.swift: out = inp * W^T + b through cblas_sgemm, forward and backward.
//
// Weights are stored (OC, C) like torch.nn.Linear; checkpoints transpose gpt2's Conv1D weights
// at the file boundary. Each thread runs single-threaded SGEMM on its own slice of rows (forward,
// input gradient) or of output channels (weight gradient), so there are no cross-thread sums.

/// out (M,OC) = inp (M,C) * weight (OC,C)^T + bias (OC).
public func linearForward(
    out: FPtr, inp: CFPtr, weight: CFPtr, bias: CFPtr?, M: Int, C: Int, OC: Int, pool: ThreadPool
) {
    // Split rows when there are many, else output channels: with few rows (decoding, M = batch)
    // the weights dominate the memory traffic, and each thread then streams only its share.
    if M >= 128 * pool.threads {
        pool.parallelFor(M, minPerThread: 16) { r in
            BLAS.sgemm(
                transA: false, transB: true, M: r.count, N: OC, K: C, A: inp + r.lowerBound * C, lda: C,
                B: weight, ldb: C, beta: 0, C: out + r.lowerBound * OC, ldc: OC)
            if let bias { addBias(out + r.lowerBound * OC, bias, rows: r.count, OC: OC, oc: 0..<OC) }
        }
    } else {
        // Enough multiply-adds per thread to pay for a wake-up (about 5 us).
        let perThread = Swift.max(16, 32_768 / Swift.max(1, M * C))
        pool.parallelFor(OC, minPerThread: perThread) { r in
            if M == 1 {
                // One row (batch-1 decoding): a matrix-vector product, without GEMM's packing.
                BLAS.sgemv(
                    M: r.count, N: C, A: weight + r.lowerBound * C, lda: C, x: inp, beta: 0, y: out + r.lowerBound)
            } else if M <= 32 && BLAS.hasSmallMatrixKernels {
                // A few rows (batched decoding, search): in slices of 16 output channels, each small
                // enough for OpenBLAS's unpacked small-matrix kernels, instead of repacking the
                // weights on every call (decode shapes of the medium model, M = 32, 1.1-1.4x).
                var o = r.lowerBound
                while o < r.upperBound {
                    let width = Swift.min(16, r.upperBound - o)
                    BLAS.sgemm(
                        transA: false, transB: true, M: M, N: width, K: C, A: inp, lda: C, B: weight + o * C, ldb: C,
                        beta: 0, C: out + o, ldc: OC)
                    o += width
                }
            } else {
                BLAS.sgemm(
                    transA: false, transB: true, M: M, N: r.count, K: C, A: inp, lda: C,
                    B: weight + r.lowerBound * C, ldb: C, beta: 0, C: out + r.lowerBound, ldc: OC)
            }
            if let bias { addBias(out, bias, rows: M, OC: OC, oc: r) }
        }
    }
}

@inline(__always) private func addBias(_ out: FPtr, _ bias: CFPtr, rows: Int, OC: Int, oc: Range<Int>) {
    for m in 0..<rows {
        let o = out + m * OC
        for j in oc { o[j] += bias[j] }
    }
}

/// dinp (M,C) += dout * W; dweight (OC,C) += dout^T * inp; dbias (OC) += column sums of dout.
/// With `overwriteInput`, dinp is written (=) instead of accumulated, which saves zero-filling a
/// scratch gradient buffer that nothing else adds into.
public func linearBackward(
    dinp: FPtr, dweight: FPtr, dbias: FPtr?, dout: CFPtr, inp: CFPtr, weight: CFPtr,
    M: Int, C: Int, OC: Int, pool: ThreadPool, overwriteInput: Bool = false
) {
    pool.run { w in
        let rows = ThreadPool.chunk(M, parts: pool.threads, index: w)
        BLAS.sgemm(
            transA: false, transB: false, M: rows.count, N: C, K: OC, A: dout + rows.lowerBound * OC, lda: OC,
            B: weight, ldb: C, beta: overwriteInput ? 0 : 1, C: dinp + rows.lowerBound * C, ldc: C)
        let ocs = ThreadPool.chunk(OC, parts: pool.threads, index: w)
        BLAS.sgemm(
            transA: true, transB: false, M: ocs.count, N: C, K: M, A: dout + ocs.lowerBound, lda: OC,
            B: inp, ldb: C, beta: 1, C: dweight + ocs.lowerBound * C, ldc: C)
        if let dbias {
            for m in 0..<M {
                let g = dout + m * OC
                for j in ocs { dbias[j] += g[j] }
            }
        }
    }
}
