// ValueHeadTests.swift: the value head's binary cross-entropy (ValueHead.swift) on hand-computed
// cases, against Reference.valueHeadLoss, and its gradients (hidden states, weight, bias) against
// central differences; rows not chosen get no gradient, and the kernel accumulates.

import Testing
import VLDTensor

#if canImport(Glibc)
    import Glibc
#endif

@Test func valueHeadHandComputedCases() {
    // A zero weight and bias score 0.5 whatever the target: the loss is log 2 for each row.
    let hidden: [Float] = [1, 2, 3, 4]
    let zero: [Float] = [0, 0]
    let loss = valueHeadLoss(hidden: hidden, C: 2, rows: [0, 1], targets: [0, 0.7], weight: zero, bias: 0)
    #expect(abs(Double(loss) - log(2)) < 1e-6)
    #expect(valueHeadScores(hidden: hidden, C: 2, rows: [1], weight: zero, bias: 0) == [0.5])
    // Score s = 1*3 + (-1)*4 + 0.5 = -0.5 at row 1; target 1: loss = softplus(0.5) = log(1 + e^0.5).
    let w: [Float] = [1, -1]
    let one = valueHeadLoss(hidden: hidden, C: 2, rows: [1], targets: [1], weight: w, bias: 0.5)
    #expect(abs(Double(one) - log(1 + exp(0.5))) < 1e-6)
    // A large score against the wrong target stays finite: loss = s.
    let far = valueHeadLoss(hidden: [100, 0], C: 2, rows: [0], targets: [0], weight: [1, 0], bias: 0)
    #expect(abs(far - 100) < 1e-3)
    // No rows: no loss.
    #expect(valueHeadLoss(hidden: hidden, C: 2, rows: [], targets: [], weight: w, bias: 0) == 0)
}

@Test func valueHeadMatchesTheReferenceAndFiniteDifferences() {
    var rng = SeededRNG(seed: 77)
    let N = 7, C = 5
    let hidden = randn(N * C, &rng)
    let weight = randn(C, &rng, scale: 0.7)
    let bias: Float = 0.3
    let rows = [1, 4, 6, 4]  // a row may be scored twice; row 0, 2, 3, 5 not at all
    let targets: [Float] = [1, 0, 0.25, 0.8]
    var dh = [Float](repeating: prefill, count: N * C)
    var dw = [Float](repeating: prefill, count: C)
    var db: Float = prefill
    let loss = valueHeadLoss(
        hidden: hidden, C: C, rows: rows, targets: targets, weight: weight, bias: bias, dhidden: &dh, dweight: &dw,
        dbias: &db)
    func ref(_ h: [Double], _ w: [Double], _ b: Double) -> Double {
        Reference.valueHeadLoss(hidden: h, C: C, rows: rows, targets: targets.d, weight: w, bias: b)
    }
    let tol = Tolerance(abs: 1e-6, rel: 1e-5)
    expectClose(Double(loss), ref(hidden.d, weight.d, Double(bias)), tol, "loss")
    let gh = numericGradient(hidden.d) { ref($0, weight.d, Double(bias)) }
    let gw = numericGradient(weight.d) { ref(hidden.d, $0, Double(bias)) }
    let gb = numericGradient([Double(bias)]) { ref(hidden.d, weight.d, $0[0]) }
    expectClose(dh.map { Double($0) - Double(prefill) }, gh, tol, "d hidden")
    expectClose(dw.map { Double($0) - Double(prefill) }, gw, tol, "d weight")
    expectClose(Double(db) - Double(prefill), gb[0], tol, "d bias")
    for r in [0, 2, 3, 5] { #expect(dh[(r * C)..<((r + 1) * C)].allSatisfy { $0 == prefill }) }
    let scores = valueHeadScores(hidden: hidden, C: C, rows: rows, weight: weight, bias: bias)
    for (i, r) in rows.enumerated() {
        let s = Double(bias) + (0..<C).reduce(0.0) { $0 + Double(weight[$1]) * Double(hidden[r * C + $1]) }
        #expect(abs(Double(scores[i]) - 1 / (1 + exp(-s))) < 1e-6)
    }
}
