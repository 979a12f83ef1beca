// AttentionTests.swift: causal grouped-query attention. Forward against Reference.attention (and
// its cached probabilities), backward against central differences of Reference.attention composed
// with a random linear functional, decoding against the last row of the forward pass, and
// softmaxInPlace against a Double softmax.

import Foundation
import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 2e-6, rel: 2e-6)
private let gradTol = Tolerance(abs: 2e-6, rel: 1e-5)

struct AttentionShape: CustomStringConvertible, Sendable {
    var B: Int, T: Int, NH: Int, KVH: Int, HS: Int
    var QKV: Int { (NH + 2 * KVH) * HS }
    var C: Int { NH * HS }
    var description: String { "B\(B) T\(T) NH\(NH) KVH\(KVH) HS\(HS)" }
}

/// Grouped-query (KVH < NH, groups of 2 and 4) and plain multi-head (KVH == NH).
let attentionShapes = [
    AttentionShape(B: 2, T: 5, NH: 2, KVH: 1, HS: 4),
    AttentionShape(B: 2, T: 5, NH: 2, KVH: 2, HS: 4),
    AttentionShape(B: 2, T: 5, NH: 4, KVH: 2, HS: 4),
    AttentionShape(B: 1, T: 6, NH: 4, KVH: 1, HS: 4),
]

/// Runs the fast forward pass; returns (out, att).
private func fastAttention(_ qkv: [Float], _ s: AttentionShape, _ p: ThreadPool) -> ([Float], [Float]) {
    var out = [Float](repeating: .nan, count: s.B * s.T * s.C)
    var att = [Float](repeating: .nan, count: s.B * s.NH * s.T * s.T)
    attentionForward(out: &out, att: &att, qkv: qkv, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, pool: p)
    return (out, att)
}

/// Attention probabilities (B,NH,T,T) in Double, zero above the diagonal.
private func referenceProbabilities(_ qkv: [Double], _ s: AttentionShape) -> [Double] {
    var att = [Double](repeating: 0, count: s.B * s.NH * s.T * s.T)
    let group = s.NH / s.KVH
    for b in 0..<s.B {
        for h in 0..<s.NH {
            let kvh = h / group
            for t in 0..<s.T {
                var scores = [Double]()
                for j in 0...t {
                    var dot = 0.0
                    for d in 0..<s.HS {
                        dot +=
                            qkv[(b * s.T + t) * s.QKV + h * s.HS + d]
                            * qkv[(b * s.T + j) * s.QKV + (s.NH + kvh) * s.HS + d]
                    }
                    scores.append(dot / Double(s.HS).squareRoot())
                }
                let probs = softmaxDouble(scores)
                for j in 0...t { att[((b * s.NH + h) * s.T + t) * s.T + j] = probs[j] }
            }
        }
    }
    return att
}

func softmaxDouble(_ x: [Double]) -> [Double] {
    let mx = x.max()!
    let e = x.map { exp($0 - mx) }
    let z = e.reduce(0, +)
    return e.map { $0 / z }
}

@Test(arguments: threadCounts, attentionShapes)
func attentionForwardMatchesReference(threads: Int, s: AttentionShape) {
    var rng = SeededRNG(seed: 301)
    let qkv = randn(s.B * s.T * s.QKV, &rng)
    let (out, att) = fastAttention(qkv, s, pool(threads))
    expectClose(
        out, Reference.attention(qkv.d, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS), valueTol, "attention out \(s)")
    // The cache holds the causal probabilities: exact zeros above the diagonal.
    expectClose(att, referenceProbabilities(qkv.d, s), valueTol, "attention probabilities \(s)")
    for row in 0..<(s.B * s.NH * s.T) {
        let t = row % s.T
        #expect(att[(row * s.T + t + 1)..<((row + 1) * s.T)].allSatisfy { $0 == 0 }, "masked entries of row \(row)")
    }
}

