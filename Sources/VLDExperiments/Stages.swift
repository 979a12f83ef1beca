// Stages.swift: pipelines, a manifest whose `stages` run in dependency order (issue 12, part 2).
//
//   {"name": "finetune", "seed": 1, "resources": {"threads": 1},
//    "stages": {
//      "pretrain": {"task": ..., "model": ..., "train": ...},
//      "tune":     {"init": "@pretrain", "task": ..., "model": ..., "train": ..., "grid": {"train.lr": [1e-3, 3e-4]}}}}
//
// Each stage is a manifest of its own (any kind, with its own grid) that inherits the file's
// name, seed, priority and resources unless it sets them. A stage starts when the stages it needs
// have finished every trial. A field that takes a checkpoint (train's `init`, distill's `teacher`)
// takes a `CheckpointRef`: "@stage" (the final checkpoint of a stage of one trial), "@stage/<k>"
// (trial k of that stage's grid, from 0), "job:<id>" (a finished vldd job's) or an absolute path;
// a reference to a stage is a need of its own, so `needs` lists only the needs that pass no
// checkpoint. Stages are ordered by their needs (stably, as written otherwise) and their trials
// numbered in that order, so a runner that takes trials in order meets every need first.
// Problems are reported at their paths: `stages.tune.init: "@pretrian" is not a stage...`,
// `stages.a.needs: a -> b -> a is a cycle`.

import Foundation
import VLDModel
import VLDTasks

/// Where a trial reads a checkpoint from.
public enum CheckpointRef: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// A stage's final checkpoint: its only trial (`trial` nil) or trial `trial` of its grid (from 0).
    case stage(String, trial: Int?)
    /// The checkpoint of a finished vldd job (only the daemon resolves these).
    case job(Int)
    /// A checkpoint directory (vldd allows only those under its `checkpoint_roots`).
    case path(String)

    public static let accepted =
        "\"@stage\", \"@stage/<trial>\", \"job:<id>\" or an absolute path to a checkpoint directory"

    public init?(parsing s: String) {
        if s.hasPrefix("@") {
            let parts = s.dropFirst().split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = parts.first.map(String.init), Stage.validName(name) else { return nil }
            if parts.count == 2 {
                guard let k = Int(parts[1]), k >= 0, String(k) == parts[1] else { return nil }
                self = .stage(name, trial: k)
            } else {
                self = .stage(name, trial: nil)
            }
        } else if s.hasPrefix("job:") {
            guard let id = Int(s.dropFirst(4)), id > 0, "job:\(id)" == s else { return nil }
            self = .job(id)
        } else if s.hasPrefix("/"), s.utf8.count <= 4096, !s.contains("\0") {
            self = .path(s)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case let .stage(name, nil): return "@\(name)"
        case let .stage(name, k?): return "@\(name)/\(k)"
        case let .job(id): return "job:\(id)"
        case let .path(p): return p
        }
    }

    /// The stage it names, if it names one.
    public var stage: String? {
        if case let .stage(name, _) = self { return name }
        return nil
    }
}

extension FieldReader {
    /// An optional checkpoint reference (absent and null alike mean none).
    mutating func checkpointRef(_ key: String) -> CheckpointRef? {
        guard let v = value(key), v != .null else { return nil }
        guard case let .string(s) = v, let ref = CheckpointRef(parsing: s) else {
            issues.add(sub(key), "\(v.brief) is not a checkpoint reference; expected \(CheckpointRef.accepted)")
            return nil
        }
        return ref
    }
}

/// One stage of a pipeline: its trials are `Experiment.trials[trials]`.
public struct Stage: Equatable, Sendable {
    public var name: String
    /// The stages that must finish first: those listed in `needs` and those whose checkpoints
    /// the stage's trials read, in stage order.
    public var needs: [String]
    public var trials: Range<Int>
    /// The stage's grid axes.
    public var axes: [String]

    static let namePattern = "[A-Za-z0-9_-]{1,32}"

    static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 32
            && s.unicodeScalars.allSatisfy {
                $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-")
            }
    }
}

