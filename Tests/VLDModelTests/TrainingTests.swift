// TrainingTests.swift: learning, bitwise resumption, and the residual-stream hook.

import Foundation
import Testing
import VLDModel
import VLDTasks
import VLDTensor

@Test(arguments: [Arch.gpt2, .llama])
func tinyModelLearnsToReverse(_ arch: Arch) throws {
    let pool = ThreadPool(threads: 2)
    let model = try trainedReverser(arch, schedule: .cyc(1), steps: 400, pool: pool)
    let task = ReverseTask(vocab: 16, length: 6)
    let held = task.batch(seed: 99, cursor: 0, batch: 32)
    let loss = try model.evaluationLoss(inputs: held.inputs, targets: held.targets, B: 32, T: task.sequenceLength)
    #expect(loss < 0.05, "held-out loss \(loss) after 400 steps")
    let strings = (0..<32).map { task.symbols(seed: 99, index: $0) }
    var rng = SeededRNG(seed: 0)
    let out = try model.generate(
        prompts: strings.map { $0 + [ReverseTask.sep] }, options: .greedy(maxNewTokens: 6), rng: &rng)
    let exact = zip(strings, out).filter { Array($0.0.reversed()) == $0.1 }.count
    #expect(exact >= 30, "\(exact)/32 reversed exactly")
}

/// Runs steps until `steps` from the given state, returning the losses (data cursor = step * B).
func continueTraining(_ model: Transformer, _ opt: OptimizerState, _ state: inout TrainingState, until steps: Int)
    throws -> [Float]
{
    let task = ReverseTask(vocab: 16, length: 6)
    let schedule = LRSchedule(peak: 3e-3, floor: 3e-4, warmup: 5, total: 20)
    var losses: [Float] = []
    while state.step < steps {
        // The RNG drives a per-step data seed, so resuming must restore it exactly.
        let dataSeed = state.rng.next() % 1000
        let b = task.batch(seed: dataSeed, cursor: state.dataCursor, batch: 8)
        losses.append(
            try model.trainStep(
                inputs: b.inputs, targets: b.targets, B: 8, T: task.sequenceLength,
                lr: schedule.lr(at: state.step), clip: 1, optimizer: opt
            ).loss)
        state.step += 1
        state.dataCursor += 8
    }
    return losses
}

@Test(arguments: [Arch.gpt2, .llama])
func resumedTrainingIsBitwiseIdentical(_ arch: Arch) throws {
    let pool = ThreadPool(threads: 2)
    let cfg = tinyConfig(arch, schedule: .inv(1))
    func fresh() throws -> (Transformer, OptimizerState, TrainingState) {
        var rng = SeededRNG(seed: 3)
        let m = try Transformer(config: cfg, pool: pool, rng: &rng)
        let o = OptimizerState(parameterCount: m.parameterCount, config: AdamWConfig())
        return (m, o, TrainingState(step: 0, rng: rng, dataCursor: 0, adamW: o.config))
    }
    var (m1, o1, s1) = try fresh()
    let straight = try continueTraining(m1, o1, &s1, until: 20)

    var (m2, o2, s2) = try fresh()
    var resumed = try continueTraining(m2, o2, &s2, until: 8)
    let dir = temporaryDirectory().appendingPathComponent("ckpt")
    try Checkpoint.save(m2, to: dir, optimizer: o2, state: s2)
    var (m3, o3, s3) = try Checkpoint.loadForResume(from: dir, pool: pool)
    #expect(s3.step == 8 && o3.step == 8)
    resumed += try continueTraining(m3, o3, &s3, until: 20)
    #expect(straight.map(\.bitPattern) == resumed.map(\.bitPattern), "straight \(straight) vs resumed \(resumed)")
    #expect(m1.params.array() == m3.params.array())
}

