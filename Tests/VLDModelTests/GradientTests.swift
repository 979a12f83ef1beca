// GradientTests.swift: the fast Float backward pass of the whole model against central finite
// differences of the Double reference forward, for several schedules and both architectures.

import Testing
import VLDModel
import VLDTensor

struct GradCase: CustomStringConvertible, Sendable {
    let arch: Arch
    let schedule: String
    let kvHeads: Int
    var description: String { "\(arch.rawValue) \(schedule) kv=\(kvHeads)" }
}

@Test(arguments: [
    GradCase(arch: .gpt2, schedule: "base", kvHeads: 2),
    GradCase(arch: .gpt2, schedule: "cyc(2)", kvHeads: 2),
    GradCase(arch: .gpt2, schedule: "inv(1)", kvHeads: 2),
    GradCase(arch: .gpt2, schedule: "[1,0,1,1]", kvHeads: 2),
    GradCase(arch: .llama, schedule: "base", kvHeads: 1),
    GradCase(arch: .llama, schedule: "cyc(2)", kvHeads: 1),
    GradCase(arch: .llama, schedule: "inv(1)", kvHeads: 2),
    GradCase(arch: .llama, schedule: "[1,0,1,1]", kvHeads: 1),
])
func wholeModelGradientMatchesFiniteDifferences(_ c: GradCase) throws {
    let cfg = ModelConfig(arch: c.arch, dModel: 8, layers: 2, heads: 2, kvHeads: c.kvHeads, ffnHidden: 12, context: 6,
                          vocab: 7, schedule: try LayerSchedule(parsing: c.schedule))
    let pool = ThreadPool(threads: 2)
    var rng = SeededRNG(seed: 42)
    let model = try Transformer(config: cfg, pool: pool, rng: &rng)
    // Larger weights than the 0.02 init so every path carries a visible gradient; norms and
    // biases perturbed away from 1 and 0.
    var p = model.params.array().map { Float($0) }
    for i in p.indices { p[i] = Float(rng.nextNormal() * 0.5) + (i >= model.layout.decayedCount ? 0.5 : 0) }
    model.params.load(p)
    let B = 2, T = 5
    let inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    var targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    targets[3] = -1  // an ignored position
    model.zeroGrads()
    let loss = try model.forward(inputs: inputs, targets: targets, B: B, T: T)!
    model.backward()
    let analytic = model.grads.array()

    let pd = p.map(Double.init)
    let ins = inputs.map(Int.init), tgs = targets.map(Int.init)
    let ref = referenceLoss(cfg, layout: model.layout, schedule: model.schedule, params: pd, inputs: ins, targets: tgs, B: B, T: T)
    #expect(abs(Double(loss) - ref) < 1e-5 * max(1, abs(ref)), "loss \(loss) vs reference \(ref)")

    var worst = (excess: 0.0, index: -1, fd: 0.0, got: 0.0)
    let h = 1e-5
    let scale = analytic.map { abs(Double($0)) }.max()!
    for i in pd.indices {
        var plus = pd, minus = pd
        plus[i] += h
        minus[i] -= h
        let fd = (referenceLoss(cfg, layout: model.layout, schedule: model.schedule, params: plus, inputs: ins, targets: tgs, B: B, T: T)
            - referenceLoss(cfg, layout: model.layout, schedule: model.schedule, params: minus, inputs: ins, targets: tgs, B: B, T: T)) / (2 * h)
        let tol = 1e-4 * scale + 2e-3 * abs(fd)
        let err = abs(Double(analytic[i]) - fd)
        if err - tol > worst.excess { worst = (err - tol, i, fd, Double(analytic[i])) }
    }
    let name = worst.index >= 0 ? model.layout.tensors.last { $0.offset <= worst.index }!.name : "-"
    #expect(worst.index == -1, "worst gradient mismatch at \(worst.index) (\(name)): finite difference \(worst.fd), backward \(worst.got)")
}
