// DistillKind.swift: the `distill` kind (issue 12, part 3). A trial trains a student exactly as
// `train` does (same data, schedule, checkpoints, resume and evaluation), except that each step's
// loss compares the student's logits with a teacher's, computed on the fly from the teacher
// checkpoint on the same batch (specs/phase.md (d); the kernels are VLDTensor/Distillation.swift).
//
//   {"kind": "distill", "teacher": "@teacher", "task": ..., "model": ..., "train": ...,
//    "distill": {"loss": "kd_forward", "temperature": 2, "lambda": 0.9}}
//
// `teacher` is a checkpoint reference (Stages.swift): in a pipeline, "@stage" is the final
// checkpoint of the teacher's training stage. The teacher must share the student's tokenizer (the
// same task mixture gives the same vocabulary); its size, depth and schedule are free.
// Losses: ce (the CE-only baseline of the same run), kd_forward(T, lambda), kd_reverse(T, lambda),
// jsd(beta), topk(k), sampled(k) (a support drawn from the teacher each step), logit_mse, and
// seqkd (CE on the teacher's own continuations, greedy or sampled); `onPolicy` mixes in steps on
// the student's own samples. Generated tokens are counted in results.json (since the process last
// started the trial: a resumed trial counts from its resume). Each evaluation adds `distill.klTeacherStudent`, the mean
// KL(teacher ‖ student) at temperature 1 over the scored positions of the held-out batches;
// results.json adds the teacher (its checkpoint, model and its own task metrics on the same
// evaluation) and the teacher's forward FLOPs next to the student's training FLOPs.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The body of a `distill` manifest: the student as a train body, the teacher and the loss.
public struct DistillBody: KindBody, Equatable {
    public var student: TrainBody
    public var teacher: CheckpointRef
    public var distill: DistillSpec

    public var resolvedFields: [(String, JSONValue)] {
        [("teacher", .string(teacher.description))] + student.resolvedFields + [("distill", distill.json)]
    }
    public var progress: (total: Int, unit: String) { student.progress }
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] {
        [("teacher", teacher)] + student.checkpointRefs
    }

    /// The student's cost; the teacher's forward passes come on top (unknown until its checkpoint
    /// exists; results.json reports them).
    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate { try student.estimate(header) }

    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] {
        var out = student.summaryScalars(results)
        if case let .number(f)? = results["flops"]?["teacher"] { out.append(("teacherFlops", f)) }
        if case let .number(p)? = results["teacher"]?["model"]?["P_total"] { out.append(("teacher.P_total", p)) }
        if case let .number(l)? = results["teacher"]?["evalLoss"] { out.append(("teacher.evalLoss", l)) }
        if case let .object(m)? = results["teacher"]?["metrics"] {
            for (k, v) in m { if case let .number(n) = v { out.append(("teacher." + k, n)) } }
        }
        return out
    }
}

enum DistillKind: ExperimentKind {
    static let name = "distill"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> DistillBody? {
        let teacher = root.checkpointRef("teacher")
        if teacher == nil, root.raw("teacher") == nil || root.raw("teacher") == .null {
            root.issues.add(
                "teacher", "missing; expected the teacher's checkpoint: \(CheckpointRef.accepted)")
        }
        let spec = DistillSpec.parse(root.object("distill"))
        guard let student = TrainKind.parse(&root, header: header, limits: limits), let teacher else { return nil }
        return DistillBody(student: student, teacher: teacher, distill: spec)
    }

    static func crossCheck(_ body: DistillBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        body.student.crossCheck(header, issues: issues, limits: limits)
    }

