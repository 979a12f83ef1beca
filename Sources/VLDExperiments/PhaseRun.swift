// PhaseRun.swift: one phase trial in progress (PhaseKind.swift): each checkpoint of its ladders
// loaded, checked against the trial's world, asked the probes and read at every layer, its line
// appended to outcomes.jsonl; then the analysis (PhaseAnalysis.swift) and the dashboard
// (PhaseReport.swift) from those lines.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// One phase trial in progress.
final class PhaseRunner {
    let trial: Trial
    let body: PhaseBody
    let dir: TrialDirectory
    let context: RunContext
    let log: (String) -> Void
    let pool: ThreadPool

    static let recordsFile = "outcomes.jsonl"

    init(trial: Trial, body: PhaseBody, dir: TrialDirectory, context: RunContext) throws {
        self.trial = trial
        self.body = body
        self.dir = dir
        self.context = context
        pool = ThreadPool(threads: context.threads ?? trial.manifest.threads)
        log = try TrainRunner.openTrialLog(trial, in: dir, context: context)
    }

    func run() throws -> TrialOutcome {
        let h = trial.manifest
        let start = Date()
        let world = try body.worldTask()
        let tokenizer = try TaskMixture(tasks: [world], weights: [1]).tokenizer
        let probes = world.probes(seed: h.seed, count: body.phase.items)
        let refs = body.ladders.flatMap { f in
            f.refs.enumerated().map { (family: f.name, index: $0.offset, ref: $0.element) }
        }
        let url = dir.url.appendingPathComponent(PhaseRunner.recordsFile)
        var records = PhaseRunner.readRecords(url)
        if !records.isEmpty { log("resuming after \(records.count) of \(refs.count) checkpoints") }
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        let first = records.count
        var teachers: [String: Transformer] = [:]
        for n in records.count..<refs.count {
            if context.shouldStop() {
                log("stopped after \(n) checkpoints; run again to resume")
                return .stopped(step: n)
            }
            let (family, index, ref) = refs[n]
            let field = "ladders.\(family)[\(index)]"
            let (model, ckpt) = try TrainRunner.loadCheckpoint(
                ref, role: field, context: context, pool: pool, tokenizer: tokenizer,
                mismatch: "the phase trial's world task (every ladder point must learn the same world)")
            let origin = try PhaseRunner.origin(of: ckpt, field: field, ref: ref, world: world.config)
            var record = try PhaseRunner.measure(
                model, probes: probes, tokenizer: tokenizer, batch: body.phase.batch, seed: h.seed)
            // A distilled student: its KL to its teacher on held-out text.
            if let path = origin.first(where: { $0.0 == "teacherPath" })?.1.stringValue {
                let kl = try PhaseRunner.teacherKL(
                    student: model, teacherPath: path, world: world, tokenizer: tokenizer, batch: body.phase.batch,
                    pool: pool, cache: &teachers)
                record.set(path: ["klToTeacher"], to: JSONValue(kl))
            }
            var line = JSONValue.object(
                [
                    ("family", .string(family)), ("index", JSONValue(index)), ("ref", .string(ref.description)),
                    ("checkpoint", .string(ckpt.path)),
                ] + origin + PhaseRunner.describe(model.config))
            if case let .object(f) = record, case let .object(l) = line { line = .object(l + f) }
            try handle.write(contentsOf: Data((line.serialized(pretty: false) + "\n").utf8))
            try handle.synchronize()
            records.append(line)
            let elapsed = Date().timeIntervalSince(start)
            let eta = elapsed / Double(n + 1 - first) * Double(refs.count - n - 1)
            context.progress(
                TrainProgress(
                    step: n + 1, steps: refs.count, loss: .nan, tokensPerSecond: 0, etaSeconds: eta, evalLoss: nil))
            log("checkpoint \(n + 1)/\(refs.count) \(field) \(ref) d=\(model.config.dModel) eta=\(formatDuration(eta))")
        }
        var analysis = try PhaseAnalysis(records: records, body: body)
        if let ref = body.steering {
            // The steer trial's results (its directory holds no checkpoint: the one a reference
            // resolves to is a sibling of its results.json).
            let url = try context.checkpoint(ref)
            let dir = url.lastPathComponent == "checkpoint" ? url.deletingLastPathComponent() : url
            guard let data = try? Data(contentsOf: dir.appendingPathComponent("results.json")),
                let steer = try? JSONValue.parse(data), steer["kind"] == .string("steer")
            else {
                throw TrialError("steering: \(ref) (\(dir.path)) holds no finished steer trial's results.json")
            }
            analysis.steering = steer
        }
        var results = analysis.results()
        let header: [(String, JSONValue)] = [
            ("vldVersion", .string(VLD.version)), ("name", .string(h.name)), ("kind", .string(h.kind)),
            ("trial", JSONValue(trial.index)), ("condition", .string(trial.condition)),
            ("assignments", .object(trial.assignments)), ("seed", JSONValue(Int(h.seed))),
            ("records", .string(PhaseRunner.recordsFile)),
        ]
        if case let .object(f) = results { results = .object(header + f) }
        results.set(
            path: ["timing"],
            to: .object([("wallSeconds", JSONValue((Date().timeIntervalSince(start) * 10).rounded() / 10))]))
        try writeAtomically(PhaseReport.html(trial: trial, results: results, analysis: analysis), to: dir.report)
        try writeAtomically(results.serialized() + "\n", to: dir.results)
        log("done: " + analysis.headline)
        return .completed
    }

