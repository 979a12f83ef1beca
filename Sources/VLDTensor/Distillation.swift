// Distillation.swift: per-token distillation losses between a student's and a teacher's logits,
// fused with their gradient with respect to the student's logits (specs/phase.md (d)).
//
// For each counted position (target >= 0; the others are masked and get 0 loss and 0 gradient),
// with p = softmax(z_s), q = softmax(z_t), p^T = softmax(z_s / T), q^T = softmax(z_t / T):
//
//   ce                 -log p[y]                                   dz = p - onehot(y)
//   kdForward(T, λ)    (1-λ) ce + λ T² KL(q^T ‖ p^T)               dz = (1-λ)(p - onehot(y)) + λ T (p^T - q^T)
//                      (Hinton, Vinyals and Dean 2015, "Distilling the Knowledge in a Neural Network": the T²
//                      keeps the soft term's gradient on the scale of the hard one)
//   kdReverse(T, λ)    (1-λ) ce + λ T² KL(p^T ‖ q^T)               dz = (1-λ)(p - onehot(y)) + λ T p^T (a - KL),
//                      a = log p^T - log q^T (MiniLLM, Gu et al. 2024)
//   jsd(β)             β KL(q ‖ M) + (1-β) KL(p ‖ M), M = β q + (1-β) p   dz = p (g - <p, g>), g = (1-β) log(p / M)
//                      (the generalised JSD of Agarwal et al. 2024, GKD). As in TRL's implementation, β = 0 is
//                      KL(q ‖ p) and β = 1 is KL(p ‖ q) exactly; the mixture formula itself is 0 at both ends.
//   topK(K)            -Σ_{i∈S} q̃_i log p̃_i over the teacher's K most likely tokens S (ties to the lower id),
//                      q̃ and p̃ renormalised over S                dz_i = p̃_i - q̃_i on S, 0 elsewhere
//   sampledK(K, seed)  topK's loss over a sampled support: K token ids drawn with replacement from q (Gemma 3
//                      Team 2025: "we sample 256 logits per token, weighted by teacher probabilities"), S the
//                      distinct ones; the teacher's probabilities renormalised over S are the target. The draw
//                      is a function of (seed, row) (`sampledSupport`); a trainer passes a new seed each step.
//   logitMSE           ‖z̄_s - z̄_t‖², z̄ = z - mean(z) (the high-temperature limit of KD)   dz = 2 (z̄_s - z̄_t)
//
// The mean is over counted positions; `Reference.distillation` is the Double ground truth.

#if canImport(Glibc)
    import Glibc
#endif

public enum DistillationLoss: Equatable, Sendable, CustomStringConvertible {
    case ce
    case kdForward(temperature: Double, lambda: Double)
    case kdReverse(temperature: Double, lambda: Double)
    case jsd(beta: Double)
    case topK(Int)
    case sampledK(Int, seed: UInt64)
    case logitMSE

    public var description: String {
        switch self {
        case .ce: return "ce"
        case let .kdForward(t, l): return "kd_forward(T=\(t), lambda=\(l))"
        case let .kdReverse(t, l): return "kd_reverse(T=\(t), lambda=\(l))"
        case let .jsd(b): return "jsd(beta=\(b))"
        case let .topK(k): return "topk(K=\(k))"
        case let .sampledK(k, _): return "sampled(K=\(k))"
        case .logitMSE: return "logit_mse"
        }
    }
}

/// The teacher's K most likely token ids of one row, most likely first, ties to the lower id.
@inlinable public func topKIndices(_ row: UnsafePointer<Float>, _ V: Int, _ K: Int) -> [Int] {
    let k = Swift.min(Swift.max(K, 1), V)
    var best: [Int] = []
    best.reserveCapacity(k + 1)
    for v in 0..<V {
        if best.count == k && row[v] <= row[best[k - 1]] { continue }
        var i = best.count
        while i > 0 && row[best[i - 1]] < row[v] { i -= 1 }
        best.insert(v, at: i)
        if best.count > k { best.removeLast() }
    }
    return best
}

/// The distinct token ids of K draws (with replacement) from softmax(row), ascending: the support
/// of `sampledK` for row `n` under `seed`.
public func sampledSupport(_ row: UnsafePointer<Float>, _ V: Int, _ K: Int, seed: UInt64, row n: Int) -> [Int] {
    var m = -Float.infinity
    for v in 0..<V { m = Swift.max(m, row[v]) }
    var cumulative = [Double](repeating: 0, count: V)
    var total = 0.0
    for v in 0..<V {
        total += exp(Double(row[v] - m))
        cumulative[v] = total
    }
    var rng = SeededRNG(seed: seed ^ (UInt64(n) &+ 1) &* 0x9E37_79B9_7F4A_7C15)
    var picked = [Bool](repeating: false, count: V)
    for _ in 0..<Swift.max(K, 1) {
        let u = rng.nextDouble() * total
        var lo = 0, hi = V - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        picked[lo] = true
    }
    return (0..<V).filter { picked[$0] }
}

/// log softmax(x / T) of a row into `out`.
@inline(__always) private func logSoftmax(_ x: UnsafePointer<Float>, _ V: Int, _ T: Float, _ out: FPtr) {
    var m = -Float.infinity
    for v in 0..<V { m = Swift.max(m, x[v] / T) }
    var s: Float = 0
    for v in 0..<V { s += expf(x[v] / T - m) }
    let lse = m + logf(s)
    for v in 0..<V { out[v] = x[v] / T - lse }
}