@Test func theSiteHookReadsAndSteersEverySite() throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 5)
    let model = try Transformer(config: tinyConfig(.gpt2, schedule: .cyc(1)), pool: pool, rng: &rng)
    let tokens: [Int32] = [3, 9, 4, 12, 7]
    try model.forward(inputs: tokens, B: 1, T: 5)
    let base = (0..<5).map { model.logits(row: $0) }

    var visited: [String] = []
    model.siteHook = { site in visited.append("\(site.kind.rawValue)\(site.position)") }
    try model.forward(inputs: tokens, B: 1, T: 5)
    #expect(visited == (0..<4).flatMap { v in SiteKind.allCases.map { "\($0.rawValue)\(v)" } })
    #expect((0..<5).map { model.logits(row: $0) } == base, "a read-only hook changes nothing")

    // Steer token 2 at each site of schedule position 0: earlier tokens are untouched
    // (causality), token 2 and later ones change.
    for kind in SiteKind.allCases {
        model.siteHook = { site in
            guard site.kind == kind, site.position == 0 else { return }
            for c in 0..<site.C { site.hidden[2 * site.C + c] += 3 }
        }
        try model.forward(inputs: tokens, B: 1, T: 5)
        let steered = (0..<5).map { model.logits(row: $0) }
        #expect(steered[0] == base[0] && steered[1] == base[1], "\(kind)")
        #expect(steered[2] != base[2] && steered[4] != base[4], "\(kind)")
    }
    model.siteHook = nil
}

/// Steering while decoding with the KV cache gives the logits of steering the whole sequence
/// recomputed: every site, a vector added from token position 3 on (the first generated token
/// included), two sequences of different lengths in one cache.
@Test(arguments: SiteKind.allCases)
func steeredCachedDecodingEqualsSteeredRecomputation(_ kind: SiteKind) throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 8)
    let model = try Transformer(config: tinyConfig(.llama, schedule: .cyc(1)), pool: pool, rng: &rng)
    let C = model.config.dModel
    let vector = (0..<C).map { Float(($0 * 7) % 5) - 2 }
    model.siteHook = { site in
        guard site.kind == kind, site.position == 1 else { return }
        for n in 0..<(site.B * site.T) where site.tokenPositions[n] >= 3 {
            for c in 0..<C { site.hidden[n * C + c] += 0.5 * vector[c] }
        }
    }
    let prompts: [[Int32]] = [[3, 9, 4], [5, 1]]
    let continuation: [[Int32]] = [[7, 2, 6], [8, 8, 3]]
    let cache = KVCache(model: model, batch: 2, capacity: 8)
    _ = try model.prefill(prompts: prompts, cache: cache)
    var cached: [[[Float]]] = [[], []]
    for step in 0..<3 {
        let out = try model.decode(tokens: [continuation[0][step], continuation[1][step]], cache: cache)
        let V = model.config.vocab
        for b in 0..<2 { cached[b].append(Array(out[(b * V)..<((b + 1) * V)])) }
    }
    for b in 0..<2 {
        let full = prompts[b] + continuation[b]
        try model.forward(inputs: full, B: 1, T: full.count)
        for step in 0..<3 {
            let recomputed = model.logits(row: prompts[b].count + step)
            let diff = zip(recomputed, cached[b][step]).map { abs($0 - $1) }.max()!
            #expect(diff < 1e-4, "\(kind) row \(b) step \(step): \(diff)")
        }
    }
    // And the steering mattered: without it the logits differ.
    model.siteHook = nil
    let full = prompts[0] + continuation[0]
    try model.forward(inputs: full, B: 1, T: full.count)
    #expect(zip(model.logits(row: 4), cached[0][1]).map { abs($0 - $1) }.max()! > 1e-3)
}