    /// The teacher beside each student condition: KL to it, held-out loss and the headline
    /// accuracies of both, and what the teacher's forward passes cost against the student's training.
    static func reportSections(_ r: inout HTMLReport, conditions: [Summary.Condition]) {
        r.heading("Distillation")
        let keys = conditions.flatMap { $0.stats.map(\.0) }
        var accuracy: [String] = []
        for k in keys where k.hasPrefix("teacher.") && !accuracy.contains(String(k.dropFirst(8))) {
            let key = String(k.dropFirst(8))
            if key.hasPrefix("igsm.acc.") || key.hasPrefix("chain.acc.") || key == "bios.bitsPerParam" {
                accuracy.append(key)
            }
        }
        accuracy = Array(accuracy.prefix(4))
        func pct(_ k: String) -> Bool { HeadlineMetrics.isPercent(k) }
        r.table(
            headers: ["student", "loss", "KL(teacher ‖ student)", "evalLoss (teacher)"]
                + accuracy.map { pct($0) ? "\($0) % (teacher)" : "\($0) (teacher)" }
                + ["teacher FLOPs / student FLOPs"],
            rows: conditions.map { c in
                let loss = c.trials.first.flatMap { ($0.trial.manifest.body as? DistillBody)?.distill.name } ?? "?"
                func both(_ k: String) -> String {
                    SummaryReport.cell(c.stat(k), percent: pct(k)) + " ("
                        + SummaryReport.cell(c.stat("teacher." + k), percent: pct(k)) + ")"
                }
                let ratio: String
                if let t = c.stat("teacherFlops")?.mean, let s = c.stat("trainFlops")?.mean, s > 0 {
                    ratio = formatNumber(t / s, significant: 3)
                } else {
                    ratio = "—"
                }
                return [c.label, loss, SummaryReport.cell(c.stat("distill.klTeacherStudent")), both("evalLoss")]
                    + accuracy.map(both) + [ratio]
            }, numericColumns: Set(2..<(5 + accuracy.count)))
        r.paragraph(
            "KL(teacher ‖ student) is the mean over the scored positions of the held-out batches, at temperature 1. "
                + "Each cell is the student's value with the teacher's in parentheses; the teacher's FLOPs are its "
                + "forward passes on the student's batches (seqkd: its generation is in flops.generation instead). "
                + "Compare each distilled condition with its CE-only control of the same schedule and budget."
        )
        r.chart(
            BarChart(
                title: "KL(teacher ‖ student) by condition", yLabel: "nats per scored token", seriesNames: ["KL"],
                groups: conditions.map {
                    BarGroup(label: $0.label, bars: [SummaryReport.point($0.stat("distill.klTeacherStudent"))])
                }
            ).svg(width: 760, height: 360))
    }

    static func run(_ trial: Trial, body: DistillBody, in dir: TrialDirectory, context: RunContext) throws
        -> TrialOutcome
    {
        try TrainRunner.train(trial, body: body.student, in: dir, context: context) { setup in
            try Distiller(body: body, setup: setup)
        }
    }
}

/// The teacher and the loss of one distill trial, plugged into the training loop.
final class Distiller: TrainingHooks {
    let body: DistillBody
    let teacher: Transformer
    let teacherDirectory: URL
    let pool: ThreadPool
    let evaluator: Evaluator
    let studentConfig: ModelConfig
    let seed: UInt64
    /// The teacher's own evaluation (the same held-out data and problems as the student's).
    let teacherEvaluation: Evaluation
    var losses: [Float] = []
    /// Tokens generated for seqkd or on-policy steps, and the on-policy steps, since this process started the trial.
    var generatedTokens = 0
    var onPolicySteps = 0
    /// The teacher's cached top-K logits (`cacheTeacher`), and the buffer its rows are rebuilt in.
    var cache: TeacherCache?
    var cachedLogits: FPtr?
    var cachedCapacity = 0
    /// True when this process built the cache (its teacher FLOPs are this trial's).
    var builtCache = false

    deinit { cachedLogits?.deallocate() }

    init(body: DistillBody, setup: HookSetup) throws {
        self.body = body
        pool = setup.pool
        evaluator = setup.evaluator
        studentConfig = setup.config
        seed = setup.evaluator.seed
        let (loaded, dir) = try TrainRunner.loadCheckpoint(
            body.teacher, role: "teacher", context: setup.context, pool: setup.pool, tokenizer: setup.mixture.tokenizer,
            mismatch: "the student's tasks (distillation needs one vocabulary)")
        teacher = loaded
        teacherDirectory = dir
        let what = "teacher \(body.teacher) (\(dir.path))"
        guard teacher.config.vocab == setup.config.vocab else {
            throw TrialError(
                "\(what) has a vocabulary of \(teacher.config.vocab); the student's is \(setup.config.vocab)")
        }
        guard teacher.config.context >= body.student.model.context else {
            throw TrialError(
                "\(what) has a context of \(teacher.config.context); the student trains on \(body.student.model.context)"
            )
        }
        // The teacher's own config: per-parameter metrics divide by its parameters, not the student's.
        teacherEvaluation = try Evaluator(
            body: body.student, seed: setup.evaluator.seed, mixture: setup.mixture, config: teacher.config
        ).evaluate(teacher)
        if let k = body.distill.cacheTeacher {
            cache = try TeacherCache.openOrBuild(K: k, teacher: teacher, at: dir, body: body.student, setup: setup)
            builtCache = cache.map { $0.buildSeconds > 0 } ?? false
        }
        setup.log(
            "teacher \(body.teacher): \(TrainRunner.brief(teacher.config)) schedule \(teacher.config.schedule), "
                + "P_total=\(teacher.config.totalParams), eval_loss=\(formatNumber(teacherEvaluation.loss, significant: 4)) "
                + TrainRunner.headline(teacherEvaluation) + " | loss \(body.distill.loss)")
    }

