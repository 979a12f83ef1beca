// KernelPathTests.swift: every instruction-set path of CKernels that this CPU can run, called
// directly (not through the process-wide choice), against the naive Double references, on lengths
// that exercise full vectors, the 4-vector unrolled reductions and scalar tails of each width.
// A path the CPU lacks is reported as skipped, never passed.

import Foundation
import Testing
import VLDTensor

private let lengths = [1, 3, 15, 16, 17, 64, 100, 1000]

/// Every path, with the table when this CPU can run it.
private let paths = KernelPath.allCases

private struct KernelPathUnavailable: Error, CustomStringConvertible {
    let path: KernelPath
    var description: String { "this CPU cannot run the \(path) kernels" }
}

@Test func activePathIsTheWidestAvailableUnlessForced() throws {
    let widest = Kernels.available.last!
    if let forced = ProcessInfo.processInfo.environment["VLD_KERNELS"], !forced.isEmpty,
        let want = KernelPath.allCases.first(where: { $0.description == forced }), Kernels.available.contains(want)
    {
        #expect(Kernels.active.path == want)
    } else {
        #expect(Kernels.active.path == widest)
    }
    #expect(Kernels.available.contains(.generic))
}

@Test(arguments: paths)
func kernelReductionsMatchReference(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        var rng = SeededRNG(seed: 901)
        for n in lengths {
            let a = randn(n, &rng), b = randn(n, &rng)
            let refDot = zip(a.d, b.d).reduce(0) { $0 + $1.0 * $1.1 }
            let refSum = a.d.reduce(0, +)
            let gotDot = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { k.dot(pa.baseAddress!, $0.baseAddress!, n) }
            }
            let gotSum = a.withUnsafeBufferPointer { k.sum($0.baseAddress!, n) }
            let scale = Double(n).squareRoot()
            expectClose(Double(gotDot), refDot, Tolerance(abs: 2e-6 * scale, rel: 1e-6), "\(path) dot n \(n)")
            expectClose(Double(gotSum), refSum, Tolerance(abs: 2e-6 * scale, rel: 1e-6), "\(path) sum n \(n)")
            let gotMax = a.withUnsafeBufferPointer { k.max($0.baseAddress!, n) }
            #expect(gotMax == a.max()!, "\(path) max n \(n)")
            var ex = [Float](repeating: .nan, count: n)
            a.withUnsafeBufferPointer { k.scaledExp(&ex, $0.baseAddress!, scale: 0.5, shift: 1.25, n) }
            expectClose(
                ex, a.d.map { Foundation.exp($0 * 0.5 - 1.25) }, Tolerance(abs: 1e-7, rel: 1e-6),
                "\(path) scaledExp n \(n)")
            var y = randn(n, &rng)
            let refY = zip(y.d, a.d).map { $0 + 0.75 * $1 }
            a.withUnsafeBufferPointer { k.axpy(&y, 0.75, $0.baseAddress!, n) }
            expectClose(y, refY, Tolerance(abs: 1e-6, rel: 1e-6), "\(path) axpy n \(n)")
        }
    }
}

@Test(arguments: paths)
func kernelSoftmaxAndActivationsMatchReference(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        var rng = SeededRNG(seed: 902)
        for n in lengths {
            // softmax, with a large offset (max subtraction) and a very negative entry (underflow)
            var p = randn(n, &rng, scale: 3).map { $0 + 40 }
            if n > 2 { p[1] = -200 }
            let mx = p.d.max()!
            let e = p.d.map { Foundation.exp($0 - mx) }
            let z = e.reduce(0, +)
            k.softmax(&p, n)
            expectClose(p, e.map { $0 / z }, Tolerance(abs: 1e-7, rel: 2e-6), "\(path) softmax n \(n)")

            let x = randn(n, &rng, scale: 2) + [9, -9, 0.5].prefix(max(0, min(3, n - 1)))
            let m = x.count
            var out = [Float](repeating: .nan, count: m), cache = [Float](repeating: .nan, count: m)
            k.geluForward(&out, x, nil, m)
            expectClose(out, Reference.gelu(x.d), Tolerance(abs: 1e-6, rel: 1e-5), "\(path) gelu n \(m)")
            k.geluForward(&out, x, &cache, m)
            expectClose(out, Reference.gelu(x.d), Tolerance(abs: 1e-6, rel: 1e-5), "\(path) gelu cached n \(m)")
            let dout = randn(m, &rng)
            let refGrad = zip(Reference.geluGrad(x.d), dout.d).map { Double(prefill) + $0 * $1 }
            var dinp = [Float](repeating: prefill, count: m)
            k.geluBackward(&dinp, x, nil, dout, m)
            expectClose(dinp, refGrad, Tolerance(abs: 2e-6, rel: 1e-5), "\(path) gelu backward n \(m)")
            dinp = [Float](repeating: prefill, count: m)
            k.geluBackward(&dinp, x, cache, dout, m)
            expectClose(dinp, refGrad, Tolerance(abs: 2e-6, rel: 1e-5), "\(path) gelu backward cached n \(m)")

            let gate = randn(n, &rng, scale: 3), up = randn(n, &rng)
            var sw = [Float](repeating: .nan, count: n)
            k.swigluForward(&sw, gate, up, n)
            expectClose(
                sw, Reference.swiglu(gate.d + up.d, M: 1, F: n), Tolerance(abs: 1e-6, rel: 1e-5),
                "\(path) swiglu n \(n)")
        }
    }
}

