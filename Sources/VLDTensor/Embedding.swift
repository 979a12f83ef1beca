// Embedding.swift: token embedding plus (for gpt2) learned absolute positions.
//
// Positions are given per token rather than assumed to be 0..T-1, so the same kernel serves
// training (pos = t), prefill and KV-cached decoding where each sequence of a batch sits at its
// own length.

public typealias FPtr = UnsafeMutablePointer<Float>
public typealias CFPtr = UnsafePointer<Float>

/// out (N,C) = wte[tokens[n]] + wpe[positions[n]] (wpe optional).
public func embeddingForward(
    out: FPtr, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
    wte: CFPtr, wpe: CFPtr?, N: Int, C: Int, pool: ThreadPool
) {
    pool.parallelFor(N, minPerThread: 256) { range in
        for n in range {
            let o = out + n * C
            let e = wte + Int(tokens[n]) * C
            if let wpe {
                let p = wpe + Int(positions[n]) * C
                for c in 0..<C { o[c] = e[c] + p[c] }
            } else {
                o.update(from: e, count: C)
            }
        }
    }
}

/// dwte[tokens[n]] += dout[n]; dwpe[positions[n]] += dout[n]. Runs serially in token order: the
/// scatter has conflicts (repeated tokens), and a fixed order keeps the sums reproducible.
public func embeddingBackward(
    dwte: FPtr, dwpe: FPtr?, dout: CFPtr, tokens: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
    N: Int, C: Int
) {
    for n in 0..<N {
        let g = dout + n * C
        let e = dwte + Int(tokens[n]) * C
        for c in 0..<C { e[c] += g[c] }
        if let dwpe {
            let p = dwpe + Int(positions[n]) * C
            for c in 0..<C { p[c] += g[c] }
        }
    }
}