/// Backward against the central-difference gradient of loss = sum(w * Reference.attention(qkv)).
@Test(arguments: threadCounts, attentionShapes)
func attentionBackwardMatchesFiniteDifferences(threads: Int, s: AttentionShape) {
    var rng = SeededRNG(seed: 302)
    let qkv = randn(s.B * s.T * s.QKV, &rng)
    let w = randn(s.B * s.T * s.C, &rng)
    let fd = numericGradient(qkv.d) {
        dot(w.d, Reference.attention($0, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS))
    }

    let p = pool(threads)
    let (_, att) = fastAttention(qkv, s, p)
    var dqkv = [Float](repeating: prefill, count: qkv.count)
    attentionBackward(dqkv: &dqkv, dout: w, qkv: qkv, att: att, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, pool: p)
    expectClose(dqkv, add(fd, Double(prefill)), gradTol, "attention dqkv (accumulated) \(s)")
    // Overwriting: a buffer of NaNs comes back as the gradient alone (every element written).
    var fresh = [Float](repeating: .nan, count: qkv.count)
    attentionBackward(
        dqkv: &fresh, dout: w, qkv: qkv, att: att, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, pool: p,
        overwrite: true)
    expectClose(fresh, fd, gradTol, "attention dqkv (overwritten) \(s)")
}

/// Packed rows: documents of 3, 1 and 2 tokens (row 0) and 2 and 4 (row 1, T = 6). Each token
/// sees only its own document, forward and backward, and the cached probabilities are exactly 0
/// outside it.
@Test(
    arguments: threadCounts,
    [AttentionShape(B: 2, T: 6, NH: 2, KVH: 1, HS: 4), AttentionShape(B: 2, T: 6, NH: 4, KVH: 2, HS: 4)])
func packedAttentionStaysInsideEachDocument(threads: Int, s: AttentionShape) {
    var rng = SeededRNG(seed: 304)
    let starts: [Int32] = [0, 0, 0, 3, 4, 4, 0, 0, 2, 2, 2, 2]
    let qkv = randn(s.B * s.T * s.QKV, &rng)
    let p = pool(threads)
    var out = [Float](repeating: .nan, count: s.B * s.T * s.C)
    var att = [Float](repeating: .nan, count: s.B * s.NH * s.T * s.T)
    attentionForward(
        out: &out, att: &att, qkv: qkv, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, pool: p, starts: starts)
    let reference = Reference.attention(
        qkv.d, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, starts: starts.map(Int.init))
    expectClose(out, reference, valueTol, "packed attention out \(s)")
    for row in 0..<(s.B * s.NH * s.T) {
        let b = row / (s.NH * s.T), t = row % s.T, first = Int(starts[b * s.T + t])
        let probs = att[(row * s.T)..<((row + 1) * s.T)]
        #expect(
            probs.enumerated().allSatisfy { j, v in (first...t).contains(j) ? v > 0 : v == 0 }, "row \(row): \(probs)")
    }
    // A document alone in a row gives the same output as inside the packed row.
    let one = AttentionShape(B: 1, T: 4, NH: s.NH, KVH: s.KVH, HS: s.HS)
    let alone = Array(qkv[((s.T + 2) * s.QKV)..<(2 * s.T * s.QKV)])
    let (soloOut, _) = fastAttention(alone, one, p)
    expectClose(
        soloOut, out[((s.T + 2) * s.C)..<(2 * s.T * s.C)].map(Double.init), valueTol, "row 1's second document alone")

    let w = randn(s.B * s.T * s.C, &rng)
    let fd = numericGradient(qkv.d) {
        dot(w.d, Reference.attention($0, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, starts: starts.map(Int.init)))
    }
    var dqkv = [Float](repeating: prefill, count: qkv.count)
    attentionBackward(dqkv: &dqkv, dout: w, qkv: qkv, att: att, B: s.B, T: s.T, NH: s.NH, KVH: s.KVH, HS: s.HS, pool: p)
    expectClose(dqkv, add(fd, Double(prefill)), gradTol, "packed attention dqkv \(s)")
}

/// Decoding one token against a KV cache (B,KVH,S,HS) gives row lengths[b] of the forward pass.
/// Cache slots past lengths[b] hold NaN, so reading them would show.
@Test(
    arguments: threadCounts,
    [
        AttentionShape(B: 2, T: 5, NH: 2, KVH: 1, HS: 4),
        AttentionShape(B: 3, T: 6, NH: 4, KVH: 2, HS: 4),
        AttentionShape(B: 2, T: 4, NH: 2, KVH: 2, HS: 4),
        // B*NH*T*HS >= 32768: the pool path of attentionDecode.
        AttentionShape(B: 4, T: 65, NH: 8, KVH: 2, HS: 16),
    ])