/// Losses (N, 0 where masked) and, if `dlogits` is given, the gradient of the mean loss with respect
/// to the student's logits (N, V; written, not accumulated; it may alias `student`, so a training
/// step can turn its logits into their gradient in place). Returns the mean over counted positions
/// and their number.
@discardableResult
public func distillationForwardBackward(
    _ kind: DistillationLoss, losses: FPtr, dlogits: FPtr?, student: CFPtr, teacher: CFPtr,
    targets: UnsafePointer<Int32>, N: Int, V: Int, pool: ThreadPool
) -> (loss: Float, count: Int) {
    var count = 0
    for n in 0..<N where targets[n] >= 0 { count += 1 }
    let scale: Float = count > 0 ? 1 / Float(count) : 0
    pool.parallelFor(N, minPerThread: 8) { r in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * V)
        defer { scratch.deallocate() }
        let lp = scratch, lq = scratch + V, lpT = scratch + 2 * V, lqT = scratch + 3 * V
        for n in r {
            let zs = student + n * V, zt = teacher + n * V
            let y = Int(targets[n])
            let d = dlogits.map { $0 + n * V }
            guard y >= 0 else {
                losses[n] = 0
                d?.update(repeating: 0, count: V)
                continue
            }
            logSoftmax(zs, V, 1, lp)
            var loss: Float = 0
            switch kind {
            case .ce:
                loss = -lp[y]
                if let d {
                    for v in 0..<V { d[v] = expf(lp[v]) * scale }
                    d[y] -= scale
                }
            case let .kdForward(t, l), let .kdReverse(t, l):
                let T = Float(t), lambda = Float(l)
                let forward: Bool
                if case .kdForward = kind { forward = true } else { forward = false }
                logSoftmax(zs, V, T, lpT)
                logSoftmax(zt, V, T, lqT)
                var kl: Float = 0
                for v in 0..<V {
                    kl += forward ? expf(lqT[v]) * (lqT[v] - lpT[v]) : expf(lpT[v]) * (lpT[v] - lqT[v])
                }
                loss = (1 - lambda) * -lp[y] + lambda * T * T * kl
                if let d {
                    for v in 0..<V {
                        let hard = (1 - lambda) * (expf(lp[v]) - (v == y ? 1 : 0))
                        let pT = expf(lpT[v])
                        let soft = forward ? lambda * T * (pT - expf(lqT[v])) : lambda * T * pT * (lpT[v] - lqT[v] - kl)
                        d[v] = (hard + soft) * scale
                    }
                }
            case let .jsd(b):
                let beta = Float(b)
                logSoftmax(zt, V, 1, lq)
                if beta == 0 || beta == 1 {
                    // KL(q ‖ p) at β = 0, KL(p ‖ q) at β = 1 (TRL's endpoints).
                    var kl: Float = 0
                    for v in 0..<V { kl += beta == 0 ? expf(lq[v]) * (lq[v] - lp[v]) : expf(lp[v]) * (lp[v] - lq[v]) }
                    loss = kl
                    if let d {
                        for v in 0..<V {
                            let p = expf(lp[v])
                            d[v] = (beta == 0 ? p - expf(lq[v]) : p * (lp[v] - lq[v] - kl)) * scale
                        }
                    }
                } else {
                    // log M = logaddexp(log β + log q, log(1-β) + log p); lpT holds log M, lqT holds g.
                    var mean: Float = 0
                    for v in 0..<V {
                        let a = logf(beta) + lq[v], c = logf(1 - beta) + lp[v]
                        let hi = Swift.max(a, c)
                        let logM = hi + logf(expf(a - hi) + expf(c - hi))
                        lpT[v] = logM
                        let q = expf(lq[v]), p = expf(lp[v])
                        loss += beta * q * (lq[v] - logM) + (1 - beta) * p * (lp[v] - logM)
                        lqT[v] = (1 - beta) * (lp[v] - logM)
                        mean += p * lqT[v]
                    }
                    if let d { for v in 0..<V { d[v] = expf(lp[v]) * (lqT[v] - mean) * scale } }
                }
            case .topK, .sampledK:
                let support: [Int]
                if case let .sampledK(k, seed) = kind {
                    support = sampledSupport(zt, V, k, seed: seed, row: n)
                } else if case let .topK(k) = kind {
                    support = topKIndices(zt, V, k)
                } else {
                    support = []
                }
                var mt = -Float.infinity, ms = -Float.infinity
                for i in support {
                    mt = Swift.max(mt, zt[i])
                    ms = Swift.max(ms, zs[i])
                }
                var st: Float = 0, ss: Float = 0
                for i in support {
                    st += expf(zt[i] - mt)
                    ss += expf(zs[i] - ms)
                }
                let lseT = mt + logf(st), lseS = ms + logf(ss)
                // Gradient into scratch first: dlogits may alias the student's logits.
                for (j, i) in support.enumerated() {
                    let q = expf(zt[i] - lseT), logp = zs[i] - lseS
                    loss -= q * logp
                    lp[j] = (expf(logp) - q) * scale
                }
                if let d {
                    d.update(repeating: 0, count: V)
                    for (j, i) in support.enumerated() { d[i] = lp[j] }
                }
            case .logitMSE:
                var ms: Float = 0, mt: Float = 0
                for v in 0..<V {
                    ms += zs[v]
                    mt += zt[v]
                }
                ms /= Float(V)
                mt /= Float(V)
                for v in 0..<V {
                    let diff = (zs[v] - ms) - (zt[v] - mt)
                    loss += diff * diff
                    d?[v] = 2 * diff * scale
                }
            }
            losses[n] = loss
        }
    }
    var sum: Double = 0
    for n in 0..<N where targets[n] >= 0 { sum += Double(losses[n]) }
    return (count > 0 ? Float(sum / Double(count)) : 0, count)
}
