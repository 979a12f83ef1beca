// Optimizer.swift: AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization",
// 2019), global gradient-norm clipping, and the learning-rate schedule (linear warmup, then
// cosine decay to a floor, as in nanoGPT's get_lr).

#if canImport(Glibc)
    import Glibc
#endif

/// Hyper-parameters of AdamW.
public struct AdamWConfig: Codable, Equatable, Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0.1
    public init(beta1: Float = 0.9, beta2: Float = 0.95, eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    }
}

/// One AdamW update of N parameters at step `t` (1-based, for bias correction):
/// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr (m^ / (sqrt(v^) + eps) + wd p).
/// Pass weightDecay 0 for parameters that are not decayed (norms, biases).
public func adamWUpdate(
    params: FPtr, grads: CFPtr, m: FPtr, v: FPtr, N: Int, lr: Float, t: Int,
    config: AdamWConfig, weightDecay: Float, pool: ThreadPool
) {
    let b1 = config.beta1, b2 = config.beta2, eps = config.eps
    let c1 = 1 / (1 - powf(b1, Float(t))), c2 = 1 / (1 - powf(b2, Float(t)))
    let k = Kernels.active
    pool.parallelFor(N, minPerThread: 8192) { r in
        let i = r.lowerBound
        k.adamW(
            params: params + i, grads: grads + i, m: m + i, v: v + i, n: r.count, lr: lr, beta1: b1, beta2: b2, c1: c1,
            c2: c2, eps: eps, weightDecay: weightDecay)
    }
}

/// The global L2 norm of `grads` (summed in Double per thread, combined in thread order).
public func gradNorm(_ grads: CFPtr, N: Int, pool: ThreadPool) -> Float {
    var partial = [Double](repeating: 0, count: pool.threads)
    partial.withUnsafeMutableBufferPointer { part in
        let parts = part.baseAddress!
        pool.run { w in
            // Float partial sums over blocks of 1024 (vectorisable), accumulated in Double.
            var s: Double = 0
            let r = ThreadPool.chunk(N, parts: pool.threads, index: w)
            var i = r.lowerBound
            while i < r.upperBound {
                let end = Swift.min(i + 1024, r.upperBound)
                var block: Float = 0
                for j in i..<end { block += grads[j] * grads[j] }
                s += Double(block)
                i = end
            }
            parts[w] = s
        }
    }
    return Float(partial.reduce(0, +).squareRoot())
}

/// Scales grads so that their global norm is at most maxNorm; returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ grads: FPtr, N: Int, maxNorm: Float, pool: ThreadPool) -> Float {
    let norm = gradNorm(grads, N: N, pool: pool)
    if maxNorm > 0 && norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        pool.parallelFor(N, minPerThread: 16384) { r in for i in r { grads[i] *= s } }
    }
    return norm
}

/// Learning rate at 0-based `step`: linear warmup over `warmup` steps to `peak`, then cosine
/// decay to `floor` at `total` steps, constant at `floor` afterwards.
public struct LRSchedule: Codable, Equatable, Sendable {
    public var peak: Float
    public var floor: Float
    public var warmup: Int
    public var total: Int
    public init(peak: Float, floor: Float, warmup: Int, total: Int) {
        self.peak = peak; self.floor = floor; self.warmup = warmup; self.total = total
    }

    public func lr(at step: Int) -> Float {
        if step < warmup { return peak * Float(step + 1) / Float(warmup) }
        if step >= total { return floor }
        let progress = Double(step - warmup) / Double(max(1, total - warmup))
        let cosine = 0.5 * (1 + cos(Double.pi * progress))
        return floor + Float(cosine) * (peak - floor)
    }
}
