// GradientTests.swift: the fast Float backward pass of the whole model against central finite
// differences of the Double reference forward, for several schedules and both architectures.

import Testing
import VLDModel
import VLDTensor

struct GradCase: CustomStringConvertible, Sendable {
    let arch: Arch
    let schedule: String
    let kvHeads: Int
    /// Rows packed with several documents (segments), as training batches are.
    var packed = false
    /// The output head and multiplier (issue 14, part 3).
    var head = OutputHead.full
    var multiplier: Float = 1
    var description: String {
        "\(arch.rawValue) \(schedule) kv=\(kvHeads)\(packed ? " packed" : "")"
            + (head == .full ? "" : " head \(head)") + (multiplier == 1 ? "" : " x\(multiplier)")
    }
}

/// A model with larger weights than the 0.02 init so every path carries a visible gradient; norms
/// and biases perturbed away from 1 and 0. Returns it with its parameters.
func perturbedModel(_ cfg: ModelConfig, rng: inout SeededRNG) throws -> (Transformer, [Float]) {
    let model = try Transformer(config: cfg, pool: ThreadPool(threads: 2), rng: &rng)
    var p = model.params.array().map { Float($0) }
    for i in p.indices { p[i] = Float(rng.nextNormal() * 0.5) + (i >= model.layout.decayedCount ? 0.5 : 0) }
    model.params.load(p)
    return (model, p)
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
    GradCase(arch: .gpt2, schedule: "cyc(1)", kvHeads: 2, packed: true),
    GradCase(arch: .llama, schedule: "inv(1)", kvHeads: 1, packed: true),
    GradCase(arch: .llama, schedule: "base", kvHeads: 1, head: .rank(3)),
    GradCase(arch: .gpt2, schedule: "base", kvHeads: 2, head: .rank(5), multiplier: 0.5),
    GradCase(arch: .llama, schedule: "cyc(1)", kvHeads: 2, head: .wide(2)),
    GradCase(arch: .gpt2, schedule: "base", kvHeads: 2, head: .wide(3)),
    GradCase(arch: .llama, schedule: "base", kvHeads: 1, multiplier: 0.25),
])
func wholeModelGradientMatchesFiniteDifferences(_ c: GradCase) throws {
    var cfg = ModelConfig(
        arch: c.arch, dModel: 8, layers: 2, heads: 2, kvHeads: c.kvHeads, ffnHidden: 12, context: 6,
        vocab: 7, tiedEmbeddings: c.head == .full ? nil : false, schedule: try LayerSchedule(parsing: c.schedule))
    cfg.head = c.head
    cfg.outputMultiplier = c.multiplier
    try cfg.validate()
    var rng = SeededRNG(seed: 42)
    let (model, p) = try perturbedModel(cfg, rng: &rng)
    let B = 2, T = 5
    let inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    var targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    targets[3] = -1  // an ignored position
    // Packed: row 0 holds documents of 2 and 3 tokens, row 1 of 1, 3 and 1.
    let segments: [Int32]? = c.packed ? [0, 0, 1, 1, 1, 0, 1, 1, 1, 2] : nil
    model.zeroGrads()
    let loss = try model.forward(inputs: inputs, targets: targets, B: B, T: T, segments: segments)!
    model.backward()
    let analytic = model.grads.array()

    let pd = p.map(Double.init)
    let ins = inputs.map(Int.init), tgs = targets.map(Int.init), segs = segments?.map(Int.init)
    let ref = referenceLoss(
        cfg, layout: model.layout, schedule: model.schedule, params: pd, inputs: ins, targets: tgs, B: B, T: T,
        segments: segs)
    #expect(abs(Double(loss) - ref) < 1e-5 * max(1, abs(ref)), "loss \(loss) vs reference \(ref)")

    var worst = (excess: 0.0, index: -1, fd: 0.0, got: 0.0)
    let h = 1e-5
    let scale = analytic.map { abs(Double($0)) }.max()!
    for i in pd.indices {
        var plus = pd, minus = pd
        plus[i] += h
        minus[i] -= h
        let fd =
            (referenceLoss(
                cfg, layout: model.layout, schedule: model.schedule, params: plus, inputs: ins, targets: tgs, B: B,
                T: T, segments: segs)
                - referenceLoss(
                    cfg, layout: model.layout, schedule: model.schedule, params: minus, inputs: ins, targets: tgs, B: B,
                    T: T, segments: segs)) / (2 * h)
        let tol = 1e-4 * scale + 2e-3 * abs(fd)
        let err = abs(Double(analytic[i]) - fd)
        if err - tol > worst.excess { worst = (err - tol, i, fd, Double(analytic[i])) }
    }
    let name = worst.index >= 0 ? model.layout.tensors.last { $0.offset <= worst.index }!.name : "-"
    #expect(
        worst.index == -1,
        "worst gradient mismatch at \(worst.index) (\(name)): finite difference \(worst.fd), backward \(worst.got)")
}