    static func readRecords(_ url: URL) -> [JSONValue] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        // A line cut short by a crash is dropped (it is measured again).
        return text.split(separator: "\n").compactMap { try? JSONValue.parse(Data($0.utf8)) }
    }

    static func describe(_ c: ModelConfig) -> [(String, JSONValue)] {
        [
            ("dModel", JSONValue(c.dModel)), ("layers", JSONValue(c.applications)),
            ("params", JSONValue(c.totalParams)),
        ]
    }

    /// What a checkpoint's trial directory says about it (a published trial: manifest.json and
    /// results.json beside the checkpoint): seed, step, tokens, held-out loss and the world
    /// scores over training. A checkpoint trained on another world is refused.
    static func origin(of ckpt: URL, field: String, ref: CheckpointRef, world: WorldConfig) throws -> [(
        String, JSONValue
    )] {
        let trialDir = ckpt.deletingLastPathComponent()
        var out: [(String, JSONValue)] = []
        let state = (try? Data(contentsOf: ckpt.appendingPathComponent("state.json"))).flatMap {
            try? JSONValue.parse($0)
        }
        out.append(("step", state?["step"] ?? .null))
        let manifest = (try? Data(contentsOf: trialDir.appendingPathComponent("manifest.json"))).flatMap {
            try? JSONValue.parse($0)
        }
        if let task = manifest?["task"] {
            // The ground truth: which facts exist, their values and which are misconceptions.
            let defaults = WorldConfig()
            func number(_ key: String, _ d: Double) -> Double { task[key]?.doubleValue ?? d }
            let theirs: [(String, Double, Double)] = [
                ("entities", number("entities", Double(defaults.entities)), Double(world.entities)),
                ("relations", number("relations", Double(defaults.relations)), Double(world.relations)),
                ("properties", number("properties", Double(defaults.properties)), Double(world.properties)),
                ("values", number("values", Double(defaults.values)), Double(world.values)),
                ("popular", number("popular", Double(defaults.popular)), Double(world.popular)),
                (
                    "misconceptionShare", number("misconceptionShare", defaults.misconceptionShare),
                    world.misconceptionShare
                ),
                ("heldOutShare", number("heldOutShare", defaults.heldOutShare), world.heldOutShare),
            ]
            if task["type"] != .string("world") {
                throw TrialError("\(field): \(ref) was not trained on a world task")
            }
            for (key, a, b) in theirs where a != b {
                throw TrialError(
                    "\(field): \(ref) was trained on another world (task.\(key) \(formatNumber(a, significant: 6)), not \(formatNumber(b, significant: 6)))"
                )
            }
        }
        out.append(("seed", manifest?["seed"] ?? .null))
        out.append(("trialKind", manifest?["kind"] ?? .null))
        if manifest?["kind"] == .string("distill") { out.append(("distill", manifest?["distill"] ?? .null)) }
        let results = (try? Data(contentsOf: trialDir.appendingPathComponent("results.json"))).flatMap {
            try? JSONValue.parse($0)
        }
        out.append(("tokens", results?["training"]?["tokensSeen"] ?? .null))
        if let teacher = results?["teacher"]?["path"] { out.append(("teacherPath", teacher)) }
        out.append(("evalLoss", results?["training"]?["evalLoss"] ?? .null))
        // The world scores at every evaluation of its training (metrics.jsonl).
        var traces: [JSONValue] = []
        if let text = try? String(contentsOf: trialDir.appendingPathComponent("metrics.jsonl"), encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let m = try? JSONValue.parse(Data(line.utf8)), let step = m["step"], m["world.K"] != nil else {
                    continue
                }
                traces.append(
                    .object(
                        [("step", step)]
                            + ["world.K", "world.R", "world.T_MC1", "world.T_MC2", "world.I", "evalLoss"].map {
                                ($0, m[$0] ?? .null)
                            }))
            }
        }
        out.append(("traces", .array(traces)))
        return out
    }

    /// Mean KL(teacher || student) per next-word prediction over 16 held-out documents (another
    /// seed than any trial's data); teachers are loaded once per path.
    static func teacherKL(
        student: Transformer, teacherPath: String, world: WorldTask, tokenizer: WordTokenizer, batch: Int,
        pool: ThreadPool, cache: inout [String: Transformer]
    ) throws -> Double {
        let teacher: Transformer
        if let t = cache[teacherPath] {
            teacher = t
        } else {
            do { teacher = try Checkpoint.loadModel(from: URL(fileURLWithPath: teacherPath), pool: pool) } catch {
                throw TrialError("the teacher at \(teacherPath): \(error)")
            }
            cache[teacherPath] = teacher
        }
        let docs = try (0..<16).map {
            tokenizer.encode(try world.trainingDocument(seed: 0xFEED_7E57, index: $0).words.joined(separator: " "))
        }
        func logProbs(_ m: Transformer) throws -> [[Double]] {
            var out: [[Double]] = []
            try Evaluator.forEachRow(
                m, rows: docs, B: batch, T: min(m.config.context, student.config.context),
                positions: { Array(0..<(docs[$0].count - 1)) },
                visit: { _, _, logits in out.append(Evaluator.logSoftmax(logits)) })
            return out
        }
        let t = try logProbs(teacher), s = try logProbs(student)
        var kl = 0.0
        for (a, b) in zip(t, s) { for j in a.indices { kl += exp(a[j]) * (a[j] - b[j]) } }
        return kl / Double(max(1, t.count))
    }

    /// One checkpoint's measurements: the probes' item-level outcomes, and per layer (the
    /// residual stream after each schedule position, read at the answer word of true and false
    /// statements) the coupling of the reasoning and truth directions and the mass-mean probes.
    static func measure(
        _ model: Transformer, probes: [WorldProbe], tokenizer: WordTokenizer, batch: Int, seed: UInt64
    ) throws -> JSONValue {
        let T = model.config.context
        let o = try WorldOutcomes.score(model, probes: probes, tokenizer: tokenizer, B: batch, T: T)
        // Statements: each probe's prefix with its true answer and with a false one (the
        // misconception for truth probes, a seeded other choice otherwise).
        var rng = TaskRNG(seed: seed, stream: 0x57A7, index: 0)
        var rows: [[Int32]] = []
        var tags: [(kind: WorldProbe.Kind, positive: Bool)] = []
        for p in probes where p.kind != .part && p.kind != .truthRef {
            var wrong = p.misconception ?? rng.int(p.choices.count - 1)
            if p.misconception == nil && wrong >= p.answer { wrong += 1 }
            for (choice, positive) in [(p.answer, true), (wrong, false)] {
                rows.append(tokenizer.encode((p.prefix + [p.choices[choice]]).joined(separator: " ")))
                tags.append((p.kind, positive))
            }
        }
        let D = model.config.applications
        var hidden = [[[Double]]](repeating: [], count: D)
        for v in 0..<D { hidden[v] = [[Double]](repeating: [], count: rows.count) }
        try Evaluator.forEachRow(
            model, rows: rows, B: batch, T: T, positions: { [rows[$0].count - 1] }, visit: { _, _, _ in },
            residual: { r, _, v, h in hidden[v][r] = h.map(Double.init) })
        var layers: [JSONValue] = []
        for v in 0..<D {
            func set(_ kind: WorldProbe.Kind, _ positive: Bool) -> [[Double]] {
                tags.indices.filter { tags[$0].kind == kind && tags[$0].positive == positive }.map { hidden[v][$0] }
            }
            let rPos = set(.reasoning, true), rNeg = set(.reasoning, false)
            let tPos = set(.truth, true), tNeg = set(.truth, false)
            let kPos = set(.knowledge, true), kNeg = set(.knowledge, false)
            let c = PhaseStats.coupling(
                reasoningPositive: rPos, reasoningNegative: rNeg, truthPositive: tPos, truthNegative: tNeg)
            // The null of the centered cosine: labels shuffled within each set (200 times).
            var nullRng = TaskRNG(seed: seed, stream: 0xC051, index: v)
            var nulls: [Double] = []
            for _ in 0..<200 {
                func shuffled(_ a: [[Double]], _ b: [[Double]]) -> ([[Double]], [[Double]]) {
                    var all = a + b
                    all.shuffle(using: &nullRng)
                    return (Array(all.prefix(a.count)), Array(all.dropFirst(a.count)))
                }
                let (ra, rb) = shuffled(rPos, rNeg), (ta, tb) = shuffled(tPos, tNeg)
                nulls.append(
                    abs(
                        PhaseStats.coupling(
                            reasoningPositive: ra, reasoningNegative: rb, truthPositive: ta, truthNegative: tb
                        ).centered))
            }
            // Mass-mean truth probes fitted on facts without misconceptions: held-out facts (even
            // items fit, odd items test), and the misconception items (the truth against the
            // misconception: does the model's truth direction know what it does not say?).
            let even = { (a: [[Double]]) in a.enumerated().filter { $0.offset % 2 == 0 }.map(\.element) }
            let odd = { (a: [[Double]]) in a.enumerated().filter { $0.offset % 2 == 1 }.map(\.element) }
            let aucK = PhaseStats.massMeanAUROC(
                fitPositive: even(kPos), fitNegative: even(kNeg), testPositive: odd(kPos), testNegative: odd(kNeg))
            let aucM = PhaseStats.massMeanAUROC(
                fitPositive: kPos, fitNegative: kNeg, testPositive: tPos, testNegative: tNeg)
            let aucR = PhaseStats.massMeanAUROC(
                fitPositive: kPos, fitNegative: kNeg, testPositive: rPos, testNegative: rNeg)
            layers.append(
                .object([
                    ("v", JSONValue(v)), ("centered", JSONValue(c.centered)), ("uncentered", JSONValue(c.uncentered)),
                    ("centeredNull95", JSONValue(Stats.quantile(sorted: nulls.sorted(), 0.95))),
                    ("aucKnowledge", aucK.map { JSONValue($0) } ?? .null),
                    ("aucMisconception", aucM.map { JSONValue($0) } ?? .null),
                    ("aucReasoning", aucR.map { JSONValue($0) } ?? .null),
                ]))
        }
        let w = o.items
        func list(_ a: [Double]) -> JSONValue { .array(a.map { JSONValue($0) }) }
        return .object([
            (
                "outcomes",
                .object([
                    ("knowledge", list(w.knowledge)), ("truthMC1", list(w.truthMC1)), ("truthMC2", list(w.truthMC2)),
                    ("imitation", list(w.imitation)), ("truthPair", list(w.truthPair)),
                    ("reasoning", .array(w.reasoning.map { $0.map { JSONValue($0) } ?? .null })),
                    ("reasoningAll", list(o.reasoningAll)), ("truthRef", list(o.truthRef)),
                ])
            ),
            ("layerMeasures", .array(layers)),
        ])
    }
}