extension Experiment {
    /// The fields a manifest with stages may have besides `stages`; each stage inherits them.
    static let inheritedFields = ["name", "seed", "priority", "resources"]

    /// The stage named `name`.
    public func stage(_ name: String) -> Stage? { stages.first { $0.name == name } }

    /// The trial a stage reference names (nil for other references).
    public func trial(for ref: CheckpointRef) -> Trial? {
        guard case let .stage(name, k) = ref, let s = stage(name) else { return nil }
        let index = s.trials.lowerBound + (k ?? 0)
        return s.trials.contains(index) ? trials[index] : nil
    }

    /// The trials that must be finished before `trial` runs: every trial of the stages it needs.
    public func prerequisites(of trial: Trial) -> [Trial] {
        guard let name = trial.stage, let s = stage(name) else { return [] }
        return s.needs.compactMap { stage($0) }.flatMap { trials[$0.trials] }
    }

    static func parseStaged(
        _ value: JSONValue, fields: [(String, JSONValue)], limits: Limits, cores: Int
    ) throws -> Experiment {
        var issues: [ManifestIssue] = []
        func fail(_ path: String, _ message: String) { issues.append(ManifestIssue(path: path, message: message)) }
        for (key, _) in fields where key != "stages" && !inheritedFields.contains(key) {
            fail(
                joinPath("", key),
                "a manifest with stages holds only \(inheritedFields.joined(separator: ", ")) and stages; move this key into the stages that use it"
            )
        }
        let stagesValue = fields.first { $0.0 == "stages" }!.1
        guard case let .object(entries) = stagesValue, !entries.isEmpty, entries.count <= 32 else {
            throw ManifestError(
                issues + [
                    ManifestIssue(
                        path: "stages",
                        message: "expected an object of 1 to 32 named stages, each a manifest, got \(stagesValue.brief)"
                    )
                ])
        }
        let names = entries.map(\.0)
        var explicitNeeds: [String: [String]] = [:]
        var bodies: [(String, JSONValue)] = []
        for (name, stageValue) in entries {
            let p = joinPath("stages", name)
            guard Stage.validName(name) else {
                fail(p, "\(JSONValue.string(name).brief) is not a stage name; expected \(Stage.namePattern)")
                continue
            }
            guard case var .object(stageFields) = stageValue else {
                fail(p, "expected a manifest object, got \(stageValue.typeName)")
                continue
            }
            if stageFields.contains(where: { $0.0 == "name" }) {
                fail("\(p).name", "a stage takes the manifest's name; remove it")
            }
            var needs: [String] = []
            if let raw = stageFields.first(where: { $0.0 == "needs" })?.1 {
                stageFields.removeAll { $0.0 == "needs" }
                if case let .array(list) = raw {
                    for (i, item) in list.enumerated() {
                        let ip = "\(p).needs[\(i)]"
                        guard case let .string(n) = item else {
                            fail(ip, "expected a stage name, got \(item.brief)")
                            continue
                        }
                        if n == name {
                            fail(ip, "a stage cannot need itself")
                        } else if !names.contains(n) {
                            fail(
                                ip,
                                "\(item.brief) is not a stage of this manifest; expected one of \(names.filter { $0 != name }.joined(separator: ", "))"
                            )
                        } else if !needs.contains(n) {
                            needs.append(n)
                        }
                    }
                } else {
                    fail("\(p).needs", "expected a list of stage names, got \(raw.brief)")
                }
            }
            explicitNeeds[name] = needs
            // The stage inherits the file's header fields it does not set.
            var merged = fields.filter { key, _ in
                inheritedFields.contains(key) && !stageFields.contains { $0.0 == key }
            }
            merged.append(contentsOf: stageFields)
            bodies.append((name, .object(merged)))
        }
        if !issues.isEmpty { throw ManifestError(issues) }

        // Expand every stage's grid; each stage's problems are reported under its path.
        var expanded: [String: (trials: [Trial], axes: [String])] = [:]
        var total = 0
        for (name, written) in bodies {
            // "@stage/*" in a list is every trial of a stage written before this one.
            let body = expandStageWildcards(written, path: joinPath("stages", name), expanded: expanded)
            do {
                let e = try expand(body, limits: limits, cores: cores)
                total += e.trials.count
                expanded[name] = e
            } catch let e as ManifestError {
                // The stage's paths are already written as paths; they only get the stage's prefix.
                let prefix = joinPath("stages", name)
                issues += e.issues.map {
                    ManifestIssue(path: $0.path.isEmpty ? prefix : prefix + "." + $0.path, message: $0.message)
                }
            }
        }
        if total > limits.maxTrials {
            fail("stages", "expands to \(total) trials in all; the limit maxTrials is \(limits.maxTrials)")
        }
        if !issues.isEmpty { throw ManifestError(issues) }

        // Checkpoint references: each names a stage other than its own, and a trial it has.
        var needs = explicitNeeds
        for (name, _) in bodies {
            var reported = Set<String>()
            for trial in expanded[name]!.trials {
                for (path, ref) in trial.manifest.body.checkpointRefs {
                    guard case let .stage(target, k) = ref else { continue }
                    let p = joinPath("stages", name) + "." + path
                    var message: String?
                    if target == name {
                        message = "\(ref) refers to its own stage; a stage reads the checkpoints of stages before it"
                    } else if let other = expanded[target] {
                        let n = other.trials.count
                        if k == nil && n > 1 {
                            message =
                                "stage \(target) has \(n) trials; name one as @\(target)/<trial> with <trial> from 0 to \(n - 1)"
                        } else if let k, k >= n {
                            message = "stage \(target) has \(n) trial\(n == 1 ? "" : "s"); \(ref) names trial \(k)"
                        } else if !needs[name]!.contains(target) {
                            needs[name]!.append(target)
                        }
                    } else {
                        message =
                            "\(ref) names no stage of this manifest; expected @ and one of \(names.filter { $0 != name }.joined(separator: ", "))"
                    }
                    if let message, reported.insert(p + message).inserted { fail(p, message) }
                }
            }
        }
        if !issues.isEmpty { throw ManifestError(issues) }

        // Order the stages by their needs, as written where they do not constrain the order.
        var order: [String] = []
        var visiting: [String] = []
        func visit(_ name: String) throws {
            if order.contains(name) { return }
            if let at = visiting.firstIndex(of: name) {
                let cycle = (visiting[at...] + [name]).joined(separator: " -> ")
                throw ManifestError([ManifestIssue(path: "stages.\(name).needs", message: "\(cycle) is a cycle")])
            }
            visiting.append(name)
            for n in needs[name]! { try visit(n) }
            visiting.removeLast()
            order.append(name)
        }
        for (name, _) in bodies { try visit(name) }

        var trials: [Trial] = []
        var stages: [Stage] = []
        for name in order {
            let e = expanded[name]!
            let start = trials.count
            for (k, t) in e.trials.enumerated() {
                var t = t
                t.index = start + k
                t.stage = name
                t.stageTrial = k
                trials.append(t)
            }
            stages.append(
                Stage(
                    name: name, needs: order.filter { needs[name]!.contains($0) }, trials: start..<trials.count,
                    axes: e.axes))
        }
        let name = trials.first?.manifest.name ?? "unnamed"
        let experiment = Experiment(name: name, trials: trials, axes: [], source: value, stages: stages)
        let later = experiment.searchChecks()
        if !later.isEmpty { throw ManifestError(later) }
        return experiment
    }

