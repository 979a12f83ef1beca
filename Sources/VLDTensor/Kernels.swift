// Kernels.swift: the engine's SIMD kernels (the C target CKernels), chosen once per process.
//
// The Debian package is built for baseline x86-64, so Swift loops run at SSE width. CKernels
// compiles its element-wise kernels three times (SSE2, AVX2+FMA, AVX-512) and picks the widest
// the CPU has when the library loads; VLD_KERNELS=generic|avx2|avx512 forces one. The tests call
// every path the CPU has through `Kernels.table(_:)` and hold it to the naive reference.

import CKernels

/// The instruction-set paths of CKernels.
public enum KernelPath: Int32, CaseIterable, Sendable, CustomStringConvertible {
    case generic = 0, avx2 = 1, avx512 = 2
    public var description: String {
        switch self {
        case .generic: return "generic"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }
}

/// One path's kernels, called through its C function pointers.
public struct KernelTable: @unchecked Sendable {
    public let path: KernelPath
    let dotFn: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float
    let sumFn: @convention(c) (UnsafePointer<Float>?, Int) -> Float
    let maxFn: @convention(c) (UnsafePointer<Float>?, Int) -> Float
    let scaledExpFn: @convention(c) (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, Float, Float, Int) -> Void
    let axpyFn: @convention(c) (UnsafeMutablePointer<Float>?, Float, UnsafePointer<Float>?, Int) -> Void
    let softmaxFn: @convention(c) (UnsafeMutablePointer<Float>?, Int) -> Void
    let geluFwdFn:
        @convention(c) (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
    let geluBwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
            Int32
        ) -> Void
    let swigluBwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?,
            UnsafePointer<Float>?, Int, Int32
        ) -> Void
    let layerNormFwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
            Float, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?
        ) -> Void
    let layerNormBwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?,
            UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Float, Float, Int
        ) -> Void
    let rmsNormFwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int, Float,
            UnsafeMutablePointer<Float>?
        ) -> Void
    let rmsNormBwdFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?,
            UnsafePointer<Float>?, Float, Int
        ) -> Void
    let swigluFwdFn:
        @convention(c) (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Void
    let adamwFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?,
            UnsafeMutablePointer<Float>?, Int, Float, Float, Float, Float, Float, Float, Float
        ) -> Void
    let attnDecodeFn:
        @convention(c) (
            UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int,
            Int, Int, Float, UnsafeMutablePointer<Float>?
        ) -> Void

    init(_ t: UnsafePointer<vld_kernel_table>) {
        let k = t.pointee
        path = KernelPath(rawValue: k.path) ?? .generic
        dotFn = k.dot; sumFn = k.sum; maxFn = k.max; scaledExpFn = k.scaled_exp; axpyFn = k.axpy; softmaxFn = k.softmax
        geluFwdFn = k.gelu_fwd; geluBwdFn = k.gelu_bwd; layerNormFwdFn = k.layernorm_fwd; swigluBwdFn = k.swiglu_bwd
        layerNormBwdFn = k.layernorm_bwd; rmsNormFwdFn = k.rmsnorm_fwd; rmsNormBwdFn = k.rmsnorm_bwd;
        swigluFwdFn = k.swiglu_fwd; adamwFn = k.adamw
        attnDecodeFn = k.attn_decode
    }

    /// a[0] b[0] + ... + a[n-1] b[n-1].
    @inline(__always) public func dot(_ a: CFPtr, _ b: CFPtr, _ n: Int) -> Float { dotFn(a, b, n) }
    /// p[0] + ... + p[n-1].
    @inline(__always) public func sum(_ p: CFPtr, _ n: Int) -> Float { sumFn(p, n) }
    /// max(p[0..<n]), n >= 1.
    @inline(__always) public func max(_ p: CFPtr, _ n: Int) -> Float { maxFn(p, n) }
    /// out = exp(x scale - shift).
    @inline(__always) public func scaledExp(_ out: FPtr, _ x: CFPtr, scale: Float, shift: Float, _ n: Int) {
        scaledExpFn(out, x, scale, shift, n)
    }
    /// y += a x.
    @inline(__always) public func axpy(_ y: FPtr, _ a: Float, _ x: CFPtr, _ n: Int) { axpyFn(y, a, x, n) }
    /// In-place softmax of p[0..<n].
    @inline(__always) public func softmax(_ p: FPtr, _ n: Int) { softmaxFn(p, n) }
    /// out = gelu(inp) (tanh form); the tanh term into `tanhCache` when given.
    @inline(__always) public func geluForward(_ out: FPtr, _ inp: CFPtr, _ tanhCache: FPtr?, _ n: Int) {
        geluFwdFn(out, inp, tanhCache, n)
    }
    /// dinp += dout gelu'(inp); with `overwrite`, dinp = dout gelu'(inp).
    @inline(__always) public func geluBackward(
        _ dinp: FPtr, _ inp: CFPtr, _ tanhCache: CFPtr?, _ dout: CFPtr, _ n: Int, overwrite: Bool = false
    ) {
        geluBwdFn(dinp, inp, tanhCache, dout, n, overwrite ? 1 : 0)
    }
    /// dgate += dout up sig (1 + gate (1 - sig)), dup += dout silu(gate); = with `overwrite`.
    @inline(__always) public func swigluBackward(
        dgate: FPtr, dup: FPtr, gate: CFPtr, up: CFPtr, dout: CFPtr, _ n: Int, overwrite: Bool = false
    ) {
        swigluBwdFn(dgate, dup, gate, up, dout, n, overwrite ? 1 : 0)
    }
    /// One row of LayerNorm: out = (x - mean) rstd w + b; returns (mean, rstd).
    @inline(__always) public func layerNormRow(
        _ out: FPtr, _ x: CFPtr, _ w: CFPtr, _ b: CFPtr, _ c: Int, eps: Float
    ) -> (mean: Float, rstd: Float) {
        var m: Float = 0, r: Float = 0
        layerNormFwdFn(out, x, w, b, c, eps, &m, &r)
        return (m, r)
    }
    /// The backward of one LayerNorm row: dx, dw, db accumulate.
    @inline(__always) public func layerNormRowBackward(
        dx: FPtr, dw: FPtr, db: FPtr, dout: CFPtr, x: CFPtr, w: CFPtr, mean: Float, rstd: Float, _ c: Int
    ) {
        layerNormBwdFn(dx, dw, db, dout, x, w, mean, rstd, c)
    }
    /// One row of RMSNorm: out = x rrms w; returns rrms.
    @inline(__always) public func rmsNormRow(_ out: FPtr, _ x: CFPtr, _ w: CFPtr, _ c: Int, eps: Float) -> Float {
        var r: Float = 0
        rmsNormFwdFn(out, x, w, c, eps, &r)
        return r
    }
    /// The backward of one RMSNorm row: dx and dw accumulate.
    @inline(__always) public func rmsNormRowBackward(
        dx: FPtr, dw: FPtr, dout: CFPtr, x: CFPtr, w: CFPtr, rrms: Float, _ c: Int
    ) {
        rmsNormBwdFn(dx, dw, dout, x, w, rrms, c)
    }
    /// out = silu(gate) up.
    @inline(__always) public func swigluForward(_ out: FPtr, _ gate: CFPtr, _ up: CFPtr, _ n: Int) {
        swigluFwdFn(out, gate, up, n)
    }
    /// One AdamW update of n parameters (c1, c2: the bias corrections 1 / (1 - beta^t)).
    @inline(__always) public func adamW(
        params: FPtr, grads: CFPtr, m: FPtr, v: FPtr, n: Int, lr: Float, beta1: Float, beta2: Float, c1: Float,
        c2: Float, eps: Float, weightDecay: Float
    ) {
        adamwFn(params, grads, m, v, n, lr, beta1, beta2, c1, c2, eps, weightDecay)
    }
    /// out (hs) = softmax(scale K q) V over n cached rows `stride` floats apart; scratch holds n.
    @inline(__always) public func attentionDecode(
        out: FPtr, q: CFPtr, keys: CFPtr, values: CFPtr, n: Int, hs: Int, stride: Int, scale: Float, scratch: FPtr
    ) {
        attnDecodeFn(out, q, keys, values, n, hs, stride, scale, scratch)
    }
}

public enum Kernels {
    /// The path in use: the widest the CPU has, or the one VLD_KERNELS names.
    public static let active = KernelTable(vld_kernels())

    /// The kernels of `path`, or nil when this CPU cannot run them.
    public static func table(_ path: KernelPath) -> KernelTable? {
        vld_kernels_for(path.rawValue).map(KernelTable.init)
    }

    /// Every path this CPU can run.
    public static var available: [KernelPath] { KernelPath.allCases.filter { table($0) != nil } }
}
