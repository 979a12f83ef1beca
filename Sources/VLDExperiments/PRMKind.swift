// PRMKind.swift: the `prm` kind (issue 13, part 1). A trial trains a process reward model on a
// policy's own chain `cot` solutions (specs/tts.md 8.6):
//
//   {"kind": "prm", "policy": "@policy", "init": "@policy", "task": ..., "model": ..., "train": ...,
//    "prm": {"labels": "mc_soft", "problems": 1000, "samples": 4, "rollouts": 8, "temperature": 0.8}}
//
// 1. The policy samples `samples` solutions of each of `problems` training problems, and of
//    `heldOutProblems` more (PolicySamples.swift); each training solution is labelled by `labels`
//    (StepLabels.swift: the step checker, or R policy rollouts from each step's prefix), each
//    held-out one by the oracle. The solutions, labels and what sampling cost are written to
//    labels.json in the trial (kept for audit and read back on resume).
// 2. The model (`init: "@policy"` starts from the policy's weights; without `init`, from scratch)
//    trains like `train` (same loop, schedule, checkpoints, resume) with a value head (linear d ->
//    1, sigmoid) read at every step separator and at the solution's end, and binary cross-entropy
//    against the (soft) labels there only; the language-model head is not trained. Each batch
//    holds `train.batch` labelled solutions, one per row, in a seeded order reshuffled per epoch.
// 3. Each evaluation scores the held-out solutions: step-level AUC and F1 against the oracle,
//    first-error localisation, calibration (PRMMetrics.swift), and what choosing one of each
//    problem's samples by the PRM gives against the samples' mean accuracy and majority vote.
//
// The checkpoint holds the head in value_head.safetensors (RewardHead.swift); the head's AdamW
// moments sit beside it for resuming. results.json adds `prm` (labels, held-out metrics) and the
// labelling's FLOPs (the policy's sampling and rollouts) next to training's.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The body of a `prm` manifest: the PRM as a train body, the policy whose solutions it learns.
public struct PRMBody: KindBody, Equatable {
    public var trainer: TrainBody
    public var policy: CheckpointRef
    public var prm: PRMSpec

    public var resolvedFields: [(String, JSONValue)] {
        [("policy", .string(policy.description))] + trainer.resolvedFields + [("prm", prm.json)]
    }
    public var progress: (total: Int, unit: String) { trainer.progress }
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] { [("policy", policy)] + trainer.checkpointRefs }

    /// Training's cost; the policy's sampling comes on top (its size is known once it exists;
    /// results.json reports it).
    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate { try trainer.estimate(header) }

    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] {
        var out = trainer.summaryScalars(results)
        if case let .number(f)? = results["flops"]?["labelling"] { out.append(("labellingFlops", f)) }
        return out
    }
}

enum PRMKind: ExperimentKind {
    static let name = "prm"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> PRMBody? {
        let policy = root.checkpointRef("policy")
        if policy == nil, root.raw("policy") == nil || root.raw("policy") == .null {
            root.issues.add("policy", "missing; expected the policy's checkpoint: \(CheckpointRef.accepted)")
        }
        let spec = PRMSpec.parse(root.object("prm"))
        guard let trainer = TrainKind.parse(&root, header: header, limits: limits), let policy else { return nil }
        return PRMBody(trainer: trainer, policy: policy, prm: spec)
    }

    static func crossCheck(_ body: PRMBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        body.trainer.crossCheck(header, issues: issues, limits: limits)
        checkStepTask(body.trainer.tasks, labels: body.prm.labels, issues: issues)
        if body.trainer.train.batch > body.prm.problems * body.prm.samples {
            issues.add(
                "train.batch",
                "\(body.trainer.train.batch) exceeds the \(body.prm.problems * body.prm.samples) labelled solutions "
                    + "(prm.problems x prm.samples)")
        }
    }

    /// A PRM (and a search) needs one chain task in the cot format: solutions made of steps, and a
    /// checker for them (oracle labels, the gold answer).
    static func checkStepTask(_ tasks: [TaskSpec], labels: StepLabelKind?, issues: IssueList) {
        guard tasks.count == 1, case let .chain(c, _, _, _) = tasks[0] else {
            let why =
                labels == .oracle
                ? "oracle labels need a task with a step checker" : "a search scores the steps of solutions"
            issues.add("task", "expected one chain task in the cot format: \(why), and chain cot has one")
            return
        }
        if c.format != .cot {
            issues.add(
                "task.format",
                "\"\(c.format.rawValue)\" solutions have no steps; expected \"cot\" (steps with a checker)")
        }
    }

