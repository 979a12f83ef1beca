// ActivationTests.swift: GELU (tanh form), SwiGLU and the residual add against Reference, with
// backward passes checked against central differences of the Reference forward composed with a
// random linear functional. Sizes: a small one, and one past the kernels' 16384-element minimum per
// thread so that two threads split it.

import Foundation
import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 1e-5, rel: 1e-5)
private let gradTol = Tolerance(abs: 1e-5, rel: 1e-4)

/// Inputs spanning the linear region and both saturated tails.
private func activationInputs(_ n: Int, _ rng: inout SeededRNG) -> [Float] {
    var x = randn(n, &rng, scale: 2.5)
    let extremes: [Float] = [0, -0.0, 1e-4, -1e-4, 5, -5, 10, -10, 30, -30, 100, -100]
    for (i, e) in extremes.enumerated() where i < n { x[i] = e }
    return x
}

@Test(arguments: threadCounts, [40, 40_000])
func geluMatchesReference(threads: Int, N: Int) {
    var rng = SeededRNG(seed: 501)
    let x = activationInputs(N, &rng), dout = randn(N, &rng)
    let p = pool(threads)

    var out = [Float](repeating: .nan, count: N)
    geluForward(out: &out, inp: x, N: N, pool: p)
    expectClose(out, Reference.gelu(x.d), valueTol, "gelu out")

    var dinp = [Float](repeating: prefill, count: N)
    geluBackward(dinp: &dinp, inp: x, dout: dout, N: N, pool: p)
    let ref = zip(Reference.geluGrad(x.d), dout.d).map { Double(prefill) + $0 * $1 }
    expectClose(dinp, ref, gradTol, "gelu dinp (accumulated) vs Reference.geluGrad")
    var tanhCache = [Float](repeating: .nan, count: N), fresh = [Float](repeating: .nan, count: N)
    geluForward(out: &out, inp: x, N: N, pool: p, tanhCache: &tanhCache)
    geluBackward(dinp: &fresh, inp: x, cached: tanhCache, dout: dout, N: N, pool: p, overwrite: true)
    expectClose(fresh, ref.map { $0 - Double(prefill) }, gradTol, "gelu dinp (overwritten, cached tanh)")

    if N <= 40 {
        let fd = numericGradient(x.d) { dot(dout.d, Reference.gelu($0)) }
        expectClose(dinp, add(fd, Double(prefill)), gradTol, "gelu dinp vs finite differences")
    }
}

@Test(arguments: threadCounts, [10, 4_100])
func swigluMatchesReference(threads: Int, M: Int) {
    let F = 8
    var rng = SeededRNG(seed: 502)
    let x = activationInputs(M * 2 * F, &rng), dout = randn(M * F, &rng)
    let p = pool(threads)

    var out = [Float](repeating: .nan, count: M * F)
    swigluForward(out: &out, inp: x, M: M, F: F, pool: p)
    expectClose(out, Reference.swiglu(x.d, M: M, F: F), valueTol, "swiglu out")

    // Analytic gradient in Double (checked against finite differences below and in ReferenceGradientTests).
    var ref = [Double](repeating: Double(prefill), count: M * 2 * F)
    for m in 0..<M {
        for i in 0..<F {
            let g = Double(x[m * 2 * F + i]), u = Double(x[m * 2 * F + F + i]), d = Double(dout[m * F + i])
            let sig = 1 / (1 + exp(-g))
            ref[m * 2 * F + i] += d * u * sig * (1 + g * (1 - sig))
            ref[m * 2 * F + F + i] += d * g * sig
        }
    }
    var dinp = [Float](repeating: prefill, count: M * 2 * F)
    swigluBackward(dinp: &dinp, inp: x, dout: dout, M: M, F: F, pool: p)
    expectClose(dinp, ref, gradTol, "swiglu dinp (accumulated)")
    var fresh = [Float](repeating: .nan, count: M * 2 * F)
    swigluBackward(dinp: &fresh, inp: x, dout: dout, M: M, F: F, pool: p, overwrite: true)
    expectClose(fresh, ref.map { $0 - Double(prefill) }, gradTol, "swiglu dinp (overwritten)")

    if M <= 10 {
        let fd = numericGradient(x.d) { dot(dout.d, Reference.swiglu($0, M: M, F: F)) }
        expectClose(dinp, add(fd, Double(prefill)), gradTol, "swiglu dinp vs finite differences")
        expectClose(ref, add(fd, Double(prefill)), fdTolerance, "swiglu Double gradient vs finite differences")
    }
}

@Test(arguments: threadCounts, [40, 40_000])
func residualMatchesReference(threads: Int, N: Int) {
    var rng = SeededRNG(seed: 503)
    let a = randn(N, &rng), b = randn(N, &rng), dout = randn(N, &rng)
    let p = pool(threads)

    var out = [Float](repeating: .nan, count: N)
    residualForward(out: &out, a: a, b: b, N: N, pool: p)
    expectClose(out, add(a.d, b.d), Tolerance(abs: 0, rel: 1e-7), "residual out")

    var da = [Float](repeating: prefill, count: N), db = [Float](repeating: -prefill, count: N)
    residualBackward(da: &da, db: &db, dout: dout, N: N, pool: p)
    expectClose(da, add(dout.d, Double(prefill)), Tolerance(abs: 1e-7, rel: 1e-7), "residual da (accumulated)")
    expectClose(db, add(dout.d, -Double(prefill)), Tolerance(abs: 1e-7, rel: 1e-7), "residual db (accumulated)")
}