/// Every `step` from lo to hi, as Floats.
private func sweep(_ lo: Double, _ hi: Double, step: Double) -> [Float] {
    (0...Int(((hi - lo) / step).rounded())).map { Float(lo + Double($0) * step) }
}

@Test(arguments: paths)
func kernelExpRelativeErrorAndClamping(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        // A dense regular sweep plus tiny magnitudes of both signs (where n = 0 and r = x).
        var xs = sweep(-80, 80, step: 1.0 / 4096)
        for e in -40 ... -3 {
            for j in 0..<16 {
                let x = Float(Foundation.pow(2.0, Double(e)) * (1 + Double(j) / 16))
                xs += [x, -x]
            }
        }
        var ys = [Float](repeating: .nan, count: xs.count)
        k.scaledExp(&ys, xs, scale: 1, shift: 0, xs.count)
        var worst = (x: Float(0), err: 0.0)
        for (x, y) in zip(xs, ys) {
            let ref = Foundation.exp(Double(x))
            let err = abs(Double(y) - ref) / ref
            if !(err <= worst.err) { worst = (x, err) }
        }
        #expect(worst.err < 3e-7, "\(path) exp worst relative error \(worst.err) at x = \(worst.x)")
        // Clamped to the normal range at both ends, infinities included.
        let low: [Float] = [-87.3, -100, -1e4, -Float.greatestFiniteMagnitude, -.infinity]
        let high: [Float] = [88.3, 100, 1e4, Float.greatestFiniteMagnitude, .infinity]
        var lo = [Float](repeating: .nan, count: 5), hi = lo
        k.scaledExp(&lo, low, scale: 1, shift: 0, 5)
        k.scaledExp(&hi, high, scale: 1, shift: 0, 5)
        #expect(lo.allSatisfy { $0.isNormal && $0 > 0 && $0 < 1.3e-38 }, "\(path) exp of very negative x: \(lo)")
        #expect(hi.allSatisfy { $0.isFinite && $0 > 1e38 }, "\(path) exp of very large x: \(hi)")
    }
}

@Test(arguments: paths)
func kernelNormRowsMatchReference(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        var rng = SeededRNG(seed: 905)
        for c in [3, 16, 17, 64, 100] {
            let x = randn(c, &rng, scale: 2).map { $0 + 0.5 }, w = randn(c, &rng), b = randn(c, &rng)
            let dout = randn(c, &rng)
            var out = [Float](repeating: .nan, count: c)
            let (m, r) = k.layerNormRow(&out, x, w, b, c, eps: 1e-5)
            expectClose(
                out, Reference.layerNorm(x.d, w: w.d, b: b.d, C: c, eps: 1e-5), Tolerance(abs: 2e-6, rel: 2e-5),
                "\(path) layernorm c \(c)")
            var dx = [Float](repeating: prefill, count: c), dw = [Float](repeating: prefill, count: c)
            var db = [Float](repeating: prefill, count: c)
            k.layerNormRowBackward(dx: &dx, dw: &dw, db: &db, dout: dout, x: x, w: w, mean: m, rstd: r, c)
            let (rdx, rdw, rdb) = Reference.layerNormBackward(dout: dout.d, x: x.d, w: w.d, C: c, eps: 1e-5)
            let tol = Tolerance(abs: 1e-5, rel: 1e-4)
            expectClose(dx, add(rdx, Double(prefill)), tol, "\(path) layernorm dx c \(c)")
            expectClose(dw, add(rdw, Double(prefill)), tol, "\(path) layernorm dw c \(c)")
            expectClose(db, add(rdb, Double(prefill)), tol, "\(path) layernorm db c \(c)")

            let rr = k.rmsNormRow(&out, x, w, c, eps: 1e-5)
            expectClose(
                out, Reference.rmsNorm(x.d, w: w.d, C: c, eps: 1e-5), Tolerance(abs: 2e-6, rel: 2e-5),
                "\(path) rmsnorm c \(c)")
            dx = [Float](repeating: prefill, count: c); dw = [Float](repeating: prefill, count: c)
            k.rmsNormRowBackward(dx: &dx, dw: &dw, dout: dout, x: x, w: w, rrms: rr, c)
            let (sdx, sdw) = Reference.rmsNormBackward(dout: dout.d, x: x.d, w: w.d, C: c, eps: 1e-5)
            expectClose(dx, add(sdx, Double(prefill)), tol, "\(path) rmsnorm dx c \(c)")
            expectClose(dw, add(sdw, Double(prefill)), tol, "\(path) rmsnorm dw c \(c)")

            let gate = randn(c, &rng, scale: 3), up = randn(c, &rng)
            var dg = [Float](repeating: .nan, count: c), du = [Float](repeating: .nan, count: c)
            k.swigluBackward(dgate: &dg, dup: &du, gate: gate, up: up, dout: dout, c, overwrite: true)
            let sig = gate.d.map { 1 / (1 + Foundation.exp(-$0)) }
            var rdg = [Double](repeating: 0, count: c), rdu = [Double](repeating: 0, count: c)
            for i in 0..<c {
                let d = Double(dout[i]), g = Double(gate[i]), u = Double(up[i])
                rdg[i] = d * u * sig[i] * (1 + g * (1 - sig[i]))
                rdu[i] = d * g * sig[i]
            }
            expectClose(dg, rdg, Tolerance(abs: 1e-6, rel: 1e-5), "\(path) swiglu dgate c \(c)")
            expectClose(du, rdu, Tolerance(abs: 1e-6, rel: 1e-5), "\(path) swiglu dup c \(c)")
        }
    }
}