    static func run(_ trial: Trial, body: PRMBody, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome {
        try TrainRunner.train(trial, body: body.trainer, in: dir, context: context) { setup in
            try PRMTrainer(body: body, setup: setup)
        }
    }
}

/// The value head, its training and evaluation, plugged into the training loop.
final class PRMTrainer: TrainingHooks {
    let body: PRMBody
    let data: PRMData
    let pool: ThreadPool
    var head: RewardHead
    /// The head's AdamW moments and steps taken.
    var moments: (m: [Float], v: [Float], step: Int)
    let adamW: AdamWConfig
    let seed: UInt64
    let dModel: Int
    let tokenizer: WordTokenizer
    var lastMetrics: PRMMetrics?
    var selection: [(String, Double)] = []
    var evaluationFlops = 0.0
    /// The init checkpoint and the FLOPs that trained it (nil when its results are not beside it).
    var initAccount: (path: String, flops: Double?)?

    static let momentsFile = "value_head_optimizer.safetensors"

    init(body: PRMBody, setup: HookSetup) throws {
        self.body = body
        pool = setup.pool
        seed = setup.evaluator.seed
        dModel = setup.config.dModel
        tokenizer = setup.mixture.tokenizer
        let t = body.trainer.train
        adamW = AdamWConfig(beta1: Float(t.beta1), beta2: Float(t.beta2), weightDecay: 0)
        // The weights the PRM starts from were trained by someone: their FLOPs belong to the study's
        // end-to-end account (the tts kind adds them unless they are the policy's own).
        if let ref = body.trainer.initFrom, let dir = try? setup.context.checkpoint(ref) {
            let file = dir.deletingLastPathComponent().appendingPathComponent(TrialDirectory.commitMarker)
            let trained = (try? JSONValue.parse(Data(contentsOf: file)))?["flops"]?["train"]?.doubleValue
            initAccount = (dir.standardizedFileURL.path, trained)
        }
        guard let task = setup.mixture.tasks.first as? ChainTask else {
            throw TrialError("a prm trial needs a chain cot task")
        }
        let file = setup.directory.appendingPathComponent(PRMData.fileName)
        if let read = try? PRMData.load(file, tokenizer: setup.mixture.tokenizer) {
            data = read
            setup.log("read \(data.train.count) labelled solutions from \(PRMData.fileName)")
        } else {
            let policy = try TrainRunner.loadCheckpoint(
                body.policy, role: "policy", context: setup.context, pool: setup.pool,
                tokenizer: setup.mixture.tokenizer,
                mismatch: "this trial's task (one vocabulary is needed)"
            ).model
            data = try PRMData.label(body: body, policy: policy, task: task, setup: setup)
            try writeAtomically(PRMData.json(data, tokenizer: setup.mixture.tokenizer).serialized() + "\n", to: file)
        }
        let ckpt = setup.directory.appendingPathComponent("checkpoint")
        if FileManager.default.fileExists(atPath: ckpt.appendingPathComponent("state.json").path) {
            head = try RewardHead.load(from: ckpt, dModel: dModel)
            let (tensors, meta) = try Safetensors.decode(
                try Data(contentsOf: ckpt.appendingPathComponent(PRMTrainer.momentsFile)), file: PRMTrainer.momentsFile)
            guard let m = tensors["m"]?.values, let v = tensors["v"]?.values, m.count == dModel + 1,
                v.count == dModel + 1, let step = meta["step"].flatMap(Int.init)
            else {
                throw TrialError("\(ckpt.path)/\(PRMTrainer.momentsFile) is damaged; remove the trial to start over")
            }
            moments = (m, v, step)
        } else {
            var rng = SeededRNG(seed: seed &+ 0x7E4D)
            head = RewardHead(dModel: dModel, rng: &rng)
            moments = (Array(repeating: 0, count: dModel + 1), Array(repeating: 0, count: dModel + 1), 0)
        }
    }

    // MARK: training

