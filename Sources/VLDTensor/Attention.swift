// Attention.swift: causal multi-head attention with grouped-query heads, forward and backward.
//
// qkv (B,T,QKV) holds, per token, NH query heads, then KVH key heads, then KVH value heads, each
// of HS floats (QKV = (NH + 2 KVH) HS); query head h reads key/value head h / (NH / KVH). The
// score and value products run as per-head SGEMMs on strided views of qkv (lda = QKV), so no head
// is ever copied out. The full T x T score block is computed and the upper triangle masked: on
// CPU the BLAS speed is worth more than the skipped half.
//
// Forward caches the attention probabilities att (B,NH,T,T); backward uses them as they are.
//
// Packed rows: with `starts` (B*T, the first position of each token's document in its row),
// token t attends to starts[t]...t only, so several documents share a row without seeing one
// another (a block-diagonal causal mask). The probabilities outside a token's document are
// exactly 0, which is all backward needs: its dS = P * (dP - rowsum(P dP)) is then 0 there too.

#if canImport(Glibc)
    import Glibc
#endif

/// Numerically stable in-place softmax of p[0..<n].
@inline(__always) public func softmaxInPlace(_ p: FPtr, _ n: Int) { Kernels.active.softmax(p, n) }

/// out (B,T,NH*HS) = softmax(mask(Q K^T / sqrt(HS))) V; caches att (B,NH,T,T). `starts` (B*T),
/// when given, limits each token to its own document (see the header); nil is plain causal.
public func attentionForward(
    out: FPtr, att: FPtr, qkv: CFPtr, B: Int, T: Int, NH: Int, KVH: Int, HS: Int, pool: ThreadPool,
    starts: UnsafePointer<Int32>? = nil
) {
    let QKV = (NH + 2 * KVH) * HS, C = NH * HS, group = NH / KVH
    let scale = 1 / Float(HS).squareRoot()
    pool.parallelFor(B * NH) { r in
        for item in r {
            let b = item / NH, h = item % NH, kvh = h / group
            let base = qkv + b * T * QKV
            let q = base + h * HS, k = base + (NH + kvh) * HS, v = base + (NH + KVH + kvh) * HS
            let a = att + item * T * T
            BLAS.sgemm(
                transA: false, transB: true, M: T, N: T, K: HS, alpha: scale, A: q, lda: QKV,
                B: k, ldb: QKV, beta: 0, C: a, ldc: T)
            for t in 0..<T {
                let row = a + t * T
                let first = starts.map { Int($0[b * T + t]) } ?? 0
                for j in 0..<first { row[j] = 0 }
                softmaxInPlace(row + first, t + 1 - first)
                for j in (t + 1)..<T { row[j] = 0 }
            }
            BLAS.sgemm(
                transA: false, transB: false, M: T, N: HS, K: T, A: a, lda: T, B: v, ldb: QKV,
                beta: 0, C: out + b * T * C + h * HS, ldc: C)
        }
    }
}

