// CrossEntropy.swift: fused softmax + cross-entropy with an ignore mask.
//
// A target below zero marks a position that does not count (padding, prompt tokens). The mean is
// taken over the counted positions only.

/// probs (N,V) = softmax(logits) (probs may alias logits); losses (N) = -log p[target] (0 where
/// ignored). Returns the mean loss over counted positions and their number.
@discardableResult
public func crossEntropyForward(
    losses: FPtr, probs: FPtr, logits: CFPtr, targets: UnsafePointer<Int32>, N: Int, V: Int, pool: ThreadPool
) -> (loss: Float, count: Int) {
    pool.parallelFor(N, minPerThread: 16) { r in
        for n in r {
            let p = probs + n * V
            if UnsafePointer(p) != logits + n * V { p.update(from: logits + n * V, count: V) }
            softmaxInPlace(p, V)
            let t = Int(targets[n])
            losses[n] = t >= 0 ? -logf(max(p[t], Float.leastNormalMagnitude)) : 0
        }
    }
    var sum: Double = 0
    var count = 0
    for n in 0..<N where targets[n] >= 0 { sum += Double(losses[n]); count += 1 }
    return (count > 0 ? Float(sum / Double(count)) : 0, count)
}

/// dlogits (N,V) = (probs - onehot(target)) * scale for counted positions, 0 for ignored ones.
/// This is the root of the backward pass, so it writes rather than accumulates; dlogits may
/// alias probs. `scale` is normally 1 / count.
public func crossEntropyBackward(
    dlogits: FPtr, probs: CFPtr, targets: UnsafePointer<Int32>, scale: Float, N: Int, V: Int, pool: ThreadPool
) {
    pool.parallelFor(N, minPerThread: 16) { r in
        for n in r {
            let d = dlogits + n * V, p = probs + n * V
            let t = Int(targets[n])
            if t < 0 {
                d.update(repeating: 0, count: V)
                continue
            }
            for v in 0..<V { d[v] = p[v] * scale }
            d[t] -= scale
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
