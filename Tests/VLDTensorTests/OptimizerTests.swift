// OptimizerTests.swift: AdamW against Reference.adamW over several steps, the global gradient norm
// and clipping against Double, their run-to-run determinism, and the learning-rate schedule.

import Testing
import VLDTensor

#if canImport(Glibc)
    import Glibc
#endif

private let paramTol = Tolerance(abs: 1e-6, rel: 1e-6)
private let momentTol = Tolerance(abs: 1e-7, rel: 1e-5)

/// N = 50 runs on one thread; N = 20000 (8192 per thread minimum) on two.
@Test(arguments: threadCounts, [50, 20_000])
func adamWMatchesReference(threads: Int, N: Int) {
    var rng = SeededRNG(seed: 801)
    let config = AdamWConfig(beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)
    let p = pool(threads)
    for weightDecay: Float in [0.1, 0] {
        var params = randn(N, &rng)
        var m = [Float](repeating: 0, count: N), v = m
        var (rp, rm, rv) = (params.d, m.d, v.d)
        for t in 1...3 {
            let grads = randn(N, &rng, scale: t == 2 ? 1e-3 : 1)
            let lr: Float = 0.01 * Float(t)
            adamWUpdate(
                params: &params, grads: grads, m: &m, v: &v, N: N, lr: lr, t: t, config: config,
                weightDecay: weightDecay, pool: p)
            (rp, rm, rv) = Reference.adamW(
                params: rp, grads: grads.d, m: rm, v: rv, lr: Double(lr), t: t, beta1: Double(config.beta1),
                beta2: Double(config.beta2), eps: Double(config.eps), weightDecay: Double(weightDecay))
            expectClose(params, rp, paramTol, "AdamW params after step \(t) (wd \(weightDecay))")
            expectClose(m, rm, momentTol, "AdamW m after step \(t)")
            expectClose(v, rv, momentTol, "AdamW v after step \(t)")
        }
    }
}

private func referenceNorm(_ g: [Float]) -> Double { g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

/// Sizes around the 1024-element blocks and thread chunks.
private let normSizes = [1, 7, 1023, 1024, 1025, 5_000, 100_003]

@Test(arguments: threadCounts)
func gradNormMatchesReference(threads: Int) {
    var rng = SeededRNG(seed: 802)
    for N in normSizes {
        let g = randn(N, &rng, scale: 3)
        let norm = gradNorm(g, N: N, pool: pool(threads))
        expectClose(Double(norm), referenceNorm(g), Tolerance(abs: 0, rel: 1e-6), "gradNorm N \(N)")
        // Same thread count, same bits.
        for _ in 0..<3 {
            #expect(gradNorm(g, N: N, pool: pool(threads)).bitPattern == norm.bitPattern, "gradNorm repeatable, N \(N)")
        }
    }
    let empty: [Float] = []
    #expect(gradNorm(empty, N: 0, pool: pool(threads)) == 0)
}

@Test(arguments: threadCounts, [1_000, 40_000])
func clipGradNormScalesToMaxNorm(threads: Int, N: Int) {
    var rng = SeededRNG(seed: 803)
    let g0 = randn(N, &rng)
    let before = referenceNorm(g0)
    let p = pool(threads)

    // Norm above maxNorm: returns the norm before clipping, leaves the norm at maxNorm, keeps the direction.
    let maxNorm: Float = 0.5
    var g = g0
    let returned = clipGradNorm(&g, N: N, maxNorm: maxNorm, pool: p)
    expectClose(Double(returned), before, Tolerance(abs: 0, rel: 1e-6), "clipGradNorm returns the unclipped norm")
    expectClose(referenceNorm(g), Double(maxNorm), Tolerance(abs: 0, rel: 1e-5), "norm after clipping")
    expectClose(
        g, g0.d.map { $0 * Double(maxNorm) / before }, Tolerance(abs: 1e-9, rel: 1e-5), "clipped gradient direction")

    // Repeated runs with the same thread count are bitwise equal.
    var g2 = g0
    let returned2 = clipGradNorm(&g2, N: N, maxNorm: maxNorm, pool: p)
    #expect(returned2.bitPattern == returned.bitPattern && g2 == g, "clipping is repeatable")

    // Norm below maxNorm, or maxNorm 0 (disabled): untouched.
    for limit: Float in [Float(before) * 2, 0] {
        var h = g0
        let r = clipGradNorm(&h, N: N, maxNorm: limit, pool: p)
        #expect(h == g0, "no clipping at maxNorm \(limit)")
        expectClose(Double(r), before, Tolerance(abs: 0, rel: 1e-6), "returned norm at maxNorm \(limit)")
    }
}

@Test func lrScheduleShape() {
    let peak: Float = 1e-3, floor: Float = 1e-4
    let s = LRSchedule(peak: peak, floor: floor, warmup: 10, total: 110)
    let tol = Tolerance(abs: 1e-12, rel: 1e-6)
    // Linear warmup: step i (0-based) gets peak * (i+1) / warmup, reaching peak at the last warmup step.
    for i in 0..<10 { expectClose(Double(s.lr(at: i)), Double(peak) * Double(i + 1) / 10, tol, "warmup step \(i)") }
    expectClose(Double(s.lr(at: 9)), Double(peak), tol, "peak at end of warmup")
    expectClose(Double(s.lr(at: 10)), Double(peak), tol, "cosine starts at peak")
    // Cosine: halfway through the decay the rate is halfway between peak and floor.
    expectClose(Double(s.lr(at: 60)), Double(floor + peak) / 2, tol, "cosine midpoint")
    expectClose(
        Double(s.lr(at: 35)), Double(floor) + Double(peak - floor) * 0.5 * (1 + cos(Double.pi / 4)), tol,
        "cosine quarter")
    // Floor at total and after.
    #expect(s.lr(at: 110) == floor && s.lr(at: 5_000) == floor)
    #expect(s.lr(at: 109) > floor)
    // Decay is monotone.
    for i in 10..<115 { #expect(s.lr(at: i + 1) <= s.lr(at: i), "monotone at step \(i)") }
    // No warmup: starts at peak.
    #expect(LRSchedule(peak: peak, floor: floor, warmup: 0, total: 100).lr(at: 0) == peak)
}