func attentionDecodeMatchesForwardRows(threads: Int, s: AttentionShape) {
    var rng = SeededRNG(seed: 303)
    let qkv = randn(s.B * s.T * s.QKV, &rng)
    let p = pool(threads)
    let (out, _) = fastAttention(qkv, s, p)
    let S = s.T + 3

    for varied in [false, true] {
        // Every sequence at the last position, or each at its own position.
        let lengths: [Int32] = (0..<s.B).map { b in Int32(varied ? s.T - 1 - (b % s.T) : s.T - 1) }
        var kCache = [Float](repeating: .nan, count: s.B * s.KVH * S * s.HS), vCache = kCache
        for b in 0..<s.B {
            for kvh in 0..<s.KVH {
                for j in 0...Int(lengths[b]) {
                    for d in 0..<s.HS {
                        let row = (b * s.T + j) * s.QKV
                        kCache[((b * s.KVH + kvh) * S + j) * s.HS + d] = qkv[row + (s.NH + kvh) * s.HS + d]
                        vCache[((b * s.KVH + kvh) * S + j) * s.HS + d] = qkv[row + (s.NH + s.KVH + kvh) * s.HS + d]
                    }
                }
            }
        }
        // Queries: the qkv row of each sequence's current token, read with stride QKV.
        var q = [Float](repeating: .nan, count: s.B * s.QKV)
        for b in 0..<s.B {
            let row = (b * s.T + Int(lengths[b])) * s.QKV
            for i in 0..<s.QKV { q[b * s.QKV + i] = qkv[row + i] }
        }
        var dec = [Float](repeating: .nan, count: s.B * s.C)
        attentionDecode(
            out: &dec, q: q, qStride: s.QKV, kCache: kCache, vCache: vCache, lengths: lengths,
            B: s.B, NH: s.NH, KVH: s.KVH, HS: s.HS, S: S, pool: p)
        var expected = [Double]()
        for b in 0..<s.B {
            let row = (b * s.T + Int(lengths[b])) * s.C
            expected += out[row..<(row + s.C)].map(Double.init)
        }
        expectClose(dec, expected, valueTol, "decode vs forward rows \(s) lengths \(lengths)")
    }

    // The q pointer may point straight into qkv (stride T*QKV picks each sequence's last token).
    var kCache = [Float](repeating: 0, count: s.B * s.KVH * S * s.HS), vCache = kCache
    for b in 0..<s.B {
        for kvh in 0..<s.KVH {
            for j in 0..<s.T {
                for d in 0..<s.HS {
                    kCache[((b * s.KVH + kvh) * S + j) * s.HS + d] =
                        qkv[(b * s.T + j) * s.QKV + (s.NH + kvh) * s.HS + d]
                    vCache[((b * s.KVH + kvh) * S + j) * s.HS + d] =
                        qkv[(b * s.T + j) * s.QKV + (s.NH + s.KVH + kvh) * s.HS + d]
                }
            }
        }
    }
    let lengths = [Int32](repeating: Int32(s.T - 1), count: s.B)
    var dec = [Float](repeating: .nan, count: s.B * s.C)
    qkv.withUnsafeBufferPointer { qb in
        attentionDecode(
            out: &dec, q: qb.baseAddress! + (s.T - 1) * s.QKV, qStride: s.T * s.QKV, kCache: kCache, vCache: vCache,
            lengths: lengths, B: s.B, NH: s.NH, KVH: s.KVH, HS: s.HS, S: S, pool: p)
    }
    var expected = [Double]()
    for b in 0..<s.B {
        let row = (b * s.T + s.T - 1) * s.C
        expected += out[row..<(row + s.C)].map(Double.init)
    }
    expectClose(dec, expected, valueTol, "decode with strided q \(s)")
}

@Test func softmaxInPlaceMatchesDouble() {
    var rng = SeededRNG(seed: 304)
    for (n, offset, scale) in [(1, 0.0, 1.0), (2, 0.0, 1.0), (7, 0.0, 3.0), (33, 500.0, 5.0), (100, -300.0, 10.0)] {
        var x = randn(n, &rng, scale: scale).map { $0 + Float(offset) }
        let ref = softmaxDouble(x.d)
        softmaxInPlace(&x, n)
        expectClose(x, ref, Tolerance(abs: 1e-7, rel: 1e-5), "softmax n \(n) offset \(offset)")
        #expect(abs(x.reduce(0, +) - 1) < 1e-5, "softmax sums to 1 (n \(n))")
    }
}
