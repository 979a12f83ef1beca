// LayerNorm.swift: LayerNorm (gpt2) and RMSNorm (llama), forward and backward side by side.
//
// Forward caches the per-row statistics backward needs (mean and 1/std; for RMSNorm 1/rms).
// Weight and bias gradients are reduced per thread into private rows and summed in thread order,
// so results depend on the thread count only.

#if canImport(Glibc)
    import Glibc
#endif

/// out (N,C) = (inp - mean) * rstd * weight + bias; caches mean (N), rstd (N).
public func layerNormForward(
    out: FPtr, mean: FPtr, rstd: FPtr, inp: CFPtr, weight: CFPtr, bias: CFPtr,
    N: Int, C: Int, eps: Float, pool: ThreadPool
) {
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 64) { range in
        for n in range {
            (mean[n], rstd[n]) = k.layerNormRow(out + n * C, inp + n * C, weight, bias, C, eps: eps)
        }
    }
}

/// dinp += ..., dweight += ..., dbias += ... (see llm.c's layernorm_backward for the derivation).
public func layerNormBackward(
    dinp: FPtr, dweight: FPtr, dbias: FPtr, dout: CFPtr, inp: CFPtr, weight: CFPtr,
    mean: CFPtr, rstd: CFPtr, N: Int, C: Int, pool: ThreadPool
) {
    let parts = Swift.min(pool.threads, Swift.max(1, N / 64))
    let k = Kernels.active
    let scratch = FPtr.allocate(capacity: parts * 2 * C)
    scratch.initialize(repeating: 0, count: parts * 2 * C)
    defer { scratch.deallocate() }
    pool.parallelFor(parts) { pr in
        for part in pr {
            let dw = scratch + part * 2 * C, db = dw + C
            for n in ThreadPool.chunk(N, parts: parts, index: part) {
                k.layerNormRowBackward(
                    dx: dinp + n * C, dw: dw, db: db, dout: dout + n * C, x: inp + n * C, w: weight, mean: mean[n],
                    rstd: rstd[n], C)
            }
        }
    }
    for part in 0..<parts {
        let dw = scratch + part * 2 * C, db = dw + C
        for c in 0..<C { dweight[c] += dw[c]; dbias[c] += db[c] }
    }
}

/// out (N,C) = inp * rrms * weight, rrms = 1/sqrt(mean(inp^2) + eps); caches rrms (N).
public func rmsNormForward(
    out: FPtr, rrms: FPtr, inp: CFPtr, weight: CFPtr, N: Int, C: Int, eps: Float, pool: ThreadPool
) {
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 64) { range in
        for n in range { rrms[n] = k.rmsNormRow(out + n * C, inp + n * C, weight, C, eps: eps) }
    }
}

/// dinp += r * (dnorm - norm * mean(dnorm * norm)), dweight += norm * dout.
public func rmsNormBackward(
    dinp: FPtr, dweight: FPtr, dout: CFPtr, inp: CFPtr, weight: CFPtr, rrms: CFPtr,
    N: Int, C: Int, pool: ThreadPool
) {
    let parts = Swift.min(pool.threads, Swift.max(1, N / 64))
    let k = Kernels.active
    let scratch = FPtr.allocate(capacity: parts * C)
    scratch.initialize(repeating: 0, count: parts * C)
    defer { scratch.deallocate() }
    pool.parallelFor(parts) { pr in
        for part in pr {
            let dw = scratch + part * C
            for n in ThreadPool.chunk(N, parts: parts, index: part) {
                k.rmsNormRowBackward(
                    dx: dinp + n * C, dw: dw, dout: dout + n * C, x: inp + n * C, w: weight, rrms: rrms[n], C)
            }
        }
    }
    for part in 0..<parts {
        let dw = scratch + part * C
        for c in 0..<C { dweight[c] += dw[c] }
    }
}
