// Manifest.swift: the experiment manifest (DESIGN.md "Manifest"), its defaults and validation.
//
// A manifest names an experiment kind and everything the run needs. `Manifest.parse` reads one
// *trial* (a manifest without `grid`) and reports every problem with its JSON path; `Experiment`
// (Grid.swift) expands `grid` first. Defaults are documented here and in `vldctl example`, and a
// resolved trial (`json`) writes every value out, so a result always says exactly what ran.

import Foundation
import VLDModel
import VLDTasks

/// Limits a manifest must stay within (the daemon reads them from vldd.conf; the foreground
/// `vldctl run` uses these defaults).
public struct Limits: Equatable, Sendable {
    public var maxManifestBytes = 1 << 20
    public var maxTrials = 512
    public var maxParams = 200_000_000
    public var maxSteps = 10_000_000
    public var maxThreads = 64
    public var maxMemoryMiB = 64 * 1024
    public init() {}

    /// No limits: for re-expanding a manifest that was validated when it was queued (the
    /// daemon's limits may have been lowered since; they apply to new submissions).
    public static var unbounded: Limits {
        var l = Limits()
        l.maxManifestBytes = Int.max
        l.maxTrials = Int.max
        l.maxParams = Int.max
        l.maxSteps = Int.max
        l.maxThreads = Int.max
        l.maxMemoryMiB = Int.max
        return l
    }
}

/// One task of the training mixture with its weight and evaluation settings.
public enum TaskSpec: Equatable, Sendable {
    case igsm(IGSMConfig, weight: Double, evalProblems: Int, evalOps: [Int])
    case bios(BiosConfig, weight: Double, evalNames: Bool)
    case randomTokens(RandomTokensConfig, weight: Double)
    case chain(ChainConfig, weight: Double, evalProblems: Int, evalK: [Int])
    case world(WorldConfig, weight: Double, evalItems: Int)

    public static let types = ["igsm", "bios", "random-tokens", "chain", "world"]

    public var type: String {
        switch self {
        case .igsm: return "igsm"
        case .bios: return "bios"
        case .randomTokens: return "random-tokens"
        case .chain: return "chain"
        case .world: return "world"
        }
    }

    public var weight: Double {
        switch self {
        case let .igsm(_, w, _, _), let .bios(_, w, _), let .randomTokens(_, w), let .chain(_, w, _, _),
            let .world(_, w, _):
            return w
        }
    }
}

public struct ModelSpec: Equatable, Sendable {
    public var arch: Arch = .gpt2
    public var dModel = 64
    public var layers = 4
    public var heads = 4
    public var kvHeads: Int?
    public var ffnHidden: Int?
    public var context = 128
    public var schedule = LayerSchedule.base
    /// Default: tied for gpt2, untied for llama (as the Hugging Face classes).
    public var tiedEmbeddings: Bool?
    /// The output head: full, rank(r) or wide(k) (ModelConfig.OutputHead); vld-only when not full.
    public var head = OutputHead.full
    /// Logits multiplier (muP's d_base / d: "muP(<d_base>)" in a manifest); 1 is off.
    public var outputMultiplier = 1.0
}

public struct TrainSpec: Equatable, Sendable {
    public var steps = 1000
    public var batch = 16
    public var lr = 1e-3
    /// Floor of the cosine schedule; default lr / 10.
    public var minLr: Double?
    public var warmup = 50
    public var weightDecay = 0.1
    public var clip = 1.0
    public var beta1 = 0.9
    public var beta2 = 0.95
    /// Evaluate every N steps (and at the end); default steps / 10.
    public var evalEvery: Int?
    /// Checkpoint every N steps (and at the end); default evalEvery.
    public var checkpointEvery: Int?
    /// Batches of held-out documents in the evaluation loss.
    public var evalBatches = 2
}

/// One trial: a validated manifest without `grid`: the common header and its kind's body.
public struct Manifest: Equatable, Sendable {
    public var name: String
    /// The kind's name (a key of `Kinds`).
    public var kind: String
    public var seed: UInt64 = 1
    public var priority = 0
    public var threads: Int
    public var memoryMiB: Int
    /// The kind's part (`TrainBody` for `train`).
    public var body: any KindBody

    public var header: ManifestHeader {
        ManifestHeader(name: name, kind: kind, seed: seed, priority: priority, threads: threads, memoryMiB: memoryMiB)
    }

    public static func == (a: Manifest, b: Manifest) -> Bool {
        a.header == b.header && (Kinds.entry(a.kind)?.equal(a.body, b.body) ?? false)
    }

    /// The trial with every default filled in (written as manifest.json): the header, then the body.
    public var json: JSONValue {
        .object(
            [
                ("name", .string(name)), ("kind", .string(kind)), ("seed", JSONValue(Int(seed))),
                ("priority", JSONValue(priority)),
                ("resources", .object([("threads", JSONValue(threads)), ("memoryMiB", JSONValue(memoryMiB))])),
            ] + body.resolvedFields)
    }

