// NormTests.swift: layerNorm and rmsNorm, fast Float kernels against Reference (forward, cached
// statistics, accumulating backward), for a small shape and one large enough to split over threads.

import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 2e-6, rel: 2e-6)
private let gradTol = Tolerance(abs: 1e-5, rel: 1e-5)
private let eps: Float = 1e-5

/// Rows: 10 runs on one thread; 160 makes both forward (64 rows per thread) and backward split.
private let rowCounts = [10, 160]

@Test(arguments: threadCounts, rowCounts)
func layerNormMatchesReference(threads: Int, N: Int) {
    let C = 8
    var rng = SeededRNG(seed: 101)
    let x = randn(N * C, &rng, scale: 2).map { $0 + 0.5 }
    let w = randn(C, &rng), b = randn(C, &rng), dout = randn(N * C, &rng)
    let p = pool(threads)

    var out = [Float](repeating: .nan, count: N * C)
    var mean = [Float](repeating: .nan, count: N), rstd = mean
    layerNormForward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: eps, pool: p)
    expectClose(out, Reference.layerNorm(x.d, w: w.d, b: b.d, C: C, eps: Double(eps)), valueTol, "layerNorm out")
    var refMean = [Double](), refRstd = [Double]()
    for n in 0..<N {
        let row = x.d[(n * C)..<((n + 1) * C)]
        let m = row.reduce(0, +) / Double(C)
        refMean.append(m)
        refRstd.append(1 / (row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C) + Double(eps)).squareRoot())
    }
    expectClose(mean, refMean, valueTol, "layerNorm mean cache")
    expectClose(rstd, refRstd, valueTol, "layerNorm rstd cache")

    var dinp = [Float](repeating: prefill, count: N * C)
    var dw = [Float](repeating: prefill, count: C), db = dw
    layerNormBackward(
        dinp: &dinp, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, mean: mean, rstd: rstd,
        N: N, C: C, pool: p)
    let ref = Reference.layerNormBackward(dout: dout.d, x: x.d, w: w.d, C: C, eps: Double(eps))
    expectClose(dinp, add(ref.dx, Double(prefill)), gradTol, "layerNorm dinp (accumulated)")
    expectClose(dw, add(ref.dw, Double(prefill)), gradTol, "layerNorm dweight (accumulated)")
    expectClose(db, add(ref.db, Double(prefill)), gradTol, "layerNorm dbias (accumulated)")
}

@Test(arguments: threadCounts, rowCounts)
func rmsNormMatchesReference(threads: Int, N: Int) {
    let C = 8
    var rng = SeededRNG(seed: 102)
    let x = randn(N * C, &rng, scale: 2)
    let w = randn(C, &rng), dout = randn(N * C, &rng)
    let p = pool(threads)

    var out = [Float](repeating: .nan, count: N * C)
    var rrms = [Float](repeating: .nan, count: N)
    rmsNormForward(out: &out, rrms: &rrms, inp: x, weight: w, N: N, C: C, eps: eps, pool: p)
    expectClose(out, Reference.rmsNorm(x.d, w: w.d, C: C, eps: Double(eps)), valueTol, "rmsNorm out")
    let refR = (0..<N).map { n in
        1 / (x.d[(n * C)..<((n + 1) * C)].map { $0 * $0 }.reduce(0, +) / Double(C) + Double(eps)).squareRoot()
    }
    expectClose(rrms, refR, valueTol, "rmsNorm rrms cache")

    var dinp = [Float](repeating: prefill, count: N * C)
    var dw = [Float](repeating: prefill, count: C)
    rmsNormBackward(dinp: &dinp, dweight: &dw, dout: dout, inp: x, weight: w, rrms: rrms, N: N, C: C, pool: p)
    let ref = Reference.rmsNormBackward(dout: dout.d, x: x.d, w: w.d, C: C, eps: Double(eps))
    expectClose(dinp, add(ref.dx, Double(prefill)), gradTol, "rmsNorm dinp (accumulated)")
    expectClose(dw, add(ref.dw, Double(prefill)), gradTol, "rmsNorm dweight (accumulated)")
}

/// Results depend on the thread count only: two runs with the same pool are bitwise equal.
@Test(arguments: threadCounts)
func normBackwardIsDeterministic(threads: Int) {
    let N = 200, C = 8
    var rng = SeededRNG(seed: 103)
    let x = randn(N * C, &rng), w = randn(C, &rng), b = randn(C, &rng), dout = randn(N * C, &rng)
    func run() -> [Float] {
        var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
        layerNormForward(
            out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: eps, pool: pool(threads))
        var dinp = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
        layerNormBackward(
            dinp: &dinp, dweight: &dw, dbias: &db, dout: dout, inp: x, weight: w, mean: mean, rstd: rstd,
            N: N, C: C, pool: pool(threads))
        return out + dinp + dw + db
    }
    #expect(run() == run())
}
