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
    pool.parallelFor(N, minPerThread: 64) { range in
        for n in range {
            let x = inp + n * C
            let m = sum8(x, C) / Float(C)
            let o = out + n * C
            for c in 0..<C { o[c] = x[c] - m }  // centred input, scaled in place below
            let v = dot8(o, o, C)
            let r = 1 / (v / Float(C) + eps).squareRoot()
            for c in 0..<C { o[c] = o[c] * r * weight[c] + bias[c] }
            mean[n] = m
            rstd[n] = r
        }
    }
}

/// dinp += ..., dweight += ..., dbias += ... (see llm.c's layernorm_backward for the derivation).
public func layerNormBackward(
    dinp: FPtr, dweight: FPtr, dbias: FPtr, dout: CFPtr, inp: CFPtr, weight: CFPtr,
    mean: CFPtr, rstd: CFPtr, N: Int, C: Int, pool: ThreadPool
) {
    let parts = Swift.min(pool.threads, Swift.max(1, N / 64))
    let scratch = FPtr.allocate(capacity: parts * 2 * C)
    scratch.initialize(repeating: 0, count: parts * 2 * C)
    defer { scratch.deallocate() }
    pool.parallelFor(parts) { pr in
        for part in pr {
            let dw = scratch + part * 2 * C, db = dw + C
            for n in ThreadPool.chunk(N, parts: parts, index: part) {
                let x = inp + n * C, g = dout + n * C, dx = dinp + n * C
                let m = mean[n], r = rstd[n]
                var dnormMean: Float = 0, dnormNormMean: Float = 0
                for c in 0..<C {
                    let norm = (x[c] - m) * r
                    let dnorm = weight[c] * g[c]
                    dnormMean += dnorm
                    dnormNormMean += dnorm * norm
                }
                dnormMean /= Float(C)
                dnormNormMean /= Float(C)
                for c in 0..<C {
                    let norm = (x[c] - m) * r
                    let dnorm = weight[c] * g[c]
                    db[c] += g[c]
                    dw[c] += norm * g[c]
                    dx[c] += (dnorm - dnormMean - norm * dnormNormMean) * r
                }
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
    pool.parallelFor(N, minPerThread: 64) { range in
        for n in range {
            let x = inp + n * C
            let r = 1 / (dot8(x, x, C) / Float(C) + eps).squareRoot()
            let o = out + n * C
            for c in 0..<C { o[c] = x[c] * r * weight[c] }
            rrms[n] = r
        }
    }
}

/// dinp += r * (dnorm - norm * mean(dnorm * norm)), dweight += norm * dout.
public func rmsNormBackward(
    dinp: FPtr, dweight: FPtr, dout: CFPtr, inp: CFPtr, weight: CFPtr, rrms: CFPtr,
    N: Int, C: Int, pool: ThreadPool
) {
    let parts = Swift.min(pool.threads, Swift.max(1, N / 64))
    let scratch = FPtr.allocate(capacity: parts * C)
    scratch.initialize(repeating: 0, count: parts * C)
    defer { scratch.deallocate() }
    pool.parallelFor(parts) { pr in
        for part in pr {
            let dw = scratch + part * C
            for n in ThreadPool.chunk(N, parts: parts, index: part) {
                let x = inp + n * C, g = dout + n * C, dx = dinp + n * C
                let r = rrms[n]
                var dot: Float = 0
                for c in 0..<C { dot += weight[c] * g[c] * x[c] * r }
                dot /= Float(C)
                for c in 0..<C {
                    let norm = x[c] * r
                    dw[c] += norm * g[c]
                    dx[c] += r * (weight[c] * g[c] - norm * dot)
                }
            }
        }
    }
    for part in 0..<parts {
        let dw = scratch + part * C
        for c in 0..<C { dweight[c] += dw[c] }
    }
}
