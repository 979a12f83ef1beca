// RoPE.swift: rotary position embeddings, rotate-half convention (Hugging Face Llama), applied
// in place to the query and key heads of a fused qkv buffer.
//
// For each head vector x of size HS and i < HS/2, with angle = pos * theta^(-2i/HS):
//   x[i]        <- x[i] cos - x[i+HS/2] sin
//   x[i+HS/2]   <- x[i+HS/2] cos + x[i] sin
// The rotation is orthogonal, so the backward pass applies the inverse rotation to the gradient.

#if canImport(Glibc)
    import Glibc
#endif

/// Precomputed cos/sin tables, (positions, HS/2) each.
public struct RopeTable {
    public let cos: [Float]
    public let sin: [Float]
    public let half: Int
    public let positions: Int

    /// Inverse frequencies and angles are computed as Hugging Face does (float32 inv_freq, angle
    /// = pos * inv_freq in float32), so logits agree with LlamaForCausalLM to float rounding.
    public init(headSize: Int, positions: Int, theta: Double) {
        half = headSize / 2
        self.positions = positions
        var c = [Float](repeating: 0, count: positions * half), s = c
        for i in 0..<half {
            let invFreq = Float(1.0 / Glibc.pow(theta, Double(2 * i) / Double(headSize)))
            for p in 0..<positions {
                let angle = Float(p) * invFreq
                c[p * half + i] = Glibc.cosf(angle)
                s[p * half + i] = Glibc.sinf(angle)
            }
        }
        cos = c
        sin = s
    }
}

/// Rotates the NH query heads and KVH key heads of each token of qkv (N, (NH+2KVH)HS) at the
/// token's position. With `inverse`, applies the transpose rotation (the backward pass).
public func ropeApply(
    qkv: FPtr, positions: UnsafePointer<Int32>, table: RopeTable, N: Int, NH: Int, KVH: Int, HS: Int,
    inverse: Bool, pool: ThreadPool
) {
    let QKV = (NH + 2 * KVH) * HS, half = HS / 2
    let sign: Float = inverse ? -1 : 1
    table.cos.withUnsafeBufferPointer { cosT in
        table.sin.withUnsafeBufferPointer { sinT in
            pool.parallelFor(N, minPerThread: 64) { r in
                for n in r {
                    let pos = Int(positions[n])
                    let cs = cosT.baseAddress! + pos * half, sn = sinT.baseAddress! + pos * half
                    for head in 0..<(NH + KVH) {
                        let x = qkv + n * QKV + head * HS
                        for i in 0..<half {
                            let a = x[i], b = x[i + half], c = cs[i], s = sign * sn[i]
                            x[i] = a * c - b * s
                            x[i + half] = b * c + a * s
                        }
                    }
                }
            }
        }
    }
}
