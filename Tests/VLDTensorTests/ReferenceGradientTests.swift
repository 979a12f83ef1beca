// ReferenceGradientTests.swift: the analytic Double backward passes in Reference against central
// differences (eps 1e-6) of the Reference forward composed with a random linear functional
// loss = sum(w * out), so that a wrong derivation cannot hide in both a fast kernel and its
// reference. Attention, RoPE and SwiGLU have no Reference backward: their fast backward passes are
// checked against these finite differences directly (AttentionTests, RoPETests, ActivationTests).

import Testing
import VLDTensor

private let N = 10, C = 8
private let normEps = 1e-5

@Test func layerNormReferenceBackwardMatchesFiniteDifferences() {
    var rng = SeededRNG(seed: 901)
    let x = randn(N * C, &rng).d, w = randn(C, &rng).d, b = randn(C, &rng).d, g = randn(N * C, &rng).d
    let ref = Reference.layerNormBackward(dout: g, x: x, w: w, C: C, eps: normEps)
    expectClose(
        ref.dx, numericGradient(x) { dot(g, Reference.layerNorm($0, w: w, b: b, C: C, eps: normEps)) }, fdTolerance,
        "layerNorm dx")
    expectClose(
        ref.dw, numericGradient(w) { dot(g, Reference.layerNorm(x, w: $0, b: b, C: C, eps: normEps)) }, fdTolerance,
        "layerNorm dw")
    expectClose(
        ref.db, numericGradient(b) { dot(g, Reference.layerNorm(x, w: w, b: $0, C: C, eps: normEps)) }, fdTolerance,
        "layerNorm db")
}

@Test func rmsNormReferenceBackwardMatchesFiniteDifferences() {
    var rng = SeededRNG(seed: 902)
    let x = randn(N * C, &rng).d, w = randn(C, &rng).d, g = randn(N * C, &rng).d
    let ref = Reference.rmsNormBackward(dout: g, x: x, w: w, C: C, eps: normEps)
    expectClose(
        ref.dx, numericGradient(x) { dot(g, Reference.rmsNorm($0, w: w, C: C, eps: normEps)) }, fdTolerance,
        "rmsNorm dx")
    expectClose(
        ref.dw, numericGradient(w) { dot(g, Reference.rmsNorm(x, w: $0, C: C, eps: normEps)) }, fdTolerance,
        "rmsNorm dw")
}

@Test func linearReferenceBackwardMatchesFiniteDifferences() {
    let (M, OC) = (N, 11)
    var rng = SeededRNG(seed: 903)
    let x = randn(M * C, &rng).d, w = randn(OC * C, &rng).d, b = randn(OC, &rng).d, g = randn(M * OC, &rng).d
    let ref = Reference.linearBackward(dout: g, x: x, w: w, M: M, C: C, OC: OC)
    expectClose(
        ref.dx, numericGradient(x) { dot(g, Reference.linear($0, w: w, b: b, M: M, C: C, OC: OC)) }, fdTolerance,
        "linear dx")
    expectClose(
        ref.dw, numericGradient(w) { dot(g, Reference.linear(x, w: $0, b: b, M: M, C: C, OC: OC)) }, fdTolerance,
        "linear dw")
    expectClose(
        ref.db, numericGradient(b) { dot(g, Reference.linear(x, w: w, b: $0, M: M, C: C, OC: OC)) }, fdTolerance,
        "linear db")
}

@Test func embeddingReferenceBackwardMatchesFiniteDifferences() {
    let (V, P) = (11, 7)
    var rng = SeededRNG(seed: 904)
    var tokens = (0..<N).map { _ in rng.nextInt(V) }
    tokens[2] = tokens[1]
    let positions = (0..<N).map { _ in rng.nextInt(P) }
    let wte = randn(V * C, &rng).d, wpe = randn(P * C, &rng).d, g = randn(N * C, &rng).d
    let ref = Reference.embeddingBackward(dout: g, tokens: tokens, positions: positions, V: V, P: P, C: C)
    let fdWte = numericGradient(wte) {
        dot(g, Reference.embedding(tokens: tokens, positions: positions, wte: $0, wpe: wpe, C: C))
    }
    let fdWpe = numericGradient(wpe) {
        dot(g, Reference.embedding(tokens: tokens, positions: positions, wte: wte, wpe: $0, C: C))
    }
    expectClose(ref.dwte, fdWte, fdTolerance, "embedding dwte")
    expectClose(ref.dwpe, fdWpe, fdTolerance, "embedding dwpe")
}

@Test func geluReferenceGradientMatchesFiniteDifferences() {
    var rng = SeededRNG(seed: 905)
    let x = randn(40, &rng, scale: 3).d + [0, 5, -5, 10, -10]
    let g = randn(x.count, &rng).d
    let analytic = zip(Reference.geluGrad(x), g).map { $0 * $1 }
    expectClose(analytic, numericGradient(x) { dot(g, Reference.gelu($0)) }, fdTolerance, "gelu grad")
}

@Test func crossEntropyReferenceBackwardMatchesFiniteDifferences() {
    let V = 11
    var rng = SeededRNG(seed: 906)
    let logits = randn(N * V, &rng, scale: 2).d
    var targets = (0..<N).map { _ in rng.nextInt(V) }
    targets[3] = -1
    targets[7] = -1
    let ref = Reference.crossEntropyBackward(logits: logits, targets: targets, V: V)
    let fd = numericGradient(logits) { Reference.crossEntropy(logits: $0, targets: targets, V: V) }
    expectClose(ref, fd, fdTolerance, "cross-entropy dlogits")
    #expect(ref[(3 * V)..<(4 * V)].allSatisfy { $0 == 0 }, "ignored row has no gradient")
}
