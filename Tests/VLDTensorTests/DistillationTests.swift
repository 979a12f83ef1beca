// DistillationTests.swift: the distillation losses (Distillation.swift) against hand-computed
// values on a 3-token vocabulary, against Reference.distillation, their gradients against central
// differences of the reference, the identities between them (λ = 0 is CE, jsd's endpoints are the
// two KLs, top-K over the whole vocabulary is CE with the teacher's soft labels), and masking.

import Foundation
import Testing
import VLDTensor

private let tol = Tolerance(abs: 2e-6, rel: 2e-5)

private let kinds: [DistillationLoss] = [
    .ce, .kdForward(temperature: 2, lambda: 0.5), .kdForward(temperature: 1, lambda: 1),
    .kdReverse(temperature: 2, lambda: 0.7), .jsd(beta: 0), .jsd(beta: 0.5), .jsd(beta: 0.9), .jsd(beta: 1),
    .topK(3), .topK(11), .sampledK(4, seed: 9), .sampledK(64, seed: 10), .logitMSE,
]

private func run(
    _ kind: DistillationLoss, student: [Float], teacher: [Float], targets: [Int32], V: Int, threads: Int = 1
) -> (loss: Float, count: Int, losses: [Float], dlogits: [Float]) {
    let N = targets.count
    var losses = [Float](repeating: .nan, count: N), d = [Float](repeating: prefill, count: N * V)
    let (loss, count) = distillationForwardBackward(
        kind, losses: &losses, dlogits: &d, student: student, teacher: teacher, targets: targets, N: N, V: V,
        pool: pool(threads))
    return (loss, count, losses, d)
}

@Test(arguments: kinds, threadCounts)
func distillationMatchesTheReferenceAndFiniteDifferences(kind: DistillationLoss, threads: Int) {
    let N = 20, V = 11
    var rng = SeededRNG(seed: 811)
    let student = randn(N * V, &rng, scale: 2), teacher = randn(N * V, &rng, scale: 2)
    var targets = (0..<N).map { _ in Int32(rng.nextInt(V)) }
    for n in stride(from: 2, to: N, by: 5) { targets[n] = -1 }  // masked positions
    let tg = targets.map(Int.init)
    let r = run(kind, student: student, teacher: teacher, targets: targets, V: V, threads: threads)
    #expect(r.count == targets.filter { $0 >= 0 }.count)
    let ref = Reference.distillation(kind, student: student.d, teacher: teacher.d, targets: tg, V: V)
    expectClose(Double(r.loss), ref, tol, "\(kind): mean loss")
    let fd = numericGradient(student.d) {
        Reference.distillation(kind, student: $0, teacher: teacher.d, targets: tg, V: V)
    }
    expectClose(r.dlogits, fd, tol, "\(kind): dlogits vs finite differences of the reference")
    for n in 0..<N where tg[n] < 0 {
        #expect(r.losses[n] == 0 && r.dlogits[(n * V)..<((n + 1) * V)].allSatisfy { $0 == 0 }, "masked row \(n)")
    }
}

/// One position, V = 3, student logits (0, 0, 0) and teacher logits (log 2, 0, 0): p = (1/3, 1/3,
/// 1/3), q = (1/2, 1/4, 1/4), target 0. Values worked out by hand.
@Test func handComputedValuesOnThreeTokens() {
    let s: [Float] = [0, 0, 0], t: [Float] = [Float(log(2.0)), 0, 0], y: [Int32] = [0]
    func loss(_ k: DistillationLoss) -> Double { Double(run(k, student: s, teacher: t, targets: y, V: 3).loss) }
    let ce = log(3.0)
    let klQP = 0.5 * log(1.5) + 2 * 0.25 * log(0.75)  // KL(q ‖ p)
    let klPQ = (1.0 / 3) * log(2.0 / 3) + 2 * (1.0 / 3) * log(4.0 / 3)  // KL(p ‖ q)
    expectClose(loss(.ce), ce, tol, "ce = log 3")
    expectClose(loss(.kdForward(temperature: 1, lambda: 0.5)), 0.5 * ce + 0.5 * klQP, tol, "kd_forward")
    expectClose(loss(.kdReverse(temperature: 1, lambda: 0.5)), 0.5 * ce + 0.5 * klPQ, tol, "kd_reverse")
    expectClose(loss(.jsd(beta: 0)), klQP, tol, "jsd(0) = KL(q ‖ p)")
    expectClose(loss(.jsd(beta: 1)), klPQ, tol, "jsd(1) = KL(p ‖ q)")
    let m = [5.0 / 12, 7.0 / 24, 7.0 / 24]  // (q + p) / 2
    let klQM = 0.5 * log(0.5 / m[0]) + 2 * 0.25 * log(0.25 / m[1])
    let klPM = (1.0 / 3) * log((1.0 / 3) / m[0]) + 2 * (1.0 / 3) * log((1.0 / 3) / m[1])
    let jsdHalf = 0.5 * klQM + 0.5 * klPM
    expectClose(loss(.jsd(beta: 0.5)), jsdHalf, tol, "jsd(0.5)")
    // Top-1: the teacher's most likely token alone; renormalised, both put probability 1 on it.
    expectClose(loss(.topK(1)), 0, tol, "topk(1)")
    // Centred logits: teacher (2/3, -1/3, -1/3) log 2, student 0: the squared norm is (2/3) log² 2.
    expectClose(loss(.logitMSE), 2.0 / 3 * log(2.0) * log(2.0), tol, "logit_mse")
}