/// dqkv += gradient of attentionForward given dout (B,T,NH*HS). Work is split by (batch, kv head)
/// so that the query heads sharing a key/value head accumulate into it on one thread. With
/// `overwrite`, dqkv = the gradient: each query head's first product, and each key/value head's
/// first contribution, writes instead of adding (no zero-filled buffer needed).
public func attentionBackward(
    dqkv: FPtr, dout: CFPtr, qkv: CFPtr, att: CFPtr, B: Int, T: Int, NH: Int, KVH: Int, HS: Int,
    pool: ThreadPool, overwrite: Bool = false
) {
    let QKV = (NH + 2 * KVH) * HS, C = NH * HS, group = NH / KVH
    let scale = 1 / Float(HS).squareRoot()
    let scratch = FPtr.allocate(capacity: pool.threads * T * T)
    defer { scratch.deallocate() }
    let kernels = Kernels.active
    pool.run { w in
        let dp = scratch + w * T * T
        for item in ThreadPool.chunk(B * KVH, parts: pool.threads, index: w) {
            let b = item / KVH, kvh = item % KVH
            let base = qkv + b * T * QKV, dbase = dqkv + b * T * QKV
            let k = base + (NH + kvh) * HS, v = base + (NH + KVH + kvh) * HS
            let dk = dbase + (NH + kvh) * HS, dv = dbase + (NH + KVH + kvh) * HS
            for h in (kvh * group)..<((kvh + 1) * group) {
                // The first query head of the group writes dK and dV; every head writes its dQ once.
                let kvBeta: Float = overwrite && h == kvh * group ? 0 : 1, qBeta: Float = overwrite ? 0 : 1
                let q = base + h * HS, dq = dbase + h * HS
                let a = att + (b * NH + h) * T * T
                let dy = dout + b * T * C + h * HS
                // dP = dY V^T ; dV += P^T dY
                BLAS.sgemm(
                    transA: false, transB: true, M: T, N: T, K: HS, A: dy, lda: C, B: v, ldb: QKV,
                    beta: 0, C: dp, ldc: T)
                BLAS.sgemm(
                    transA: true, transB: false, M: T, N: HS, K: T, A: a, lda: T, B: dy, ldb: C,
                    beta: kvBeta, C: dv, ldc: QKV)
                // dS = P * (dP - rowsum(P * dP)), masked entries have P = 0
                for t in 0..<T {
                    let pr = a + t * T, dr = dp + t * T
                    let s = kernels.dot(pr, dr, t + 1)
                    for j in 0...t { dr[j] = pr[j] * (dr[j] - s) }
                    for j in (t + 1)..<T { dr[j] = 0 }
                }
                // dQ += scale dS K ; dK += scale dS^T Q
                BLAS.sgemm(
                    transA: false, transB: false, M: T, N: HS, K: T, alpha: scale, A: dp, lda: T, B: k,
                    ldb: QKV, beta: qBeta, C: dq, ldc: QKV)
                BLAS.sgemm(
                    transA: true, transB: false, M: T, N: HS, K: T, alpha: scale, A: dp, lda: T, B: q,
                    ldb: QKV, beta: kvBeta, C: dk, ldc: QKV)
            }
        }
    }
}

/// One decoding step against a KV cache: for each sequence b, the single query token attends to
/// cache positions 0...lengths[b] (its own key/value already written at lengths[b]).
/// q (B, qStride) with the NH query heads first in each row; kCache, vCache (rows, KVH, S, HS);
/// out (B,NH*HS). Sequence b reads cache row rows[b] (b itself without `rows`): a batch of
/// packed rows can decode against any of the cache's rows.
public func attentionDecode(
    out: FPtr, q: CFPtr, qStride: Int, kCache: CFPtr, vCache: CFPtr, lengths: UnsafePointer<Int32>,
    B: Int, NH: Int, KVH: Int, HS: Int, S: Int, pool: ThreadPool, rows: UnsafePointer<Int32>? = nil
) {
    let group = NH / KVH, C = NH * HS
    let scale = 1 / Float(HS).squareRoot()
    let work = B * NH * (Int(lengths[0]) + 1) * HS
    let scratch = FPtr.allocate(capacity: pool.threads * S)
    defer { scratch.deallocate() }
    let k = Kernels.active
    let body: (Int, Range<Int>) -> Void = { w, r in
        let p = scratch + w * S
        for item in r {
            let b = item / NH, h = item % NH, kvh = h / group
            let r = rows.map { Int($0[b]) } ?? b
            k.attentionDecode(
                out: out + b * C + h * HS, q: q + b * qStride + h * HS, keys: kCache + (r * KVH + kvh) * S * HS,
                values: vCache + (r * KVH + kvh) * S * HS, n: Int(lengths[b]) + 1, hs: HS, stride: HS, scale: scale,
                scratch: p)
        }
    }
    if work < 32_768 || pool.threads == 1 {
        body(0, 0..<(B * NH))
    } else {
        pool.run { w in body(w, ThreadPool.chunk(B * NH, parts: pool.threads, index: w)) }
    }
}
