// Activations.swift: GELU (tanh approximation, GPT-2's "gelu_new") and SwiGLU, plus the
// residual add, each forward and backward side by side.

private let geluScale: Float = 0.797_884_560_802_865_4  // sqrt(2/pi)

/// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
public func geluForward(out: FPtr, inp: CFPtr, N: Int, pool: ThreadPool) {
    pool.parallelFor(N / 8, minPerThread: 2048) { r in
        for i8 in r {
            let x = load8(inp + i8 * 8)
            let x3: F8 = x * x * x
            let u: F8 = F8(repeating: geluScale) * (x + F8(repeating: 0.044715) * x3)
            let y: F8 = F8(repeating: 0.5) * x * (F8(repeating: 1) + fastTanh(u))
            store8(y, out + i8 * 8)
        }
    }
    for i in (N / 8 * 8)..<N {
        let x = inp[i]
        out[i] = 0.5 * x * (1 + fastTanh(geluScale * (x + 0.044715 * x * x * x)))
    }
}

/// dinp += dout * gelu'(inp).
public func geluBackward(dinp: FPtr, inp: CFPtr, dout: CFPtr, N: Int, pool: ThreadPool) {
    @inline(__always) func grad(_ x: F8) -> F8 {
        let half = F8(repeating: 0.5), one = F8(repeating: 1)
        let x2: F8 = x * x
        let inner: F8 = x + F8(repeating: 0.044715) * x2 * x
        let t: F8 = fastTanh(F8(repeating: geluScale) * inner)
        let sech2: F8 = one - t * t
        let dinner: F8 = F8(repeating: geluScale) * (one + F8(repeating: 3 * 0.044715) * x2)
        let left: F8 = half * (one + t)
        return left + half * x * sech2 * dinner
    }
    pool.parallelFor(N / 8, minPerThread: 2048) { r in
        for i8 in r {
            let i = i8 * 8
            store8(load8(dinp + i) + load8(dout + i) * grad(load8(inp + i)), dinp + i)
        }
    }
    for i in (N / 8 * 8)..<N { dinp[i] += dout[i] * grad(F8(repeating: inp[i]))[0] }
}

/// out (M,F) = silu(gate) * up, where each row of inp (M,2F) is [gate (F), up (F)].
public func swigluForward(out: FPtr, inp: CFPtr, M: Int, F: Int, pool: ThreadPool) {
    pool.parallelFor(M, minPerThread: 8) { r in
        for m in r {
            let g = inp + m * 2 * F, u = g + F, o = out + m * F
            var i = 0
            while i + 8 <= F {
                let gv = load8(g + i)
                let sig = 1 / (1 + fastExp(-gv))
                store8(gv * sig * load8(u + i), o + i)
                i += 8
            }
            while i < F {
                let sig = 1 / (1 + fastExp(-g[i]))
                o[i] = g[i] * sig * u[i]
                i += 1
            }
        }
    }
}

/// dinp (M,2F) += gradient of swigluForward: dgate = dout up sig (1 + gate (1 - sig)), dup = dout silu(gate).
public func swigluBackward(dinp: FPtr, inp: CFPtr, dout: CFPtr, M: Int, F: Int, pool: ThreadPool) {
    pool.parallelFor(M, minPerThread: 8) { r in
        for m in r {
            let g = inp + m * 2 * F, u = g + F, dg = dinp + m * 2 * F, du = dg + F, d = dout + m * F
            for i in 0..<F {
                let sig = 1 / (1 + fastExp(-g[i]))
                dg[i] += d[i] * u[i] * sig * (1 + g[i] * (1 - sig))
                du[i] += d[i] * g[i] * sig
            }
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