/// A packed row computes what its documents compute one per row: the same loss, and the same
/// gradient of every parameter (GPT-2's learned positions and Llama's RoPE both restart).
@Test(arguments: [Arch.gpt2, .llama])
func aPackedRowEqualsItsDocumentsOnePerRow(_ arch: Arch) throws {
    let cfg = ModelConfig(
        arch: arch, dModel: 16, layers: 2, heads: 2, kvHeads: arch == .llama ? 1 : nil, ffnHidden: 24,
        context: 9, vocab: 11, schedule: try LayerSchedule(parsing: "cyc(1)"))
    let pool = ThreadPool(threads: 2)
    var rng = SeededRNG(seed: 9)
    let model = try Transformer(config: cfg, pool: pool, rng: &rng)
    let documents: [[Int32]] = [[3, 5, 7, 2], [4, 4, 9], [1, 8]]
    let T = 9, pad: Int32 = 0
    func targets(_ doc: [Int32]) -> [Int32] { Array(doc.dropFirst()) + [-1] }
    // Packed: 4 + 3 + 2 = 9 tokens in one row.
    let packedInputs = documents.flatMap { $0 }
    let packedTargets = documents.flatMap(targets)
    let segments = documents.enumerated().flatMap { i, d in [Int32](repeating: Int32(i), count: d.count) }
    model.zeroGrads()
    let packedLoss = try model.forward(inputs: packedInputs, targets: packedTargets, B: 1, T: T, segments: segments)!
    model.backward()
    let packedGrads = model.grads.array()
    // One document per row, padded.
    let rows = documents.map { $0 + [Int32](repeating: pad, count: T - $0.count) }
    let rowTargets = documents.map { targets($0) + [Int32](repeating: -1, count: T - $0.count) }
    model.zeroGrads()
    let loss = try model.forward(inputs: rows.flatMap { $0 }, targets: rowTargets.flatMap { $0 }, B: 3, T: T)!
    model.backward()
    let grads = model.grads.array()
    #expect(abs(packedLoss - loss) <= 1e-6 * abs(loss), "loss \(packedLoss) packed vs \(loss) one per row")
    let scale = grads.map(abs).max()!
    var worst = (error: Float(0), index: -1)
    for i in grads.indices where abs(packedGrads[i] - grads[i]) > worst.error {
        worst = (abs(packedGrads[i] - grads[i]), i)
    }
    #expect(
        worst.error <= 1e-5 * scale,
        "gradient \(worst.index): \(packedGrads[max(0, worst.index)]) vs \(grads[max(0, worst.index)])")
    // Without the segments the same row is one long sequence: its loss differs.
    let crossing = try model.forward(inputs: packedInputs, targets: packedTargets, B: 1, T: T)!
    #expect(abs(crossing - loss) > 1e-4, "documents that see each other should change the loss")
}

