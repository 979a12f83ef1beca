// SteerKind.swift: the `steer` kind (issue 14, part 5; specs/phase.md 5(b), 5(a).4, 5(f) target 6).
// A trial steers each of its models along directions read from contrastive statements about the
// world and sweeps layer x alpha:
//
//   {"kind": "steer", "models": ["@raw64/0", "@raw256/0"], "task": {"type": "world", ...},
//    "steer": {"method": "diffMeans", "site": "resid_post", "scale": "sigma",
//              "alphas": [-8, -4, -2, -1, 0, 1, 2, 4, 8]}}
//
// Directions (one per concept, per layer), from the dev half of the probes (even items), read at
// the answer word of a statement (or the mean over its words) at the steered site:
//   T  the truth against the misconception on misconception facts (contrastive pairs, CAA-style)
//   R  the right against a wrong value of a held-out 2-hop composition after its premise
//   K  the true against a wrong value of facts without misconceptions (GoT's true/false facts)
// Each is added (alpha in the chosen scale) or projected out at the chosen token positions while
// the model answers the forced-choice probes; scores are taken on the dev half (to choose the best
// layer and alpha for each concept) and reported on the test half (odd items): the changes in T
// (T_MC2), R (every held-out composition) and K, the cross-entropy and KL against the unsteered
// model on held-out training text, per-item slopes of the truth's margin over alpha and the
// anti-steerable fraction (Tan et al. 2024), the cross-effect matrix C_ij = (S_j(+a) - S_j(-a))/2a
// with kappa = C_RT / sqrt(|C_RR C_TT|). Controls along T: a random direction of the same size, the
// direction of shuffled labels, and the T direction scored on the probes in another template
// (out of template). The vectors are saved to vectors.safetensors with their metadata; `vectors`
// applies a saved file's vectors instead of building them (a model of the same width).

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

public struct SteerSpec: Equatable, Sendable {
    public var method = SteerMethod.diffMeans
    public var site = SiteKind.residPost
    /// Where directions are read: the statement's answer word, or the mean over its words.
    public var read = "answer"
    /// Schedule positions to sweep; nil: every one.
    public var layers: [Int]?
    public var alphas: [Double] = [-8, -4, -2, -1, 0, 1, 2, 4, 8]
    public var scale = SteerScale.sigma
    public var mode = SteerMode.add
    public var positions = SteerPositions.all
    /// Probes of each kind (halved into dev and test), held-out documents for CE and KL.
    public var items = 200
    public var textDocuments = 32
    public var controls = true
    /// A vectors.safetensors of another steer trial to apply instead of building directions.
    public var vectors: String?
    public var batch = 32

    var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("method", .string(method.rawValue)), ("site", .string(site.rawValue)), ("read", .string(read)),
            ("layers", layers.map { .array($0.map { JSONValue($0) }) } ?? .string("all")),
            ("alphas", .array(alphas.map { JSONValue($0) })), ("scale", .string(scale.rawValue)),
            ("mode", .string(mode.rawValue)), ("positions", .string(positions.description)),
            ("items", JSONValue(items)), ("textDocuments", JSONValue(textDocuments)), ("controls", .bool(controls)),
        ]
        if let vectors { f.append(("vectors", .string(vectors))) }
        f.append(("batch", JSONValue(batch)))
        return .object(f)
    }

    static func parse(_ r: FieldReader) -> SteerSpec {
        var r = r
        var s = SteerSpec()
        func pick<E: RawRepresentable & CaseIterable>(_ key: String, _ d: E) -> E where E.RawValue == String {
            E(rawValue: r.choice(key, default: d.rawValue, from: E.allCases.map(\.rawValue))) ?? d
        }
        s.method = pick("method", s.method)
        s.site = pick("site", s.site)
        s.read = r.choice("read", default: s.read, from: ["answer", "mean"])
        if case .string("all")? = r.raw("layers") {
            _ = r.value("layers")
        } else if r.has("layers") {
            s.layers = r.intList("layers", default: [], in: 0...1023, maxCount: 1024)
        }
        if case let .array(list)? = r.raw("alphas") {
            _ = r.value("alphas")
            var alphas: [Double] = []
            for (i, v) in list.enumerated() {
                guard case let .number(a) = v, abs(a) <= 1000 else {
                    r.issues.add(r.sub("alphas") + "[\(i)]", "\(v.brief) is not a number in -1000...1000")
                    continue
                }
                if !alphas.contains(a) { alphas.append(a) }
            }
            if alphas.isEmpty { r.issues.add(r.sub("alphas"), "is empty; expected e.g. [-2, 0, 2]") }
            s.alphas = alphas.sorted()
        } else if r.has("alphas") {
            r.issues.add(r.sub("alphas"), "\(r.value("alphas")!.brief) is not a list of numbers")
        }
        s.scale = pick("scale", s.scale)
        s.mode = pick("mode", s.mode)
        // Projection has no size: one setting per layer unless alphas are given.
        if s.mode == .projectOut && !r.has("alphas") { s.alphas = [1] }
        if r.has("positions") {
            let text = r.string("positions", default: "all") ?? "all"
            if let p = SteerPositions(parsing: text) {
                s.positions = p
            } else {
                r.issues.add(
                    r.sub("positions"), "\"\(text)\" is not accepted; expected all, afterPrompt or front(<tokens>)")
            }
        }
        s.items = r.int("items", default: s.items, in: 10...100_000)
        s.textDocuments = r.int("textDocuments", default: s.textDocuments, in: 1...100_000)
        s.controls = r.bool("controls", default: s.controls)
        if r.has("vectors") {
            s.vectors = r.string("vectors", default: nil)
            if let v = s.vectors, !v.hasPrefix("/") {
                r.issues.add(r.sub("vectors"), "\"\(v)\" is not an absolute path to a vectors.safetensors")
            }
        }
        s.batch = r.int("batch", default: s.batch, in: 1...1024)
        r.finish()
        return s
    }
}

