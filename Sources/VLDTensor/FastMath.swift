// FastMath.swift: exp and tanh for the element-wise kernels.
//
// glibc's expf/tanhf are opaque calls; GELU, SwiGLU, softmax and cross-entropy call them millions
// of times per training step, which dominated the step time of small models. These versions are
// plain arithmetic and bit casts (no calls, no branches), so LLVM vectorises the loops that use
// them. exp uses the Cephes range reduction (x = n ln2 + r, |r| <= ln2/2, n found with the
// 1.5*2^23 rounding trick) and a degree-6 polynomial; relative error is below 3e-7 (tested
// against libm in VLDTensorTests).

/// e^x, clamped to the normal float range (e^-87.3 .. e^88.3).
@inline(__always) public func fastExp(_ xIn: Float) -> Float {
    var x = xIn < -87.3 ? -87.3 : xIn
    x = x > 88.3 ? 88.3 : x
    let magic: Float = 12_582_912  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    let t = x * 1.442_695_040_888_963_4 + magic
    let n = t - magic
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_400_546_905_8e-4
    var p: Float = 1.987_569_150_0e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * r * r + r + 1
    let ni = t.bitPattern &- magic.bitPattern  // n as a two's complement integer
    let scale = Float(bitPattern: (ni &+ 127) &<< 23)
    return p * scale
}

/// tanh(x) = 1 - 2 / (e^{2x} + 1); saturates to +-1.
@inline(__always) public func fastTanh(_ x: Float) -> Float {
    1 - 2 / (fastExp(2 * x) + 1)
}

/// Logistic sigmoid 1 / (1 + e^-x).
@inline(__always) public func fastSigmoid(_ x: Float) -> Float {
    1 / (1 + fastExp(-x))
}

// Reductions with eight independent accumulators. A single running sum is a serial chain of
// dependent additions that the compiler may not reorder (float addition is not associative), so
// it runs at one element per add latency; eight partial sums let it vectorise. The summation
// order is fixed, so results stay reproducible.

/// p[0] + ... + p[n-1].
@inline(__always) public func sum8(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0, s4: Float = 0, s5: Float = 0, s6: Float = 0,
        s7: Float = 0
    var j = 0
    while j + 8 <= n {
        s0 += p[j]; s1 += p[j + 1]; s2 += p[j + 2]; s3 += p[j + 3]
        s4 += p[j + 4]; s5 += p[j + 5]; s6 += p[j + 6]; s7 += p[j + 7]
        j += 8
    }
    var s = ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
    while j < n { s += p[j]; j += 1 }
    return s
}

/// a[0] b[0] + ... + a[n-1] b[n-1].
@inline(__always) public func dot8(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0, s4: Float = 0, s5: Float = 0, s6: Float = 0,
        s7: Float = 0
    var j = 0
    while j + 8 <= n {
        s0 += a[j] * b[j]; s1 += a[j + 1] * b[j + 1]; s2 += a[j + 2] * b[j + 2]; s3 += a[j + 3] * b[j + 3]
        s4 += a[j + 4] * b[j + 4]; s5 += a[j + 5] * b[j + 5]; s6 += a[j + 6] * b[j + 6]; s7 += a[j + 7] * b[j + 7]
        j += 8
    }
    var s = ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7))
    while j < n { s += a[j] * b[j]; j += 1 }
    return s
}

/// max(p[0..<n]) (n >= 1; NaNs are not propagated).
@inline(__always) public func max8(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = p[0], m1 = p[0], m2 = p[0], m3 = p[0]
    var j = 0
    while j + 4 <= n {
        m0 = p[j] > m0 ? p[j] : m0; m1 = p[j + 1] > m1 ? p[j + 1] : m1
        m2 = p[j + 2] > m2 ? p[j + 2] : m2; m3 = p[j + 3] > m3 ? p[j + 3] : m3
        j += 4
    }
    var m = Swift.max(Swift.max(m0, m1), Swift.max(m2, m3))
    while j < n { m = p[j] > m ? p[j] : m; j += 1 }
    return m
}