    /// The candidates of step `step`: a seeded order of the training solutions, reshuffled each epoch.
    func batchItems(step: Int, B: Int) -> [PRMData.Item] {
        let n = data.train.count
        var out: [PRMData.Item] = []
        var cachedEpoch = -1
        var order: [Int] = []
        for b in 0..<B {
            let i = step * B + b
            let epoch = i / n
            if epoch != cachedEpoch {
                var rng = SeededRNG(seed: seed &* 0x9E37_79B9 &+ UInt64(epoch) &+ 0x51)
                order = Array(0..<n).shuffled(using: &rng)
                cachedEpoch = epoch
            }
            out.append(data.train[order[i % n]])
        }
        return out
    }

    /// Rows of `items` laid out one per row of T tokens (padded with `<eos>`, cut at T), and the
    /// hidden-state rows where the head is read with their targets.
    static func layout(_ items: [PRMData.Item], T: Int, tokenizer: (([String]) -> [Int32])) -> (
        inputs: [Int32], rows: [Int], targets: [Float]
    ) {
        var inputs = [Int32](repeating: WordTokenizer.eos, count: items.count * T)
        var rows: [Int] = [], targets: [Float] = []
        for (b, item) in items.enumerated() {
            let sequence = item.prompt + tokenizer(item.solution.words)
            for (t, x) in sequence.prefix(T).enumerated() { inputs[b * T + t] = x }
            for (p, y) in zip(item.solution.positions, item.solution.labels) where item.prompt.count + p < T {
                rows.append(b * T + item.prompt.count + p)
                targets.append(Float(y))
            }
        }
        return (inputs, rows, targets)
    }

    func step(
        _ model: Transformer, batch _: PackedBatch, B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState
    ) throws -> StepStats {
        let (inputs, rows, targets) = PRMTrainer.layout(batchItems(step: optimizer.step, B: B), T: T, tokenizer: encode)
        var dw = [Float](repeating: 0, count: dModel + 1)
        let stats = try model.trainStep(inputs: inputs, B: B, T: T, lr: lr, clip: clip, optimizer: optimizer) {
            hidden, dhidden, _, C in
            head.weight.withUnsafeBufferPointer { w in
                dw.withUnsafeMutableBufferPointer { g in
                    valueHeadLoss(
                        hidden: hidden, C: C, rows: rows, targets: targets, weight: w.baseAddress!, bias: head.bias,
                        dhidden: dhidden, dweight: g.baseAddress!, dbias: g.baseAddress! + C)
                }
            }
        }
        // The head's own AdamW step (no weight decay on it; its gradient is clipped with the same bound).
        var params = head.weight + [head.bias]
        let norm = dw.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if clip > 0 && norm > clip { for i in dw.indices { dw[i] *= clip / norm } }
        var (m1, v1, t) = moments
        t += 1
        params.withUnsafeMutableBufferPointer { p in
            dw.withUnsafeBufferPointer { g in
                m1.withUnsafeMutableBufferPointer { m in
                    v1.withUnsafeMutableBufferPointer { v in
                        adamWUpdate(
                            params: p.baseAddress!, grads: g.baseAddress!, m: m.baseAddress!, v: v.baseAddress!,
                            N: dModel + 1, lr: lr, t: t, config: adamW, weightDecay: 0, pool: pool)
                    }
                }
            }
        }
        moments = (m1, v1, t)
        head.weight = Array(params.prefix(dModel))
        head.bias = params[dModel]
        return stats
    }

    /// Words to tokens with the trial's vocabulary.
    func encode(_ words: [String]) -> [Int32] { tokenizer.encode(words.joined(separator: " ")) }

    func checkpointFiles() -> [String: Data] {
        [
            RewardHead.fileName: head.encoded(),
            PRMTrainer.momentsFile: Safetensors.encode(
                [
                    NamedTensor(name: "m", shape: [dModel + 1], values: moments.m),
                    NamedTensor(name: "v", shape: [dModel + 1], values: moments.v),
                ], metadata: ["step": String(moments.step)]),
        ]
    }

    // MARK: evaluation