    /// What this trial costs (its kind's estimate).
    public func estimate() throws -> TrialEstimate { try body.estimate(header) }

    static let namePattern = "[A-Za-z0-9._-]{1,64}"

    static func validName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 64 && s != "." && s != ".."
            && s.unicodeScalars.allSatisfy {
                CharacterSet.alphanumerics.contains($0) && $0.isASCII || "._-".unicodeScalars.contains($0)
            }
    }
}

extension Manifest {
    /// Reads and validates one trial. `cores` is the default thread count.
    public static func parse(
        _ value: JSONValue, limits: Limits = Limits(),
        cores: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> Manifest {
        let issues = IssueList()
        var root = FieldReader(path: "", value: value, issues: issues)
        let name = root.string("name", default: nil)
        if name == nil, !issues.items.contains(where: { $0.path == "name" }) {
            issues.add("name", "missing; expected a name matching \(namePattern)")
        } else if let name, !validName(name) {
            issues.add("name", "\(JSONValue.string(name).brief) is not a valid name; expected \(namePattern)")
        }
        let kinds = Kinds.names
        var kind = "train"
        var runnable = true
        if let k = root.value("kind") {
            if case let .string(s) = k, Kinds.entry(s) != nil {
                kind = s
            } else if case let .string(s) = k, Kinds.planned.contains(s) {
                runnable = false
                issues.add(
                    "kind",
                    "\"\(s)\" experiments are not available in vld \(VLD.version) yet; expected one of \(kinds.joined(separator: ", "))"
                )
            } else {
                runnable = false
                issues.add(
                    "kind", "\(k.brief) is not an experiment kind; expected one of \(kinds.joined(separator: ", "))")
            }
        }
        let seed = root.int("seed", default: 1, in: 0...Int(Int32.max))
        let priority = root.int("priority", default: 0, in: -100...100)

        var res = root.object("resources")
        let threads = res.int("threads", default: min(cores, limits.maxThreads), in: 1...1024)
        if threads > limits.maxThreads {
            issues.add("resources.threads", "\(threads) exceeds the limit maxThreads = \(limits.maxThreads)")
        }
        let memoryMiB = res.int("memoryMiB", default: min(4096, limits.maxMemoryMiB), in: 64...(1 << 24))
        if memoryMiB > limits.maxMemoryMiB {
            issues.add("resources.memoryMiB", "\(memoryMiB) exceeds the limit maxMemoryMiB = \(limits.maxMemoryMiB)")
        }
        res.finish()

        let header = ManifestHeader(
            name: name ?? "unnamed", kind: kind, seed: UInt64(seed), priority: priority, threads: threads,
            memoryMiB: memoryMiB)
        let entry = Kinds.entry(kind)!
        var body: (any KindBody)?
        if runnable {
            body = entry.parse(&root, header, limits)
        } else {
            // A kind this build cannot run: its body is not checked (only the kind is reported).
            for (key, _) in root.fields where key != "grid" { _ = root.value(key) }
        }
        if root.value("grid") != nil {
            issues.add("grid", "a trial cannot have a grid (expand it with Experiment.parse)")
        }
        root.finish()

        if let body, issues.items.isEmpty { entry.crossCheck(body, header, issues, limits) }
        guard let body, issues.items.isEmpty else {
            throw ManifestError(
                issues.items.isEmpty ? [ManifestIssue(path: "", message: "not a valid \(kind) manifest")] : issues.items
            )
        }
        return Manifest(
            name: header.name, kind: kind, seed: header.seed, priority: priority, threads: threads,
            memoryMiB: memoryMiB,
            body: body)
    }

}

extension TrainBody {
    static func parseModel(_ r: FieldReader) -> (spec: ModelSpec, ok: Bool) {
        var r = r
        var s = ModelSpec()
        let arch = r.choice("arch", default: "gpt2", from: Arch.allCases.map(\.rawValue))
        s.arch = Arch(rawValue: arch) ?? .gpt2
        s.dModel = r.int("dModel", default: s.dModel, in: 8...4096)
        s.layers = r.int("layers", default: s.layers, in: 1...256)
        s.heads = r.int("heads", default: s.heads, in: 1...256)
        if r.has("kvHeads") {
            s.kvHeads = r.int("kvHeads", default: s.heads, in: 1...256)
        } else {
            _ = r.value("kvHeads")
        }
        if r.has("ffnHidden") {
            s.ffnHidden = r.int("ffnHidden", default: 4 * s.dModel, in: 1...65536)
        } else {
            _ = r.value("ffnHidden")
        }
        s.context = r.int("context", default: s.context, in: 2...8192)
        if let text = r.string("schedule", default: nil) {
            do { s.schedule = try LayerSchedule(parsing: text) } catch let e as ScheduleError {
                r.issues.add(
                    r.sub("schedule"),
                    "\(JSONValue.string(text).brief) is not a schedule\(e.detail); expected \(LayerSchedule.acceptedForms)"
                )
            } catch {
                r.issues.add(r.sub("schedule"), "\(error)")
            }
        }
        if r.has("tiedEmbeddings") {
            s.tiedEmbeddings = r.bool("tiedEmbeddings", default: true)
        } else {
            _ = r.value("tiedEmbeddings")
        }
        if let text = r.string("head", default: nil) {
            if let h = OutputHead(parsing: text) {
                s.head = h
            } else {
                r.issues.add(
                    r.sub("head"),
                    "\(JSONValue.string(text).brief) is not a head; expected full, rank(<r>) or wide(<k>)")
            }
        }
        switch r.value("outputMultiplier") {
        case nil, .null?: break
        case let .number(m)?:
            if m > 0 && m <= 1000 {
                s.outputMultiplier = m
            } else {
                r.issues.add(r.sub("outputMultiplier"), "\(m) is not in (0, 1000]")
            }
        case let .string(text)?:
            if text.hasPrefix("muP("), text.hasSuffix(")"), let base = Int(text.dropFirst(4).dropLast()), base >= 1 {
                s.outputMultiplier = Double(base) / Double(s.dModel)
            } else {
                r.issues.add(
                    r.sub("outputMultiplier"),
                    "\(JSONValue.string(text).brief) is not accepted; expected a number or \"muP(<base width>)\"")
            }
        case let v?:
            r.issues.add(r.sub("outputMultiplier"), "\(v.brief) is not a number or \"muP(<base width>)\"")
        }
        r.finish()
        return (s, true)
    }