/// A value head on the final hidden states (a process reward model's score head), alone or with
/// the language-model loss, backpropagates through the whole model as finite differences of the
/// Double reference say.
@Test(arguments: [(Arch.gpt2, "cyc(1)", true), (.llama, "base", false), (.llama, "inv(1)", true)])
func aValueHeadLossBackpropagatesThroughTheModel(_ arch: Arch, _ schedule: String, _ withLM: Bool) throws {
    let cfg = ModelConfig(
        arch: arch, dModel: 8, layers: 2, heads: 2, kvHeads: arch == .llama ? 1 : 2, ffnHidden: 12, context: 6,
        vocab: 7,
        schedule: try LayerSchedule(parsing: schedule))
    var rng = SeededRNG(seed: 17)
    let (model, p) = try perturbedModel(cfg, rng: &rng)
    let pool = model.pool
    let B = 2, T = 5
    let inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    var targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    targets[3] = -1
    let rows = [1, 4, 7, 9]
    let labels: [Float] = [1, 0, 0.5, 0.9]
    let weight = (0..<cfg.dModel).map { _ in Float(rng.nextNormal() * 0.6) }
    let bias: Float = -0.2
    model.zeroGrads()
    try model.forward(inputs: inputs, B: B, T: T)
    var dweight = [Float](repeating: 0, count: cfg.dModel)
    var dbias: Float = 0
    let ce: ((FPtr, Int, Int) throws -> Float)? =
        withLM
        ? { logits, N, V in
            var losses = [Float](repeating: 0, count: N)
            return targets.withUnsafeBufferPointer { t in
                distillationForwardBackward(
                    .ce, losses: &losses, dlogits: logits, student: UnsafePointer(logits), teacher: logits,
                    targets: t.baseAddress!, N: N, V: V, pool: pool
                ).loss
            }
        } : nil
    let loss = try model.backward(logits: ce) { hidden, dhidden, _, C in
        valueHeadLoss(
            hidden: hidden, C: C, rows: rows, targets: labels, weight: weight, bias: bias, dhidden: dhidden,
            dweight: &dweight, dbias: &dbias)
    }
    let analytic = model.grads.array()
    let term = ValueTerm(
        rows: rows, targets: labels.map(Double.init), weight: weight.map(Double.init), bias: Double(bias),
        withLM: withLM)
    let ins = inputs.map(Int.init), tgs = targets.map(Int.init)
    func reference(_ params: [Double], _ t: ValueTerm) -> Double {
        referenceLoss(
            cfg, layout: model.layout, schedule: model.schedule, params: params, inputs: ins, targets: tgs, B: B,
            T: T, value: t)
    }
    let pd = p.map(Double.init)
    let ref = reference(pd, term)
    #expect(abs(Double(loss) - ref) < 1e-5 * max(1, abs(ref)), "loss \(loss) vs reference \(ref)")
    let h = 1e-5
    let scale = analytic.map { abs(Double($0)) }.max()!
    var worst = (excess: 0.0, index: -1, fd: 0.0, got: 0.0)
    for i in pd.indices {
        var plus = pd, minus = pd
        plus[i] += h
        minus[i] -= h
        let fd = (reference(plus, term) - reference(minus, term)) / (2 * h)
        let err = abs(Double(analytic[i]) - fd)
        let tol = 1e-4 * scale + 2e-3 * abs(fd)
        if err - tol > worst.excess { worst = (err - tol, i, fd, Double(analytic[i])) }
    }
    #expect(worst.index == -1, "parameter \(worst.index): finite difference \(worst.fd), backward \(worst.got)")
    // The head's own gradients.
    for c in 0..<cfg.dModel {
        var plus = term, minus = term
        plus.weight[c] += h
        minus.weight[c] -= h
        let fd = (reference(pd, plus) - reference(pd, minus)) / (2 * h)
        #expect(abs(Double(dweight[c]) - fd) < 1e-4 * max(1, abs(fd)), "weight \(c): \(dweight[c]) vs \(fd)")
    }
    var plus = term, minus = term
    plus.bias += h
    minus.bias -= h
    let fdBias = (reference(pd, plus) - reference(pd, minus)) / (2 * h)
    #expect(abs(Double(dbias) - fdBias) < 1e-4 * max(1, abs(fdBias)))
}

/// The cross-entropy step through `backward(logits:hidden:)` with a head that adds nothing gives
/// the gradient `backward()` gives.
@Test func backwardWithAnEmptyValueLossIsTheCrossEntropyBackward() throws {
    let cfg = ModelConfig(
        arch: .llama, dModel: 16, layers: 2, heads: 2, kvHeads: 1, ffnHidden: 24, context: 8, vocab: 9,
        schedule: try LayerSchedule(parsing: "cyc(1)"))
    let pool = ThreadPool(threads: 2)
    var rng = SeededRNG(seed: 3)
    let model = try Transformer(config: cfg, pool: pool, rng: &rng)
    let inputs = (0..<16).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    let targets = (0..<16).map { _ in Int32(rng.nextInt(cfg.vocab)) }
    model.zeroGrads()
    try model.forward(inputs: inputs, targets: targets, B: 2, T: 8)
    model.backward()
    let plain = model.grads.array()
    model.zeroGrads()
    try model.forward(inputs: inputs, B: 2, T: 8)
    try model.backward(
        logits: { logits, N, V in
            var losses = [Float](repeating: 0, count: N)
            return targets.withUnsafeBufferPointer { t in
                distillationForwardBackward(
                    .ce, losses: &losses, dlogits: logits, student: UnsafePointer(logits), teacher: logits,
                    targets: t.baseAddress!, N: N, V: V, pool: pool
                ).loss
            }
        }, hidden: { _, _, _, _ in 0 })
    let combined = model.grads.array()
    let scale = plain.map(abs).max()!
    #expect(zip(plain, combined).allSatisfy { abs($0 - $1) <= 1e-6 * scale })
}
