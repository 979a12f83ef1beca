// PhaseKind.swift: the `phase` kind (issue 14, part 4; specs/phase.md 5(a), 5(c)). A trial reads
// ladders of checkpoints (usually the trials of training stages in the same manifest), asks each
// the world's forced-choice probes and reads its residual stream, and estimates how reasoning and
// truthfulness move together across the ladder, with intervals and null controls:
//
//   {"kind": "phase", "ladders": {"raw": ["@raw/*"], "clean": ["@clean/*"]}, "orderBy": "dModel",
//    "task": {"type": "world", ...}, "phase": {"items": 300, "truth": "T_MC2"}}
//
// A ladder (a family) is a list of checkpoints; those with the same value of `orderBy` (dModel,
// layers, params, step or tokens) are one ladder point, and their seeds its replicates.
// "@stage/*" lists every trial of a stage. Each checkpoint's item-level outcomes and per-layer
// representation measures are one line of outcomes.jsonl, appended durably (a stopped trial
// resumes after its last whole checkpoint; PhaseRun.swift); results.json and the report (PhaseReport.swift) are
// computed from those lines alone (PhaseAnalysis.swift).

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The `phase` section: how many probes, which truthfulness score, and the estimators' settings.
public struct PhaseSpec: Equatable, Sendable {
    /// Probes of each kind (knowledge, truth, reasoning), drawn from the trial's seed.
    public var items = 300
    /// The truthfulness score gamma and the correlations use (T_MC2 is continuous: less noisy).
    public var truth = TruthScore.mc2
    /// Gamma is undefined where R moves less than epsilon (0.5 percentage points, as the
    /// paper's dashboard code).
    public var epsilon = 0.005
    /// The dead band of TRANSITION around gamma = 0.
    public var band = 0.1
    /// Bootstrap replicates (items and seeds) and permutations of the width-normalization null.
    public var resamples = 1000
    public var permutations = 10_000
    /// R: "known" counts the reasoning probes whose two parts the model answers right (the
    /// spec's R), "all" every reasoning probe (R_all: when too few parts are known to count).
    public var reasoning = "known"
    /// Rows per forward pass.
    public var batch = 32

    var json: JSONValue {
        .object([
            ("items", JSONValue(items)), ("truth", .string(truth.rawValue)), ("epsilon", JSONValue(epsilon)),
            ("band", JSONValue(band)), ("resamples", JSONValue(resamples)), ("permutations", JSONValue(permutations)),
            ("reasoning", .string(reasoning)), ("batch", JSONValue(batch)),
        ])
    }

    static func parse(_ r: FieldReader) -> PhaseSpec {
        var r = r
        var s = PhaseSpec()
        s.items = r.int("items", default: s.items, in: 10...100_000)
        s.truth =
            TruthScore(
                rawValue: r.choice("truth", default: s.truth.rawValue, from: TruthScore.allCases.map(\.rawValue)))
            ?? .mc2
        s.epsilon = r.double("epsilon", default: s.epsilon, in: 0...1)
        s.band = r.double("band", default: s.band, in: 0...10)
        s.resamples = r.int("resamples", default: s.resamples, in: 100...100_000)
        s.permutations = r.int("permutations", default: s.permutations, in: 100...1_000_000)
        s.reasoning = r.choice("reasoning", default: s.reasoning, from: ["known", "all"])
        s.batch = r.int("batch", default: s.batch, in: 1...1024)
        r.finish()
        return s
    }
}

/// What orders a ladder's points.
public enum LadderOrder: String, Sendable, CaseIterable {
    case dModel, layers, params, step, tokens
}

/// The body of a `phase` manifest.
public struct PhaseBody: KindBody, Equatable {
    public struct Family: Equatable, Sendable {
        public var name: String
        public var refs: [CheckpointRef]
    }
    public var ladders: [Family]
    public var orderBy: LadderOrder
    public var tasks: [TaskSpec]
    public var phase: PhaseSpec
    /// A steer trial whose results the dashboard shows beside the ladders (optional).
    public var steering: CheckpointRef? = nil