    func step(
        _ model: Transformer, batch data: PackedBatch, B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState
    ) throws -> StepStats {
        // Draws for this step (on-policy or not, the samples) depend on the seed and the step only.
        var rng = SeededRNG(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(optimizer.step) &+ 1)
        if let mode = body.distill.seqKD {
            let batch = try regenerate(data, B: B, T: T, by: teacher, greedy: mode == .greedy, rng: &rng)
            generatedTokens += batch.generated
            return try model.trainStep(
                inputs: batch.batch.inputs, targets: batch.batch.targets, B: B, T: T, lr: lr, clip: clip,
                optimizer: optimizer, segments: batch.batch.segments)
        }
        var batch = data
        if body.distill.onPolicy > 0, rng.nextDouble() < body.distill.onPolicy {
            let sampled = try regenerate(data, B: B, T: T, by: model, greedy: false, rng: &rng)
            batch = sampled.batch
            generatedTokens += sampled.generated
            onPolicySteps += 1
        }
        // The CE-only control trains as `train` does (bit for bit: the loss closure's CE is the
        // same kernel), without running the teacher.
        if !body.distill.usesTeacherLogits {
            return try model.trainStep(
                inputs: batch.inputs, targets: batch.targets, B: B, T: T, lr: lr, clip: clip, optimizer: optimizer,
                segments: batch.segments)
        }
        if losses.count < B * T { losses = [Float](repeating: 0, count: B * T) }
        let teacherLogits: CFPtr
        if let cache {
            if cachedCapacity < B * T * cache.V {
                cachedLogits?.deallocate()
                cachedCapacity = B * T * cache.V
                cachedLogits = FPtr.allocate(capacity: cachedCapacity)
            }
            try cache.fill(step: optimizer.step, targets: batch.targets, into: cachedLogits!)
            teacherLogits = CFPtr(cachedLogits!)
        } else {
            try teacher.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
            teacherLogits = teacher.logitsBuffer
        }
        var kind = body.distill.loss
        // sampled(K) draws a new support every step, reproducibly: from the trial's seed and the step.
        if case let .sampledK(k, _) = kind {
            kind = .sampledK(k, seed: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(optimizer.step))
        }
        return try model.trainStep(
            inputs: batch.inputs, B: B, T: T, lr: lr, clip: clip, optimizer: optimizer, segments: batch.segments
        ) { logits, N, V in
            batch.targets.withUnsafeBufferPointer { t in
                losses.withUnsafeMutableBufferPointer { l in
                    distillationForwardBackward(
                        kind, losses: l.baseAddress!, dlogits: logits, student: UnsafePointer(logits),
                        teacher: teacherLogits, targets: t.baseAddress!, N: N, V: V, pool: pool
                    ).loss
                }
            }
        }
    }

    /// `batch` with every document's scored span (from its first scored position to its last)
    /// replaced by what `model` generates after the document's prefix, as many tokens as the span
    /// held: the generated tokens become the inputs and the targets there (no stop token, so a
    /// document keeps its length and the packing stays as it was).
    func regenerate(_ batch: PackedBatch, B: Int, T: Int, by model: Transformer, greedy: Bool, rng: inout SeededRNG)
        throws -> (batch: PackedBatch, generated: Int)
    {
        var spans: [(row: Int, start: Int, first: Int, end: Int)] = []
        for b in 0..<B {
            var i = 0
            while i < T {
                let segment = batch.segments[b * T + i]
                var j = i
                while j < T && batch.segments[b * T + j] == segment { j += 1 }
                if let f = (i..<j).first(where: { batch.targets[b * T + $0] >= 0 }),
                    let l = (i..<j).last(where: { batch.targets[b * T + $0] >= 0 })
                {
                    spans.append((b, i, f, l + 1))
                }
                i = j
            }
        }
        guard !spans.isEmpty else { return (batch, 0) }
        let prompts = spans.map { Array(batch.inputs[($0.row * T + $0.start)...($0.row * T + $0.first)]) }
        let longest = spans.map { $0.end - $0.first }.max()!
        let options =
            greedy
            ? SamplingOptions.greedy(maxNewTokens: longest) : SamplingOptions(maxNewTokens: longest, temperature: 1)
        let outputs = try model.generate(prompts: prompts, options: options, rng: &rng)
        var out = batch
        var generated = 0
        for (span, tokens) in zip(spans, outputs) {
            let base = span.row * T
            for j in 0..<(span.end - span.first) {
                guard j < tokens.count else {
                    out.targets[base + span.first + j] = -1
                    continue
                }
                out.targets[base + span.first + j] = tokens[j]
                if span.first + 1 + j < span.end { out.inputs[base + span.first + 1 + j] = tokens[j] }
                generated += 1
            }
        }
        return (out, generated)
    }

