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