@Test func theLossesAgreeWhereTheirDefinitionsMeet() {
    let N = 6, V = 7
    var rng = SeededRNG(seed: 812)
    let student = randn(N * V, &rng), teacher = randn(N * V, &rng)
    let targets = (0..<N).map { _ in Int32(rng.nextInt(V)) }
    func loss(_ k: DistillationLoss, _ t: [Float] = teacher) -> Float {
        run(k, student: student, teacher: t, targets: targets, V: V).loss
    }
    let ce = loss(.ce)
    #expect(abs(loss(.kdForward(temperature: 3, lambda: 0)) - ce) < 1e-6, "λ = 0 is CE")
    #expect(abs(loss(.kdReverse(temperature: 3, lambda: 0)) - ce) < 1e-6, "λ = 0 is CE")
    // Top-K over the whole vocabulary is the cross-entropy against the teacher's distribution:
    // H(q, p) = KL(q ‖ p) + H(q), that is kd_forward(T = 1, λ = 1) + H(q).
    var hq: Double = 0
    for n in 0..<N {
        let row = Array(teacher[(n * V)..<((n + 1) * V)]).d
        let mx = row.max()!, e = row.map { exp($0 - mx) }, s = e.reduce(0, +)
        hq -= e.map { ($0 / s) * log($0 / s) }.reduce(0, +)
    }
    hq /= Double(N)
    #expect(abs(Double(loss(.topK(V))) - (Double(loss(.kdForward(temperature: 1, lambda: 1))) + hq)) < 1e-5)
    // A student equal to the teacher (up to a constant per row) has nothing left to learn.
    let shifted = teacher.enumerated().map { $0.element + Float($0.offset / V) }
    let same = run(.jsd(beta: 0.5), student: shifted, teacher: teacher, targets: targets, V: V)
    #expect(abs(same.loss) < 1e-6 && same.dlogits.allSatisfy { abs($0) < 1e-6 })
    let mse = run(.logitMSE, student: shifted, teacher: teacher, targets: targets, V: V)
    #expect(abs(mse.loss) < 1e-5 && mse.dlogits.allSatisfy { abs($0) < 1e-5 })
}

@Test func theSampledSupportFollowsTheTeacherAndItsSeed() {
    // Teacher probabilities 0.7, 0.2, 0.1 and 0 elsewhere (within float).
    let V = 8
    var row = [Float](repeating: -60, count: V)
    row[2] = log(0.7)
    row[5] = log(0.2)
    row[6] = log(0.1)
    row.withUnsafeBufferPointer { p in
        let r = p.baseAddress!
        #expect(sampledSupport(r, V, 1000, seed: 1, row: 0) == [2, 5, 6])
        #expect(sampledSupport(r, V, 3, seed: 1, row: 0) == sampledSupport(r, V, 3, seed: 1, row: 0))
        // One draw lands on each id about as often as the teacher says.
        var counts = [Int](repeating: 0, count: V)
        for n in 0..<4000 { for i in sampledSupport(r, V, 1, seed: 7, row: n) { counts[i] += 1 } }
        #expect(abs(Double(counts[2]) / 4000 - 0.7) < 0.03 && abs(Double(counts[5]) / 4000 - 0.2) < 0.03)
        // Rows and seeds draw independently.
        let a = (0..<50).map { sampledSupport(r, V, 2, seed: 3, row: $0) }
        let b = (0..<50).map { sampledSupport(r, V, 2, seed: 4, row: $0) }
        #expect(a != b)
    }
}

@Test func topKIndicesAreTheLargestWithTiesToTheLowerId() {
    let row: [Float] = [0.5, 2, 2, -1, 3, 0.5]
    row.withUnsafeBufferPointer { p in
        #expect(topKIndices(p.baseAddress!, 6, 3) == [4, 1, 2])
        #expect(topKIndices(p.baseAddress!, 6, 5) == [4, 1, 2, 0, 5])
        #expect(topKIndices(p.baseAddress!, 6, 99) == [4, 1, 2, 0, 5, 3])
    }
}

@Test func everyPositionMaskedGivesZeroLossAndGradient() {
    let r = run(
        .kdForward(temperature: 2, lambda: 0.5), student: [1, 2, 3, 4], teacher: [4, 3, 2, 1], targets: [-1, -1], V: 2)
    #expect(r.loss == 0 && r.count == 0 && r.dlogits == [0, 0, 0, 0])
}