    static func parseTrain(_ r: FieldReader, limits: Limits) -> (spec: TrainSpec, ok: Bool) {
        var r = r
        var t = TrainSpec()
        t.steps = r.int("steps", default: t.steps, in: 1...100_000_000)
        if t.steps > limits.maxSteps {
            r.issues.add(r.sub("steps"), "\(t.steps) exceeds the limit maxSteps = \(limits.maxSteps)")
        }
        t.batch = r.int("batch", default: t.batch, in: 1...4096)
        t.lr = r.double("lr", default: t.lr, in: 0...10)
        if r.has("minLr") { t.minLr = r.double("minLr", default: t.lr / 10, in: 0...10) } else { _ = r.value("minLr") }
        t.warmup = r.int("warmup", default: min(t.warmup, t.steps / 10), in: 0...100_000_000)
        t.weightDecay = r.double("weightDecay", default: t.weightDecay, in: 0...10)
        t.clip = r.double("clip", default: t.clip, in: 0...1e6)
        t.beta1 = r.double("beta1", default: t.beta1, in: 0...0.999999)
        t.beta2 = r.double("beta2", default: t.beta2, in: 0...0.999999)
        if r.has("evalEvery") {
            t.evalEvery = r.int("evalEvery", default: 1, in: 1...100_000_000)
        } else {
            _ = r.value("evalEvery")
        }
        if r.has("checkpointEvery") {
            t.checkpointEvery = r.int("checkpointEvery", default: 1, in: 1...100_000_000)
        } else {
            _ = r.value("checkpointEvery")
        }
        t.evalBatches = r.int("evalBatches", default: t.evalBatches, in: 1...1000)
        r.finish()
        return (t, true)
    }

    static func parseTasks(_ value: JSONValue?, issues: IssueList) -> [TaskSpec] {
        guard let value else {
            issues.add(
                "task",
                "missing; expected a task object with \"type\" (\(TaskSpec.types.joined(separator: ", "))) or a list of them with weights"
            )
            return []
        }
        if case let .array(items) = value {
            guard !items.isEmpty, items.count <= 8 else {
                issues.add("task", "expected 1 to 8 tasks, got \(items.count)")
                return []
            }
            let specs = items.enumerated().compactMap { parseTask($1, path: "task[\($0)]", issues: issues) }
            let types = specs.map(\.type)
            if Set(types).count != types.count { issues.add("task", "each task type may appear once in a mixture") }
            return specs
        }
        return parseTask(value, path: "task", issues: issues).map { [$0] } ?? []
    }

    private static func parseTask(_ value: JSONValue, path: String, issues: IssueList) -> TaskSpec? {
        var r = FieldReader(path: path, value: value, issues: issues)
        guard case .object = value else { return nil }
        let type = r.choice("type", default: "", from: TaskSpec.types)
        // Absent and null alike: null means "the default", and a task type has none.
        if r.raw("type") == nil || r.raw("type") == .null {
            issues.add(r.sub("type"), "missing; expected one of \(TaskSpec.types.joined(separator: ", "))")
        }
        let weight = r.double("weight", default: 1, in: 0.001...1000)
        var spec: TaskSpec?
        switch type {
        case "igsm": spec = parseIGSM(&r, weight: weight)
        case "bios": spec = parseBios(&r, weight: weight)
        case "random-tokens": spec = parseRandomTokens(&r, weight: weight)
        case "chain": spec = parseChain(&r, weight: weight)
        case "world": spec = parseWorld(&r, weight: weight)
        default: return nil
        }
        r.finish()
        return spec
    }
}
