// FastMath.swift: vectorised exp and tanh for the element-wise kernels.
//
// glibc's expf/tanhf are scalar; GELU, softmax and cross-entropy call them millions of times
// per training step, which dominated the step time of small models. These versions work on
// eight lanes at once. exp uses the Cephes range reduction (x = n ln2 + r, |r| <= ln2/2) and a
// degree-6 polynomial; its relative error is below 2e-7 over the float range, which the kernel
// tests bound against the libm results.

#if canImport(Glibc)
import Glibc
#endif

public typealias F8 = SIMD8<Float>

@inline(__always) public func fastExp(_ xIn: F8) -> F8 {
    let x = xIn.clamped(lowerBound: F8(repeating: -87.3), upperBound: F8(repeating: 88.3))
    // n = round(x / ln2)
    let n = (x * 1.442_695_040_888_963_4).rounded(.toNearestOrEven)
    // r = x - n*ln2, in two parts for accuracy
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_400_546_905_8e-4
    var p = F8(repeating: 1.987_569_150_0e-4)
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    p = p * r * r + r + 1
    // scale by 2^n through the exponent bits
    let ni = SIMD8<Int32>(n)
    let bits = SIMD8<UInt32>(truncatingIfNeeded: (ni &+ 127) &<< 23)
    let scale = unsafeBitCast(bits, to: F8.self)
    return p * scale
}

@inline(__always) public func fastExp(_ x: Float) -> Float { fastExp(F8(repeating: x))[0] }

/// tanh(x) = 1 - 2 / (exp(2x) + 1); saturates exactly to +-1 for |x| > 9.
@inline(__always) public func fastTanh(_ x: F8) -> F8 {
    let e = fastExp(2 * x)
    return 1 - 2 / (e + 1)
}

@inline(__always) public func fastTanh(_ x: Float) -> Float { fastTanh(F8(repeating: x))[0] }

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> F8 {
    UnsafeRawPointer(p).loadUnaligned(as: F8.self)
}

@inline(__always) func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self)
}