    /// KL(teacher ‖ student) at temperature 1, the mean over the scored positions of the
    /// held-out batches the evaluation loss uses.
    func evaluate(_ model: Transformer) throws -> [(String, Double)] {
        let B = body.student.train.batch, T = body.student.model.context
        var cursor = Evaluator.heldOutCursor
        var total = 0.0, count = 0
        for _ in 0..<body.student.train.evalBatches {
            let batch = try evaluator.mixture.batch(seed: evaluator.seed, cursor: cursor, B: B, T: T)
            cursor = batch.nextCursor
            try teacher.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
            try model.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
            if losses.count < B * T { losses = [Float](repeating: 0, count: B * T) }
            let r = batch.targets.withUnsafeBufferPointer { t in
                losses.withUnsafeMutableBufferPointer { l in
                    distillationForwardBackward(
                        .jsd(beta: 0), losses: l.baseAddress!, dlogits: nil, student: model.logitsBuffer,
                        teacher: teacher.logitsBuffer, targets: t.baseAddress!, N: B * T, V: studentConfig.vocab,
                        pool: pool)
                }
            }
            total += Double(r.loss) * Double(r.count)
            count += r.count
        }
        return [("distill.klTeacherStudent", count > 0 ? total / Double(count) : .nan)]
    }

    func results(steps: Int) -> [(String, JSONValue)] {
        let B = body.student.train.batch, T = body.student.model.context
        let studentStep = studentConfig.trainFlopsPerStep(batch: B, seqLen: T)
        // A forward pass is a third of a training step under the 6N convention.
        let teacherStep = teacher.config.trainFlopsPerStep(batch: B, seqLen: T) / 3
        let c = teacher.config
        var specFields: [(String, JSONValue)] = []
        if case let .object(f) = body.distill.json { specFields = f }
        // Generation (seqkd: the teacher; on-policy: the student), per token at most the full context.
        let generator = body.distill.seqKD != nil ? c : studentConfig
        let generationFlops = Double(generatedTokens) * generator.forwardFlopsPerToken(attending: T)
        // With a cache the teacher ran once, in the trial that built it, over the whole data stream.
        let teacherFlops =
            !body.distill.usesTeacherLogits
            ? 0
            : cache == nil
                ? teacherStep * Double(steps)
                : builtCache ? teacherStep * Double(cache!.steps) : 0
        let cacheFields = cache.map { [("cache", $0.results(built: builtCache))] } ?? []
        return [
            (
                "flops",
                .object([
                    ("forwardPerToken", JSONValue(studentConfig.forwardFlopsPerToken(attending: T))),
                    ("trainPerStep", JSONValue(studentStep)), ("train", JSONValue(studentStep * Double(steps))),
                    ("teacherPerStep", JSONValue(teacherStep)),
                    ("teacher", JSONValue(teacherFlops)),
                    ("generation", JSONValue(generationFlops)),
                ])
            ),
            (
                "teacher",
                .object([
                    ("checkpoint", .string(body.teacher.description)), ("path", .string(teacherDirectory.path)),
                    (
                        "model",
                        .object([
                            ("arch", .string(c.arch.rawValue)), ("dModel", JSONValue(c.dModel)),
                            ("layers", JSONValue(c.layers)), ("schedule", .string(c.schedule.description)),
                            ("D", JSONValue(c.applications)), ("P_total", JSONValue(c.totalParams)),
                            ("P_nonEmbedding", JSONValue(c.nonEmbeddingParams)),
                        ])
                    ),
                    ("evalLoss", JSONValue(teacherEvaluation.loss)),
                    ("metrics", .object(teacherEvaluation.scalars.map { ($0.0, JSONValue($0.1)) })),
                ])
            ),
            (
                "distill",
                .object(
                    specFields + [
                        ("generatedTokens", JSONValue(generatedTokens)), ("onPolicySteps", JSONValue(onPolicySteps)),
                    ] + cacheFields)
            ),
        ]
    }
}

extension Experiment {
    /// What `trial` costs, with a distill trial's teacher forward passes added when its teacher
    /// is a stage of this experiment (its model is known before it exists: a third of a training
    /// step of the teacher per student step, the 6N convention).
    public func estimate(_ trial: Trial) throws -> TrialEstimate {
        var e = try trial.manifest.estimate()
        if let body = trial.manifest.body as? DistillBody, body.distill.usesTeacherLogits,
            let teacher = self.trial(for: body.teacher)?.manifest.body as? TrainBody
        {
            let cfg = teacher.modelConfig(vocab: try teacher.makeMixture().tokenizer.vocabSize)
            e.flops +=
                cfg.trainFlopsPerStep(batch: body.student.train.batch, seqLen: body.student.model.context) / 3
                * Double(body.student.train.steps)
        }
        return e
    }
}
