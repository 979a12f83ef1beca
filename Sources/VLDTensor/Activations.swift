// Activations.swift: GELU (tanh approximation, GPT-2's "gelu_new") and SwiGLU, plus the
// residual add, each forward and backward side by side.

/// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). With `tanhCache`, also stores
/// the tanh term for `geluBackward(cached:)`, which then needs no exponential.
public func geluForward(out: FPtr, inp: CFPtr, N: Int, pool: ThreadPool, tanhCache: FPtr? = nil) {
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 16384) { r in
        k.geluForward(out + r.lowerBound, inp + r.lowerBound, tanhCache.map { $0 + r.lowerBound }, r.count)
    }
}

/// dinp += dout * gelu'(inp), with the tanh term cached by the forward pass; with `overwrite`,
/// dinp = dout * gelu'(inp) (no zero-filled buffer needed).
public func geluBackward(
    dinp: FPtr, inp: CFPtr, cached tanhCache: CFPtr, dout: CFPtr, N: Int, pool: ThreadPool, overwrite: Bool = false
) {
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 16384) { r in
        let i = r.lowerBound
        k.geluBackward(dinp + i, inp + i, tanhCache + i, dout + i, r.count, overwrite: overwrite)
    }
}

/// dinp += dout * gelu'(inp).
public func geluBackward(dinp: FPtr, inp: CFPtr, dout: CFPtr, N: Int, pool: ThreadPool) {
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 16384) { r in
        let i = r.lowerBound
        k.geluBackward(dinp + i, inp + i, nil, dout + i, r.count)
    }
}

/// out (M,F) = silu(gate) * up, where each row of inp (M,2F) is [gate (F), up (F)].
public func swigluForward(out: FPtr, inp: CFPtr, M: Int, F: Int, pool: ThreadPool) {
    pool.parallelFor(M, minPerThread: max(1, 16384 / F)) { r in
        let k = Kernels.active
        for m in r { k.swigluForward(out + m * F, inp + m * 2 * F, inp + m * 2 * F + F, F) }
    }
}

/// dinp (M,2F) += gradient of swigluForward: dgate = dout up sig (1 + gate (1 - sig)), dup = dout silu(gate);
/// with `overwrite`, dinp = the gradient.
public func swigluBackward(
    dinp: FPtr, inp: CFPtr, dout: CFPtr, M: Int, F: Int, pool: ThreadPool, overwrite: Bool = false
) {
    let k = Kernels.active
    pool.parallelFor(M, minPerThread: max(1, 16384 / F)) { r in
        for m in r {
            let g = inp + m * 2 * F, dg = dinp + m * 2 * F
            k.swigluBackward(dgate: dg, dup: dg + F, gate: g, up: g + F, dout: dout + m * F, F, overwrite: overwrite)
        }
    }
}

/// out (N) = a + b.
public func residualForward(out: FPtr, a: CFPtr, b: CFPtr, N: Int, pool: ThreadPool) {
    pool.parallelFor(N, minPerThread: 16384) { r in
        for i in r { out[i] = a[i] + b[i] }
    }
}

/// da += dout, db += dout.
public func residualBackward(da: FPtr, db: FPtr, dout: CFPtr, N: Int, pool: ThreadPool) {
    pool.parallelFor(N, minPerThread: 16384) { r in
        for i in r { da[i] += dout[i]; db[i] += dout[i] }
    }
}
