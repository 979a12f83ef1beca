// CrossEntropyTests.swift: fused softmax + cross-entropy with ignored targets (< 0), against
// Reference.crossEntropy / crossEntropyBackward and central differences of Reference.crossEntropy;
// the in-place (aliased) form; and the all-ignored edge case.

import Testing
import VLDTensor

#if canImport(Glibc)
    import Glibc
#endif

private let valueTol = Tolerance(abs: 1e-6, rel: 1e-5)
private let gradTol = Tolerance(abs: 1e-6, rel: 1e-5)

private struct Batch {
    var logits: [Float]
    var targets: [Int32]
    var N: Int
    var V: Int
    var counted: Int { targets.filter { $0 >= 0 }.count }
}

private func batch(N: Int, V: Int, seed: UInt64) -> Batch {
    var rng = SeededRNG(seed: seed)
    let logits = randn(N * V, &rng, scale: 2)
    var targets = (0..<N).map { _ in Int32(rng.nextInt(V)) }
    for n in stride(from: 1, to: N, by: 3) { targets[n] = n % 2 == 0 ? -1 : -100 }  // ignored positions
    targets[0] = Int32(V - 1)
    return Batch(logits: logits, targets: targets, N: N, V: V)
}

/// N = 10 runs on one thread; N = 40 (16 rows per thread minimum) on two.
@Test(arguments: threadCounts, [10, 40])
func crossEntropyMatchesReference(threads: Int, N: Int) {
    let V = 11
    let bt = batch(N: N, V: V, seed: 701)
    let p = pool(threads)
    let tg = bt.targets.map(Int.init)

    var losses = [Float](repeating: .nan, count: N), probs = [Float](repeating: .nan, count: N * V)
    let (loss, count) = crossEntropyForward(
        losses: &losses, probs: &probs, logits: bt.logits, targets: bt.targets, N: N, V: V, pool: p)
    #expect(count == bt.counted)
    expectClose(Double(loss), Reference.crossEntropy(logits: bt.logits.d, targets: tg, V: V), valueTol, "mean loss")
    var refProbs = [Double](), refLosses = [Double]()
    for n in 0..<N {
        let row = Array(bt.logits.d[(n * V)..<((n + 1) * V)])
        refProbs += softmaxDouble(row)
        refLosses.append(tg[n] >= 0 ? Reference.crossEntropy(logits: row, targets: [tg[n]], V: V) : 0)
    }
    expectClose(probs, refProbs, valueTol, "probs")
    expectClose(losses, refLosses, valueTol, "per-position losses (0 where ignored)")

    // Backward writes (does not accumulate): pre-filled values must be overwritten, ignored rows zeroed.
    var dlogits = [Float](repeating: prefill, count: N * V)
    crossEntropyBackward(
        dlogits: &dlogits, probs: probs, targets: bt.targets, scale: 1 / Float(count), N: N, V: V, pool: p)
    let ref = Reference.crossEntropyBackward(logits: bt.logits.d, targets: tg, V: V)
    expectClose(dlogits, ref, gradTol, "dlogits vs Reference.crossEntropyBackward")
    let fd = numericGradient(bt.logits.d) { Reference.crossEntropy(logits: $0, targets: tg, V: V) }
    expectClose(dlogits, fd, gradTol, "dlogits vs finite differences")
    for n in 0..<N where tg[n] < 0 {
        #expect(dlogits[(n * V)..<((n + 1) * V)].allSatisfy { $0 == 0 }, "ignored row \(n) has zero gradient")
    }
}

/// probs may alias logits and dlogits may alias probs (one buffer through forward and backward).
@Test(arguments: threadCounts)
func crossEntropyInPlace(threads: Int) {
    let N = 40, V = 11
    let bt = batch(N: N, V: V, seed: 702)
    let p = pool(threads)
    let buf = FloatBuffer(count: N * V)
    buf.load(bt.logits)
    var losses = [Float](repeating: .nan, count: N)
    let (loss, count) = crossEntropyForward(
        losses: &losses, probs: buf.base, logits: buf.base, targets: bt.targets, N: N, V: V, pool: p)
    let tg = bt.targets.map(Int.init)
    expectClose(
        Double(loss), Reference.crossEntropy(logits: bt.logits.d, targets: tg, V: V), valueTol, "mean loss in place")
    crossEntropyBackward(
        dlogits: buf.base, probs: buf.base, targets: bt.targets, scale: 1 / Float(count), N: N, V: V, pool: p)
    expectClose(
        buf.array(), Reference.crossEntropyBackward(logits: bt.logits.d, targets: tg, V: V), gradTol, "dlogits in place"
    )
}

/// Extreme logits do not overflow (a loss of 80 is still exact), and a batch where every target is ignored has loss 0, count 0.
@Test func crossEntropyEdgeCases() {
    let V = 5
    let logits: [Float] = [1000, 0, -1000, 3, 2, -40, -40, -40, -40, 40]
    let targets: [Int32] = [2, 0]
    var losses = [Float](repeating: .nan, count: 2), probs = [Float](repeating: .nan, count: 2 * V)
    let (loss, count) = crossEntropyForward(
        losses: &losses, probs: &probs, logits: logits, targets: targets, N: 2, V: V, pool: pool(1))
    #expect(count == 2)
    #expect(loss.isFinite && losses.allSatisfy(\.isFinite) && probs.allSatisfy(\.isFinite), "losses \(losses)")
    // Row 0's target has probability e^-2000, below Float's range: its loss saturates at -log(leastNormal).
    #expect(losses[0] >= 87 && losses[0] <= 88.8, "saturated loss \(losses[0])")
    expectClose(
        Double(losses[1]), Reference.crossEntropy(logits: logits.d[V...].map { $0 }, targets: [0], V: V), valueTol,
        "loss row 1")

    let ignored: [Int32] = [-1, -1]
    let (loss0, count0) = crossEntropyForward(
        losses: &losses, probs: &probs, logits: logits, targets: ignored, N: 2, V: V, pool: pool(1))
    #expect(loss0 == 0 && count0 == 0)
    #expect(losses == [0, 0])
}