    public var resolvedFields: [(String, JSONValue)] {
        let task = TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).resolvedFields[0]
        return [
            ("ladders", .object(ladders.map { ($0.name, .array($0.refs.map { .string($0.description) })) })),
            ("orderBy", .string(orderBy.rawValue)), task, ("phase", phase.json),
        ] + (steering.map { [("steering", .string($0.description))] } ?? [])
    }
    public var progress: (total: Int, unit: String) { (ladders.reduce(0) { $0 + $1.refs.count }, "checkpoints") }
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] {
        ladders.flatMap { f in f.refs.enumerated().map { ("ladders.\(f.name)[\($0.offset)]", $0.element) } }
            + (steering.map { [("steering", $0)] } ?? [])
    }

    /// No model is trained; the forward passes depend on the checkpoints.
    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate {
        TrialEstimate(
            parameters: 0, memoryMiB: 256, flops: 0, progressTotal: progress.total, progressUnit: progress.unit)
    }

    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] { metricScalars(results) }

    func worldTask() throws -> WorldTask {
        guard
            let t = try TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).makeMixture().tasks.first
                as? WorldTask
        else { throw TrialError("task: a phase trial asks the probes of a world task") }
        return t
    }
}

enum PhaseKind: ExperimentKind {
    static let name = "phase"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> PhaseBody? {
        var families: [PhaseBody.Family] = []
        switch root.value("ladders") {
        case let .object(fields)?:
            for (name, v) in fields {
                let p = root.sub("ladders") + "." + name
                guard case let .array(items) = v else {
                    root.issues.add(p, "\(v.brief) is not a list; expected checkpoint references, e.g. [\"@ladder/*\"]")
                    continue
                }
                var refs: [CheckpointRef] = []
                for (i, item) in items.enumerated() {
                    if case let .string(s) = item, s.hasPrefix("@"), s.hasSuffix("/*") {
                        root.issues.add(
                            "\(p)[\(i)]",
                            "\(item.brief) names no stage written before this one; \"@stage/*\" lists every trial of an earlier stage of this manifest"
                        )
                        continue
                    }
                    guard case let .string(s) = item, let ref = CheckpointRef(parsing: s) else {
                        root.issues.add(
                            "\(p)[\(i)]",
                            "\(item.brief) is not a checkpoint reference; expected \(CheckpointRef.accepted), or \"@stage/*\""
                        )
                        continue
                    }
                    refs.append(ref)
                }
                if refs.count < 3 && refs.count == items.count {
                    root.issues.add(
                        p,
                        "a ladder of \(refs.count) checkpoint\(refs.count == 1 ? "" : "s"); expected at least 3 points")
                }
                families.append(PhaseBody.Family(name: name, refs: refs))
            }
            if fields.isEmpty {
                root.issues.add(root.sub("ladders"), "is empty; expected {\"<family>\": [checkpoints], ...}")
            }
        case let v?:
            root.issues.add(
                root.sub("ladders"), "\(v.brief) is not an object; expected {\"<family>\": [\"@stage/*\"], ...}")
        case nil:
            root.issues.add(
                root.sub("ladders"),
                "missing; expected {\"<family>\": [checkpoints], ...}, e.g. {\"raw\": [\"@raw/*\"]}")
        }
        let order =
            LadderOrder(
                rawValue: root.choice("orderBy", default: "params", from: LadderOrder.allCases.map(\.rawValue)))
            ?? .params
        let tasks = TrainBody.parseTasks(root.value("task"), issues: root.issues)
        let spec = PhaseSpec.parse(root.object("phase"))
        let steering = root.checkpointRef("steering")
        guard !families.isEmpty, !tasks.isEmpty else { return nil }
        return PhaseBody(ladders: families, orderBy: order, tasks: tasks, phase: spec, steering: steering)
    }

    static func crossCheck(_ body: PhaseBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        guard body.tasks.count == 1, case .world = body.tasks[0] else {
            issues.add("task", "a phase trial asks the probes of one world task; expected {\"type\": \"world\", ...}")
            return
        }
    }

    static func run(_ trial: Trial, body: PhaseBody, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome
    {
        try PhaseRunner(trial: trial, body: body, dir: dir, context: context).run()
    }
}
