// FastMathTests.swift: fastExp, fastTanh and fastSigmoid against libm in Double over dense sweeps,
// plus their clamping and saturation at the ends of the Float range.

import Foundation
import Testing
import VLDTensor

/// Every `step` from lo to hi, as Floats.
private func sweep(_ lo: Double, _ hi: Double, step: Double) -> [Float] {
    (0...Int(((hi - lo) / step).rounded())).map { Float(lo + Double($0) * step) }
}

@Test func fastExpRelativeError() {
    // A dense regular sweep plus tiny magnitudes of both signs (where n = 0 and r = x).
    var xs = sweep(-80, 80, step: 1.0 / 4096)
    for e in -40 ... -3 {
        for k in 0..<16 { let x = Float(Foundation.pow(2.0, Double(e)) * (1 + Double(k) / 16)); xs += [x, -x] }
    }
    var worst = (x: Float(0), err: 0.0)
    for x in xs {
        let ref = Foundation.exp(Double(x))
        let err = abs(Double(fastExp(x)) - ref) / ref
        if !(err <= worst.err) { worst = (x, err) }
    }
    #expect(worst.err < 3e-7, "fastExp worst relative error \(worst.err) at x = \(worst.x) (\(xs.count) points)")
    #expect(fastExp(0) == 1)
}

@Test func fastExpClampsToNormalRange() {
    for x: Float in [-87.3, -100, -1e4, -Float.greatestFiniteMagnitude, -.infinity] {
        let y = fastExp(x)
        #expect(y.isNormal && y > 0 && y < 1.3e-38, "fastExp(\(x)) = \(y)")
    }
    for x: Float in [88.3, 100, 1e4, Float.greatestFiniteMagnitude, .infinity] {
        let y = fastExp(x)
        #expect(y.isFinite && y > 1e38, "fastExp(\(x)) = \(y)")
    }
}

@Test func fastTanhAbsoluteError() {
    var xs = sweep(-20, 20, step: 1.0 / 8192)
    xs += [1e-6, -1e-6, 1e-30, 50, -50, 1e4, -1e4, .greatestFiniteMagnitude, -.greatestFiniteMagnitude]
    var worst = (x: Float(0), err: 0.0)
    for x in xs {
        let err = abs(Double(fastTanh(x)) - Foundation.tanh(Double(x)))
        if !(err <= worst.err) { worst = (x, err) }
    }
    #expect(worst.err < 1e-6, "fastTanh worst absolute error \(worst.err) at x = \(worst.x)")
    #expect(fastTanh(100) == 1 && fastTanh(-100) == -1)
}

@Test func fastSigmoidAbsoluteError() {
    var worst = (x: Float(0), err: 0.0)
    for x in sweep(-100, 100, step: 1.0 / 1024) {
        let err = abs(Double(fastSigmoid(x)) - 1 / (1 + Foundation.exp(-Double(x))))
        if !(err <= worst.err) { worst = (x, err) }
    }
    #expect(worst.err < 1e-6, "fastSigmoid worst absolute error \(worst.err) at x = \(worst.x)")
}