    /// The model and vocabulary a stage trial trains (train, distill's student, a PRM), if any.
    /// Replaces each "@stage/*" in a list of `value` with "@stage/0", "@stage/1", ... for every
    /// trial of that stage (one written before this one; others are left for the kind to report).
    static func expandStageWildcards(
        _ value: JSONValue, path: String, expanded: [String: (trials: [Trial], axes: [String])]
    ) -> JSONValue {
        switch value {
        case let .object(fields):
            return .object(
                fields.map { ($0.0, expandStageWildcards($0.1, path: joinPath(path, $0.0), expanded: expanded)) })
        case let .array(items):
            var out: [JSONValue] = []
            for (i, item) in items.enumerated() {
                guard case let .string(s) = item, s.hasPrefix("@"), s.hasSuffix("/*") else {
                    out.append(expandStageWildcards(item, path: "\(path)[\(i)]", expanded: expanded))
                    continue
                }
                let name = String(s.dropFirst().dropLast(2))
                // Not an earlier stage: the kind reports the string where it reads it.
                guard let stage = expanded[name] else {
                    out.append(item)
                    continue
                }
                out += stage.trials.indices.map { .string("@\(name)/\($0)") }
            }
            return .array(out)
        default:
            return value
        }
    }

    func trainedModel(_ trial: Trial) -> (config: ModelConfig, tokenizer: WordTokenizer)? {
        let body: TrainBody?
        switch trial.manifest.body {
        case let b as TrainBody: body = b
        case let b as DistillBody: body = b.student
        case let b as PRMBody: body = b.trainer
        default: body = nil
        }
        guard let body, let tokenizer = try? body.makeMixture().tokenizer else { return nil }
        return (body.modelConfig(vocab: tokenizer.vocabSize), tokenizer)
    }