@Test(arguments: paths)
func kernelAdamWMatchesReference(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        var rng = SeededRNG(seed: 903)
        for n in lengths {
            var p = randn(n, &rng), m = randn(n, &rng, scale: 0.1), v = uniform(n, &rng, 0, 0.01)
            let g = randn(n, &rng)
            let (rp, rm, rv) = Reference.adamW(
                params: p.d, grads: g.d, m: m.d, v: v.d, lr: 1e-2, t: 3, beta1: 0.9, beta2: 0.95, eps: 1e-8,
                weightDecay: 0.1)
            let c1 = 1 / (1 - powf(0.9, 3)), c2 = 1 / (1 - powf(0.95, 3))
            k.adamW(
                params: &p, grads: g, m: &m, v: &v, n: n, lr: 1e-2, beta1: 0.9, beta2: 0.95, c1: c1, c2: c2, eps: 1e-8,
                weightDecay: 0.1)
            expectClose(m, rm, Tolerance(abs: 1e-7, rel: 1e-6), "\(path) adamw m n \(n)")
            expectClose(v, rv, Tolerance(abs: 1e-9, rel: 1e-6), "\(path) adamw v n \(n)")
            expectClose(p, rp, Tolerance(abs: 1e-6, rel: 1e-5), "\(path) adamw params n \(n)")
        }
    }
}

@Test(arguments: paths)
func kernelDecodeAttentionMatchesReference(path: KernelPath) throws {
    try withKnownIssueIfUnavailable(path) { k in
        var rng = SeededRNG(seed: 904)
        for (n, hs, stride) in [(1, 8, 8), (5, 16, 16), (33, 32, 48), (80, 64, 64), (7, 12, 12)] {
            let q = randn(hs, &rng), keys = randn(n * stride, &rng), values = randn(n * stride, &rng)
            let scale = 1 / Double(hs).squareRoot()
            let scores = (0..<n).map { j in
                (0..<hs).reduce(0.0) { $0 + Double(q[$1]) * Double(keys[j * stride + $1]) } * scale
            }
            let mx = scores.max()!
            let e = scores.map { Foundation.exp($0 - mx) }
            let z = e.reduce(0, +)
            let ref = (0..<hs).map { d in (0..<n).reduce(0.0) { $0 + e[$1] / z * Double(values[$1 * stride + d]) } }
            var out = [Float](repeating: .nan, count: hs), scratch = [Float](repeating: .nan, count: n)
            k.attentionDecode(
                out: &out, q: q, keys: keys, values: values, n: n, hs: hs, stride: stride, scale: Float(scale),
                scratch: &scratch)
            expectClose(out, ref, Tolerance(abs: 2e-6, rel: 2e-5), "\(path) decode attention n \(n) hs \(hs)")
        }
    }
}

/// Runs `body` with the path's kernels; a path this CPU lacks is recorded as a known issue (shown
/// as such in the test report), so a machine without AVX-512 does not silently pass it.
private func withKnownIssueIfUnavailable(_ path: KernelPath, _ body: (KernelTable) throws -> Void) throws {
    guard let k = Kernels.table(path) else {
        withKnownIssue("this CPU cannot run the \(path) kernels; the path is untested here") {
            throw KernelPathUnavailable(path: path)
        }
        return
    }
    try body(k)
}