/// The training step with a loss closure is the cross-entropy step when the closure is
/// cross-entropy: same losses, bitwise the same parameters after several steps.
@Test(arguments: [Arch.gpt2, .llama])
func aLossClosureThatIsCrossEntropyTrainsBitwiseLikeTheBuiltInStep(_ arch: Arch) throws {
    let pool = ThreadPool(threads: 2)
    let task = ReverseTask(vocab: 16, length: 6)
    func fresh() throws -> (Transformer, OptimizerState) {
        var rng = SeededRNG(seed: 11)
        let m = try Transformer(config: tinyConfig(arch, schedule: .cyc(1)), pool: pool, rng: &rng)
        return (m, OptimizerState(parameterCount: m.parameterCount, config: AdamWConfig()))
    }
    let (a, oa) = try fresh(), (b, ob) = try fresh()
    let T = task.sequenceLength
    for step in 0..<6 {
        let batch = task.batch(seed: 5, cursor: step * 8, batch: 8)
        let builtIn = try a.trainStep(
            inputs: batch.inputs, targets: batch.targets, B: 8, T: T, lr: 3e-3, clip: 1, optimizer: oa)
        let viaClosure = try b.trainStep(inputs: batch.inputs, B: 8, T: T, lr: 3e-3, clip: 1, optimizer: ob) {
            logits, N, V in
            var losses = [Float](repeating: 0, count: N)
            let (loss, count) = crossEntropyForward(
                losses: &losses, probs: logits, logits: logits, targets: batch.targets, N: N, V: V, pool: pool)
            crossEntropyBackward(
                dlogits: logits, probs: logits, targets: batch.targets, scale: 1 / Float(count), N: N, V: V, pool: pool)
            return loss
        }
        #expect(builtIn.loss == viaClosure.loss && builtIn.gradNorm == viaClosure.gradNorm, "step \(step)")
    }
    #expect(a.params.array() == b.params.array(), "parameters after 6 steps")
}

/// Distilling with forward KL (λ = 1) from a trained teacher moves an untrained student's
/// predictions toward the teacher's on held-out data.
@Test func distillingMovesTheStudentTowardTheTeacher() throws {
    let pool = ThreadPool(threads: 2)
    let task = ReverseTask(vocab: 16, length: 6)
    let T = task.sequenceLength
    let teacher = try trainedReverser(.gpt2, schedule: .base, steps: 300, pool: pool)
    var rng = SeededRNG(seed: 21)
    let student = try Transformer(config: tinyConfig(.llama, schedule: .cyc(1)), pool: pool, rng: &rng)
    let opt = OptimizerState(parameterCount: student.parameterCount, config: AdamWConfig(weightDecay: 0))
    func teacherLogits(_ inputs: [Int32], _ B: Int) throws -> [Float] {
        try teacher.forward(inputs: inputs, B: B, T: T)
        return (0..<(B * T)).flatMap { teacher.logits(row: $0) }
    }
    func kl(_ inputs: [Int32], _ targets: [Int32], _ B: Int) throws -> Float {
        let t = try teacherLogits(inputs, B)
        try student.forward(inputs: inputs, B: B, T: T)
        let s = (0..<(B * T)).flatMap { student.logits(row: $0) }
        var losses = [Float](repeating: 0, count: B * T)
        return distillationForwardBackward(
            .jsd(beta: 0), losses: &losses, dlogits: nil, student: s, teacher: t, targets: targets, N: B * T,
            V: 16, pool: pool
        ).loss
    }
    let held = task.batch(seed: 77, cursor: 0, batch: 32)
    let before = try kl(held.inputs, held.targets, 32)
    for step in 0..<150 {
        let b = task.batch(seed: 3, cursor: step * 16, batch: 16)
        let t = try teacherLogits(b.inputs, 16)
        try student.trainStep(inputs: b.inputs, B: 16, T: T, lr: 3e-3, clip: 1, optimizer: opt) { logits, N, V in
            var losses = [Float](repeating: 0, count: N)
            return distillationForwardBackward(
                .kdForward(temperature: 2, lambda: 1), losses: &losses, dlogits: logits, student: logits, teacher: t,
                targets: b.targets, N: N, V: V, pool: pool
            ).loss
        }
    }
    let after = try kl(held.inputs, held.targets, 32)
    #expect(after < before / 2, "KL(teacher || student) on held-out data: \(before) before, \(after) after")
}