/// The body of a `steer` manifest.
public struct SteerBody: KindBody, Equatable {
    public var models: [CheckpointRef]
    public var tasks: [TaskSpec]
    public var steer: SteerSpec

    public var resolvedFields: [(String, JSONValue)] {
        let task = TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).resolvedFields[0]
        return [("models", .array(models.map { .string($0.description) })), task, ("steer", steer.json)]
    }
    public var progress: (total: Int, unit: String) { (models.count, "models") }
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] {
        models.enumerated().map { ("models[\($0.offset)]", $0.element) }
    }
    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate {
        TrialEstimate(
            parameters: 0, memoryMiB: 256, flops: 0, progressTotal: progress.total, progressUnit: progress.unit)
    }
    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] { metricScalars(results) }
}

enum SteerKind: ExperimentKind {
    static let name = "steer"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> SteerBody? {
        var models: [CheckpointRef] = []
        switch root.value("models") {
        case let .array(items)?:
            for (i, item) in items.enumerated() {
                guard case let .string(s) = item, let ref = CheckpointRef(parsing: s) else {
                    root.issues.add(
                        root.sub("models") + "[\(i)]",
                        "\(item.brief) is not a checkpoint reference; expected \(CheckpointRef.accepted), or \"@stage/*\""
                    )
                    continue
                }
                models.append(ref)
            }
            if items.isEmpty { root.issues.add(root.sub("models"), "is empty; expected at least one checkpoint") }
        case let v?:
            root.issues.add(root.sub("models"), "\(v.brief) is not a list; expected e.g. [\"@ladder/0\"]")
        case nil:
            root.issues.add(root.sub("models"), "missing; expected the checkpoints to steer, e.g. [\"@ladder/*\"]")
        }
        let tasks = TrainBody.parseTasks(root.value("task"), issues: root.issues)
        let spec = SteerSpec.parse(root.object("steer"))
        guard !models.isEmpty, !tasks.isEmpty else { return nil }
        return SteerBody(models: models, tasks: tasks, steer: spec)
    }

    static func crossCheck(_ body: SteerBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        guard body.tasks.count == 1, case .world = body.tasks[0] else {
            issues.add(
                "task",
                "a steer trial reads and scores the probes of one world task; expected {\"type\": \"world\", ...}")
            return
        }
        if body.steer.mode == .projectOut && body.steer.alphas != [1] && body.steer.alphas.count > 1 {
            // Projection has no size: one setting per layer.
            issues.add("steer.alphas", "projectOut removes the direction whatever alpha is; expected [1] or no alphas")
        }
    }

    static func run(_ trial: Trial, body: SteerBody, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome
    {
        try SteerRunner(trial: trial, body: body, dir: dir, context: context).run()
    }
}
