// Support.swift: shared fixtures for the kernel tests: one pool per thread count, seeded random
// inputs, the tolerance check (abs + rel*|ref|, reporting the worst element), and central-difference
// gradients of a Double function.

import Foundation
import Testing
import VLDTensor

/// A new pool (its first job may arrive before its threads have started; see
/// `freshPoolRunsItsFirstJob`).
func startedPool(threads: Int) -> ThreadPool { ThreadPool(threads: threads) }

/// One pool per thread count, shared by all tests (a pool serialises concurrent `run` calls).
let sharedPools: [Int: ThreadPool] = [1: startedPool(threads: 1), 2: startedPool(threads: 2)]

func pool(_ threads: Int) -> ThreadPool { sharedPools[threads]! }

/// The thread counts every kernel test runs with.
let threadCounts = [1, 2]

/// Value the backward tests pre-fill gradient buffers with, to check that kernels accumulate.
let prefill: Float = 0.375

/// `n` standard normal draws times `scale`, rounded to Float (so Float and Double kernels see
/// exactly the same inputs).
func randn(_ n: Int, _ rng: inout SeededRNG, scale: Double = 1) -> [Float] {
    (0..<n).map { _ in Float(rng.nextNormal() * scale) }
}

/// `n` uniform draws in [lo, hi).
func uniform(_ n: Int, _ rng: inout SeededRNG, _ lo: Double, _ hi: Double) -> [Float] {
    (0..<n).map { _ in Float(lo + (hi - lo) * rng.nextDouble()) }
}

extension Array where Element == Float {
    var d: [Double] { map(Double.init) }
}

extension Array where Element == Double {
    var f: [Float] { map(Float.init) }
}

/// Elementwise a + b.
func add(_ a: [Double], _ b: [Double]) -> [Double] { zip(a, b).map { $0 + $1 } }

/// Elementwise a + c.
func add(_ a: [Double], _ c: Double) -> [Double] { a.map { $0 + c } }

/// sum(w * x), the random linear functional the gradient checks differentiate.
func dot(_ w: [Double], _ x: [Double]) -> Double { zip(w, x).reduce(0) { $0 + $1.0 * $1.1 } }

/// A tolerance `abs + rel * |ref|`.
struct Tolerance: CustomStringConvertible {
    var abs: Double
    var rel: Double
    var description: String { "abs \(abs) + rel \(rel)*|ref|" }
}

/// Worst element of `got` against `ref` measured in units of the tolerance (> 1 fails).
struct Mismatch {
    var index = -1
    var got = 0.0
    var ref = 0.0
    var ratio = 0.0
    var failures = 0
}

func worstMismatch(_ got: [Double], _ ref: [Double], _ tol: Tolerance) -> Mismatch {
    var w = Mismatch()
    for i in 0..<min(got.count, ref.count) {
        let err = Swift.abs(got[i] - ref[i])
        let ratio = err.isNaN ? .infinity : err / (tol.abs + tol.rel * Swift.abs(ref[i]))
        if ratio > 1 { w.failures += 1 }
        if ratio > w.ratio || w.index < 0 {
            w = Mismatch(index: i, got: got[i], ref: ref[i], ratio: ratio, failures: w.failures)
        }
    }
    return w
}

/// Expects |got - ref| <= abs + rel*|ref| elementwise; on failure reports the worst element.
func expectClose(
    _ got: [Double], _ ref: [Double], _ tol: Tolerance, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        got.count == ref.count, "\(what): \(got.count) values, reference has \(ref.count)",
        sourceLocation: sourceLocation)
    let w = worstMismatch(got, ref, tol)
    #expect(
        w.ratio <= 1,
        """
        \(what): \(w.failures) of \(ref.count) elements outside \(tol); worst [\(w.index)] got \(w.got) \
        ref \(w.ref) |err| \(Swift.abs(w.got - w.ref)) (\(w.ratio)x tolerance)
        """,
        sourceLocation: sourceLocation)
}

func expectClose(
    _ got: [Float], _ ref: [Double], _ tol: Tolerance, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectClose(got.d, ref, tol, what, sourceLocation: sourceLocation)
}

func expectClose(
    _ got: Double, _ ref: Double, _ tol: Tolerance, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectClose([got], [ref], tol, what, sourceLocation: sourceLocation)
}

/// Central-difference gradient of `f` at `x`, step `eps` (in Double throughout).
func numericGradient(_ x: [Double], eps: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var g = [Double](repeating: 0, count: x.count)
    var xp = x
    for i in 0..<x.count {
        xp[i] = x[i] + eps
        let fp = f(xp)
        xp[i] = x[i] - eps
        let fm = f(xp)
        xp[i] = x[i]
        g[i] = (fp - fm) / (2 * eps)
    }
    return g
}

/// Tolerance for an analytic Double gradient against central differences with eps 1e-6.
let fdTolerance = Tolerance(abs: 1e-7, rel: 1e-6)
