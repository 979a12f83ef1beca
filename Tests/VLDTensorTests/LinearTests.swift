// LinearTests.swift: linearForward/linearBackward against Reference.linear, with and without bias,
// on shapes that take each of the forward's two split strategies (rows, output channels).

import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 2e-6, rel: 2e-6)
private let gradTol = Tolerance(abs: 1e-5, rel: 1e-5)

/// (M, C, OC): small; many rows (row split with 2 threads); few rows, many outputs (channel split,
/// in 16-channel calls where OpenBLAS has small-matrix kernels); one row (sgemv, decoding); 32 rows
/// of a wide layer (the batched-decode shape).
private let linearShapes: [(Int, Int, Int)] = [(10, 8, 11), (40, 8, 12), (3, 8, 600), (1, 24, 70), (32, 40, 90)]

@Test(arguments: threadCounts, [0, 1, 2, 3, 4])
func linearMatchesReference(threads: Int, shape: Int) {
    let (M, C, OC) = linearShapes[shape]
    var rng = SeededRNG(seed: 201 + UInt64(shape))
    let x = randn(M * C, &rng), w = randn(OC * C, &rng, scale: 0.5), b = randn(OC, &rng), dout = randn(M * OC, &rng)
    let p = pool(threads)

    for withBias in [true, false] {
        var out = [Float](repeating: .nan, count: M * OC)
        if withBias {
            linearForward(out: &out, inp: x, weight: w, bias: b, M: M, C: C, OC: OC, pool: p)
        } else {
            linearForward(out: &out, inp: x, weight: w, bias: nil, M: M, C: C, OC: OC, pool: p)
        }
        let ref = Reference.linear(x.d, w: w.d, b: withBias ? b.d : nil, M: M, C: C, OC: OC)
        expectClose(out, ref, valueTol, "linear out (bias \(withBias), M \(M) OC \(OC))")
    }

    let ref = Reference.linearBackward(dout: dout.d, x: x.d, w: w.d, M: M, C: C, OC: OC)
    var dinp = [Float](repeating: prefill, count: M * C)
    var dw = [Float](repeating: prefill, count: OC * C), db = [Float](repeating: prefill, count: OC)
    linearBackward(dinp: &dinp, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, M: M, C: C, OC: OC, pool: p)
    expectClose(dinp, add(ref.dx, Double(prefill)), gradTol, "linear dinp (accumulated)")
    expectClose(dw, add(ref.dw, Double(prefill)), gradTol, "linear dweight (accumulated)")
    expectClose(db, add(ref.db, Double(prefill)), gradTol, "linear dbias (accumulated)")

    // Without a bias gradient the other two are unchanged.
    var dinp2 = [Float](repeating: prefill, count: M * C), dw2 = [Float](repeating: prefill, count: OC * C)
    linearBackward(dinp: &dinp2, dweight: &dw2, dbias: nil, dout: dout, inp: x, weight: w, M: M, C: C, OC: OC, pool: p)
    expectClose(dinp2, add(ref.dx, Double(prefill)), gradTol, "linear dinp (no dbias)")
    expectClose(dw2, add(ref.dw, Double(prefill)), gradTol, "linear dweight (no dbias)")
}

/// The executables re-execute with wider OpenBLAS kernels only when the CPU has them and OpenBLAS
/// chose narrower ones: Prescott on a virtual Xeon, Zen's AVX2 kernels on an AVX-512 EPYC.
@Test func blasReexecOnlyWidens() {
    #expect(BLAS.betterCoreType(chosen: "Prescott", supported: "Haswell") == "Haswell")
    #expect(BLAS.betterCoreType(chosen: "Zen", supported: "SkylakeX") == "SkylakeX")
    #expect(BLAS.betterCoreType(chosen: "Haswell", supported: "SkylakeX") == "SkylakeX")
    #expect(BLAS.betterCoreType(chosen: "SkylakeX", supported: "SkylakeX") == nil)
    #expect(BLAS.betterCoreType(chosen: "Cooperlake", supported: "SkylakeX") == nil)
    #expect(BLAS.betterCoreType(chosen: "Zen", supported: "Haswell") == nil)
    #expect(BLAS.betterCoreType(chosen: "Prescott", supported: nil) == nil)
}

/// The re-exec sets what is unset (the kernel family when wider ones exist, one OpenBLAS thread)
/// and keeps what the user set.
@Test func blasReexecKeepsTheUsersVariables() {
    #expect(
        BLAS.preferredEnvironment(chosenCore: "Zen", supportedCore: "SkylakeX", environment: [:])
            == ["OPENBLAS_CORETYPE": "SkylakeX", "OPENBLAS_NUM_THREADS": "1"])
    #expect(
        BLAS.preferredEnvironment(
            chosenCore: "Haswell", supportedCore: "SkylakeX", environment: ["OPENBLAS_CORETYPE": "Haswell"])
            == ["OPENBLAS_NUM_THREADS": "1"])
    #expect(
        BLAS.preferredEnvironment(
            chosenCore: "SkylakeX", supportedCore: "SkylakeX", environment: ["OPENBLAS_NUM_THREADS": "4"]) == nil)
}
