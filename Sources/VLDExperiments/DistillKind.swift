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
// jsd(beta), topk(k), sampled(k) (a support drawn from the teacher each step), logit_mse. Each evaluation adds `distill.klTeacherStudent`, the mean
// KL(teacher ‖ student) at temperature 1 over the scored positions of the held-out batches;
// results.json adds the teacher (its checkpoint, model and its own task metrics on the same
// evaluation) and the teacher's forward FLOPs next to the student's training FLOPs.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// How a student learns from its teacher.
public struct DistillSpec: Equatable, Sendable {
    public var loss: DistillationLoss = .kdForward(temperature: 2, lambda: 0.5)

    public static let losses = ["ce", "kd_forward", "kd_reverse", "jsd", "topk", "sampled", "logit_mse"]
    /// Named in the spec, not built yet: a manifest asking for one is told so.
    public static let planned = ["seqkd"]

    var name: String {
        switch loss {
        case .ce: return "ce"
        case .kdForward: return "kd_forward"
        case .kdReverse: return "kd_reverse"
        case .jsd: return "jsd"
        case .topK: return "topk"
        case .sampledK: return "sampled"
        case .logitMSE: return "logit_mse"
        }
    }

    var json: JSONValue {
        var f: [(String, JSONValue)] = [("loss", .string(name))]
        switch loss {
        case let .kdForward(t, l), let .kdReverse(t, l):
            f += [("temperature", JSONValue(t)), ("lambda", JSONValue(l))]
        case let .jsd(b): f.append(("beta", JSONValue(b)))
        case let .topK(k), let .sampledK(k, _): f.append(("k", JSONValue(k)))
        case .ce, .logitMSE: break
        }
        return .object(f)
    }

    static func parse(_ r: FieldReader) -> DistillSpec {
        var r = r
        var s = DistillSpec()
        let name: String
        if case let .string(n)? = r.raw("loss"), planned.contains(n) {
            _ = r.value("loss")
            r.issues.add(
                r.sub("loss"),
                "\"\(n)\" is not available in vld \(VLD.version) yet; expected one of \(losses.joined(separator: ", "))"
            )
            name = "ce"
        } else {
            name = r.choice("loss", default: "kd_forward", from: losses)
        }
        switch name {
        case "ce": s.loss = .ce
        case "kd_forward", "kd_reverse":
            let t = r.double("temperature", default: 2, in: 0.05...100)
            let l = r.double("lambda", default: 0.5, in: 0...1)
            s.loss =
                name == "kd_forward" ? .kdForward(temperature: t, lambda: l) : .kdReverse(temperature: t, lambda: l)
        case "jsd": s.loss = .jsd(beta: r.double("beta", default: 0.5, in: 0...1))
        case "topk": s.loss = .topK(r.int("k", default: 16, in: 1...1_000_000))
        case "sampled": s.loss = .sampledK(r.int("k", default: 16, in: 1...1_000_000), seed: 0)
        case "logit_mse": s.loss = .logitMSE
        default: break
        }
        r.finish()
        return s
    }
}

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

    init(body: DistillBody, setup: HookSetup) throws {
        self.body = body
        pool = setup.pool
        evaluator = setup.evaluator
        studentConfig = setup.config
        seed = setup.evaluator.seed
        let dir = try setup.context.checkpoint(body.teacher)
        teacherDirectory = dir
        let what = "teacher \(body.teacher) (\(dir.path))"
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            throw TrialError("\(what): no checkpoint there (config.json is missing)")
        }
        do { teacher = try Checkpoint.loadModel(from: dir, pool: setup.pool) } catch {
            throw TrialError("\(what): cannot load the checkpoint: \(error)")
        }
        do { _ = try WordTokenizer.load(from: dir, expecting: setup.mixture.tokenizer) } catch {
            throw TrialError(
                "\(what): its tokenizer differs from the student's tasks (distillation needs one vocabulary): \(error)")
        }
        guard teacher.config.vocab == setup.config.vocab else {
            throw TrialError(
                "\(what) has a vocabulary of \(teacher.config.vocab); the student's is \(setup.config.vocab)")
        }
        guard teacher.config.context >= body.student.model.context else {
            throw TrialError(
                "\(what) has a context of \(teacher.config.context); the student trains on \(body.student.model.context)"
            )
        }
        teacherEvaluation = try setup.evaluator.evaluate(teacher)
        setup.log(
            "teacher \(body.teacher): \(TrainRunner.brief(teacher.config)) schedule \(teacher.config.schedule), "
                + "P_total=\(teacher.config.totalParams), eval_loss=\(formatNumber(teacherEvaluation.loss, significant: 4)) "
                + TrainRunner.headline(teacherEvaluation) + " | loss \(body.distill.loss)")
    }

    func step(
        _ model: Transformer, batch: PackedBatch, B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState
    ) throws -> StepStats {
        try teacher.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
        if losses.count < B * T { losses = [Float](repeating: 0, count: B * T) }
        let teacherLogits = teacher.logitsBuffer
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
        return [
            (
                "flops",
                .object([
                    ("forwardPerToken", JSONValue(studentConfig.forwardFlopsPerToken(attending: T))),
                    ("trainPerStep", JSONValue(studentStep)), ("train", JSONValue(studentStep * Double(steps))),
                    ("teacherPerStep", JSONValue(teacherStep)), ("teacher", JSONValue(teacherStep * Double(steps))),
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
            ("distill", body.distill.json),
        ]
    }
}