    /// What a tts or prm trial can be told before anything runs when its policy and PRM are
    /// stages of this manifest: a vocabulary that differs from its task's, and (tts) searches whose
    /// KV caches do not fit `resources.memoryMiB`.
    func searchChecks() -> [ManifestIssue] {
        var out: [ManifestIssue] = []
        var said = Set<String>()
        func add(_ path: String, _ message: String) {
            if said.insert(path + message).inserted { out.append(ManifestIssue(path: path, message: message)) }
        }
        for trial in trials {
            let prefix = trial.stage.map { joinPath("stages", $0) + "." } ?? ""
            let refs: [(path: String, ref: CheckpointRef)]
            let tasks: [TaskSpec]
            let sameTokenizer: String
            switch trial.manifest.body {
            case let b as TTSBody:
                (refs, tasks) = (b.checkpointRefs, b.tasks)
                sameTokenizer = "the policy, the PRM and the task need one tokenizer (the same task)"
            case let b as PRMBody:
                (refs, tasks) = ([("policy", b.policy)], b.trainer.tasks)
                sameTokenizer = "the policy, the PRM and the task need one tokenizer (the same task)"
            case let b as PhaseBody:
                (refs, tasks) = (b.checkpointRefs.filter { $0.path != "steering" }, b.tasks)
                sameTokenizer = "every ladder point learns the world the probes ask about"
            case let b as SteerBody:
                (refs, tasks) = (b.checkpointRefs, b.tasks)
                sameTokenizer = "a steered model learns the world the probes ask about"
            default: continue
            }
            guard
                let mine = try? TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).makeMixture().tokenizer
            else { continue }
            var models: [String: ModelConfig] = [:]
            for (path, ref) in refs {
                guard let source = self.trial(for: ref), let (cfg, tokenizer) = trainedModel(source) else { continue }
                models[path] = cfg
                if tokenizer != mine {
                    add(
                        prefix + path,
                        "\(ref) learned another vocabulary (\(tokenizer.vocabSize) words) than this trial's task "
                            + "(\(mine.vocabSize)); \(sameTokenizer)"
                    )
                }
                // Steering a layer the model does not have.
                if let b = trial.manifest.body as? SteerBody, let layers = b.steer.layers {
                    for l in layers where l >= cfg.applications {
                        add(
                            prefix + "steer.layers",
                            "layer \(l) is outside \(ref), which has \(cfg.applications) schedule positions (0...\(cfg.applications - 1))"
                        )
                    }
                }
            }
            if let b = trial.manifest.body as? TTSBody, let policy = models["policy"] {
                let need = TTSBody.memoryMiB(policy: policy, prm: models["prm"], rows: b.rows)
                if need > Double(trial.manifest.memoryMiB) {
                    add(
                        prefix + "tts.nMax",
                        "searches of \(b.tts.nMax) candidates need about \(Int(need.rounded(.up))) MiB (the models and "
                            + "their KV caches); resources.memoryMiB is \(trial.manifest.memoryMiB): raise it or lower nMax"
                    )
                }
            }
        }
        return out
    }
}
