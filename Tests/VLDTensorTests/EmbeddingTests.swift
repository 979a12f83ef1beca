// EmbeddingTests.swift: embeddingForward/embeddingBackward against Reference, with and without
// learned positions, repeated tokens (scatter conflicts) and per-token positions.

import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 1e-6, rel: 1e-6)
private let gradTol = Tolerance(abs: 1e-5, rel: 1e-5)

/// N = 10 runs on one thread, N = 600 (256 per thread minimum) on two.
@Test(arguments: threadCounts, [10, 600])
func embeddingMatchesReference(threads: Int, N: Int) {
    let V = 11, P = 7, C = 8
    var rng = SeededRNG(seed: 601)
    var tokens = (0..<N).map { _ in Int32(rng.nextInt(V)) }
    tokens[1] = tokens[0]  // at least one repeated token
    tokens[N - 1] = Int32(V - 1)
    let positions = (0..<N).map { _ in Int32(rng.nextInt(P)) }
    let wte = randn(V * C, &rng), wpe = randn(P * C, &rng), dout = randn(N * C, &rng)
    let p = pool(threads)
    let tok = tokens.map(Int.init), pos = positions.map(Int.init)

    var out = [Float](repeating: .nan, count: N * C)
    embeddingForward(out: &out, tokens: tokens, positions: positions, wte: wte, wpe: wpe, N: N, C: C, pool: p)
    expectClose(
        out, Reference.embedding(tokens: tok, positions: pos, wte: wte.d, wpe: wpe.d, C: C), valueTol, "embedding out")

    var outNoPos = [Float](repeating: .nan, count: N * C)
    embeddingForward(out: &outNoPos, tokens: tokens, positions: positions, wte: wte, wpe: nil, N: N, C: C, pool: p)
    expectClose(
        outNoPos, Reference.embedding(tokens: tok, positions: pos, wte: wte.d, wpe: nil, C: C), valueTol,
        "embedding out without positions")

    let ref = Reference.embeddingBackward(dout: dout.d, tokens: tok, positions: pos, V: V, P: P, C: C)
    var dwte = [Float](repeating: prefill, count: V * C), dwpe = [Float](repeating: prefill, count: P * C)
    embeddingBackward(dwte: &dwte, dwpe: &dwpe, dout: dout, tokens: tokens, positions: positions, N: N, C: C)
    expectClose(dwte, add(ref.dwte, Double(prefill)), gradTol, "embedding dwte (accumulated)")
    expectClose(dwpe, add(ref.dwpe, Double(prefill)), gradTol, "embedding dwpe (accumulated)")

    var dwte2 = [Float](repeating: prefill, count: V * C)
    embeddingBackward(dwte: &dwte2, dwpe: nil, dout: dout, tokens: tokens, positions: positions, N: N, C: C)
    expectClose(dwte2, add(ref.dwte, Double(prefill)), gradTol, "embedding dwte without positions")
}
