// TrainKind.swift: the `train` kind. A trial trains one model on a task mixture (TrainRun.swift)
// and evaluates it on each task; its body is the manifest's `task`, `model` and `train`.

import Foundation
import VLDModel

/// The body of a `train` manifest.
public struct TrainBody: KindBody, Equatable {
    public var tasks: [TaskSpec]
    public var model = ModelSpec()
    public var train = TrainSpec()
    /// The checkpoint the weights start from (`init`); nil: a fresh initialization.
    public var initFrom: CheckpointRef?

    public init(tasks: [TaskSpec], model: ModelSpec, train: TrainSpec, initFrom: CheckpointRef? = nil) {
        self.tasks = tasks
        self.model = model
        self.train = train
        self.initFrom = initFrom
    }

    public var checkpointRefs: [(path: String, ref: CheckpointRef)] { initFrom.map { [("init", $0)] } ?? [] }

    public var evalEvery: Int { train.evalEvery ?? max(1, train.steps / 10) }
    public var checkpointEvery: Int { train.checkpointEvery ?? evalEvery }
    public var minLr: Double { train.minLr ?? train.lr / 10 }

    public var progress: (total: Int, unit: String) { (train.steps, "training steps") }

    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate {
        let cfg = modelConfig(vocab: try makeMixture().tokenizer.vocabSize)
        return TrialEstimate(
            parameters: cfg.totalParams,
            memoryMiB: TrainBody.trainingMemoryMiB(cfg, batch: train.batch, context: model.context),
            flops: cfg.trainFlopsPerStep(batch: train.batch, seqLen: model.context) * Double(train.steps),
            progressTotal: progress.total, progressUnit: progress.unit)
    }

    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] {
        var out: [(String, Double)] = []
        func add(_ key: String, _ v: JSONValue?) { if case let .number(n)? = v { out.append((key, n)) } }
        add("evalLoss", results["training"]?["evalLoss"])
        add("finalTrainLoss", results["training"]?["finalTrainLoss"])
        if case let .object(f)? = results["metrics"] { for (k, v) in f { add(k, v) } }
        add("P_total", results["model"]?["P_total"])
        add("P_nonEmbedding", results["model"]?["P_nonEmbedding"])
        add("D", results["model"]?["D"])
        add("trainFlops", results["flops"]?["train"])
        add("wallSeconds", results["timing"]?["wallSeconds"])
        return out
    }
}

enum TrainKind: ExperimentKind {
    static let name = "train"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> TrainBody? {
        let model = TrainBody.parseModel(root.object("model"))
        let tasks = TrainBody.parseTasks(root.value("task"), issues: root.issues)
        let train = TrainBody.parseTrain(root.object("train"), limits: limits)
        let initFrom = root.checkpointRef("init")
        if tasks.isEmpty {
            if root.issues.items.isEmpty { root.issues.add("task", "expected a task") }
            return nil
        }
        return TrainBody(tasks: tasks, model: model.spec, train: train.spec, initFrom: initFrom)
    }

    static func crossCheck(_ body: TrainBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        body.crossCheck(header, issues: issues, limits: limits)
    }

    static func run(_ trial: Trial, body: TrainBody, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome
    {
        try TrainRunner.run(trial, in: dir, context: context)
    }
}