    func evaluate(_ model: Transformer) throws -> [(String, Double)] {
        var scored: [ScoredSteps] = []
        var scoresByItem: [[Double]] = []
        let chunk = 32
        var start = 0
        while start < data.heldOut.count {
            let part = Array(data.heldOut[start..<min(data.heldOut.count, start + chunk)])
            let sequences = part.map { $0.prompt + encode($0.solution.words) }
            let capped = sequences.map { Array($0.prefix(model.config.context)) }
            let positions = part.map { item in
                item.solution.positions.map { item.prompt.count + $0 }.filter { $0 < model.config.context }
            }
            let s = try model.rewardScores(capped, positions: positions, head: head)
            for (i, item) in part.enumerated() {
                let labels = Array(item.solution.labels.prefix(s[i].count))
                scored.append(ScoredSteps(scores: s[i], labels: labels))
                scoresByItem.append(s[i])
                evaluationFlops += model.config.scoringFlops(tokens: capped[i].count, scored: s[i].count)
            }
            start += part.count
        }
        let m = PRMMetrics(scored)
        lastMetrics = m
        // Choosing one of each problem's samples: by the PRM's last score, by majority, at random.
        var byProblem: [Int: [Int]] = [:]
        for (i, item) in data.heldOut.enumerated() { byProblem[item.problem, default: []].append(i) }
        var prmMax = 0.0, majority = 0.0, mean = 0.0, any = 0.0
        for (_, idx) in byProblem {
            let cands = idx.map { i in
                Candidate(answer: TTSRecord.answer(data.heldOut[i].solution.words), scores: scoresByItem[i])
            }
            let right = idx.map { data.heldOut[$0].solution.check.answerCorrect }
            let gold = idx.first { data.heldOut[$0].solution.check.answerCorrect }.flatMap {
                TTSRecord.answer(data.heldOut[$0].solution.words)
            }
            if let a = selectAnswer(cands, rule: .prmMax), a == gold { prmMax += 1 }
            if let a = selectAnswer(cands, rule: .majority), a == gold { majority += 1 }
            mean += Double(right.filter { $0 }.count) / Double(right.count)
            if right.contains(true) { any += 1 }
        }
        let P = Double(max(1, byProblem.count))
        selection = [
            ("prm.select.prmMax", prmMax / P), ("prm.select.majority", majority / P),
            ("prm.select.sample", mean / P), ("prm.select.oracle", any / P),
        ]
        return [
            ("prm.auc", m.auc ?? .nan), ("prm.f1", m.f1), ("prm.firstErrorAccuracy", m.firstErrorAccuracy),
            ("prm.ece", m.ece),
        ] + selection
    }

    func results(steps: Int) -> [(String, JSONValue)] {
        let labels = data.train.flatMap(\.solution.labels)
        let valid = data.train.filter { $0.solution.check.valid }.count
        var metricFields: [(String, JSONValue)] = []
        if let m = lastMetrics {
            metricFields =
                [
                    ("auc", m.auc.map { JSONValue($0) } ?? .null), ("f1", JSONValue(m.f1)),
                    ("precision", JSONValue(m.precision)), ("recall", JSONValue(m.recall)),
                    ("firstErrorAccuracy", JSONValue(m.firstErrorAccuracy)), ("ece", JSONValue(m.ece)),
                    ("steps", JSONValue(m.steps)), ("candidates", JSONValue(m.candidates)),
                    (
                        "reliability",
                        .array(
                            m.bins.map {
                                .object([
                                    ("score", JSONValue($0.score)), ("right", JSONValue($0.right)),
                                    ("count", JSONValue($0.count)),
                                ])
                            })
                    ),
                ] + selection.map { (String($0.0.dropFirst(4)), JSONValue($0.1)) }
        }
        var spec: [(String, JSONValue)] = []
        if case let .object(f) = body.prm.json { spec = f }
        return [
            (
                "prm",
                .object(
                    spec + [
                        ("head", .string("\(RewardHead.fileName): \(RewardHead.weightName), \(RewardHead.biasName)")),
                        ("trainSolutions", JSONValue(data.train.count)),
                        ("trainPositions", JSONValue(labels.count)),
                        ("meanLabel", JSONValue(labels.isEmpty ? 0 : labels.reduce(0, +) / Double(labels.count))),
                        ("validSolutionShare", JSONValue(Double(valid) / Double(max(1, data.train.count)))),
                        ("rollouts", JSONValue(data.rollouts)),
                        ("policyTokens", JSONValue(data.generatedTokens)),
                        ("labellingSeconds", JSONValue((data.seconds * 10).rounded() / 10)),
                        ("heldOut", .object(metricFields)),
                    ])
            ),
            ("flops.labelling", JSONValue(data.flops)),
            ("flops.prmEvaluation", JSONValue(evaluationFlops)),
            (
                "init",
                initAccount.map {
                    .object([("checkpoint", .string($0.path)), ("trainFlops", $0.flops.map { JSONValue($0) } ?? .null)])
                } ?? .null
            ),
        ]
    }
}
