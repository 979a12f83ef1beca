// SteerRun.swift: one steer trial in progress (SteerKind.swift): per model, the directions, the
// sweep over layer x alpha with its controls, and what results.json reports about it. Each model's
// record is one line of steer.jsonl, appended durably: a stopped trial resumes after its last
// whole model.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

final class SteerRunner {
    let trial: Trial
    let body: SteerBody
    let dir: TrialDirectory
    let context: RunContext
    let log: (String) -> Void
    let pool: ThreadPool

    static let recordsFile = "steer.jsonl"
    static let vectorsFile = "vectors.safetensors"
    static let concepts = ["T", "R", "K"]

    init(trial: Trial, body: SteerBody, dir: TrialDirectory, context: RunContext) throws {
        self.trial = trial
        self.body = body
        self.dir = dir
        self.context = context
        pool = ThreadPool(threads: context.threads ?? trial.manifest.threads)
        log = try TrainRunner.openTrialLog(trial, in: dir, context: context)
    }

    /// Scores of one setting on a split: T (T_MC2), T_MC1, R (every held-out composition), K.
    struct Scores {
        var t = 0.0, t1 = 0.0, r = 0.0, k = 0.0
        var json: JSONValue {
            .object([("T", JSONValue(t)), ("T_MC1", JSONValue(t1)), ("R", JSONValue(r)), ("K", JSONValue(k))])
        }
        func value(_ concept: String) -> Double { concept == "T" ? t : (concept == "R" ? r : k) }
    }

    /// One evaluation: dev and test scores, the test truth margins, CE and KL on held-out text.
    struct Evaluation {
        var dev: Scores, test: Scores
        var margins: [Double]
        var ce: Double, kl: Double
    }

    func run() throws -> TrialOutcome {
        let h = trial.manifest
        let start = Date()
        let world = try PhaseBody(
            ladders: [], orderBy: .params, tasks: body.tasks, phase: PhaseSpec()
        ).worldTask()
        let tokenizer = try TaskMixture(tasks: [world], weights: [1]).tokenizer
        let url = dir.url.appendingPathComponent(SteerRunner.recordsFile)
        var records = PhaseRunner.readRecords(url)
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seekToEnd()
        var saved: [(name: String, values: [Float])] = []
        var metadata: [String: String] = [:]
        for (n, ref) in body.models.enumerated() {
            if n < records.count { continue }
            if context.shouldStop() {
                log("stopped after \(n) models; run again to resume")
                return .stopped(step: n)
            }
            let field = "models[\(n)]"
            let (model, ckpt) = try TrainRunner.loadCheckpoint(
                ref, role: field, context: context, pool: pool, tokenizer: tokenizer,
                mismatch: "the steer trial's world task")
            _ = try PhaseRunner.origin(of: ckpt, field: field, ref: ref, world: world.config)
            let (record, vectors) = try steer(
                model, checkpoint: ckpt, ref: ref, index: n, world: world, tokenizer: tokenizer)
            try handle.write(contentsOf: Data((record.serialized(pretty: false) + "\n").utf8))
            try handle.synchronize()
            records.append(record)
            saved += vectors.map { (name: "m\(n).\($0.name)", values: $0.values) }
            metadata["m\(n)"] = record["modelHash"]?.stringValue ?? ""
            context.progress(
                TrainProgress(
                    step: n + 1, steps: body.models.count, loss: .nan, tokensPerSecond: 0,
                    etaSeconds: Date().timeIntervalSince(start) / Double(n + 1) * Double(body.models.count - n - 1),
                    evalLoss: nil))
            log("model \(n + 1)/\(body.models.count) \(ref) d=\(model.config.dModel): " + SteerRunner.headline(record))
        }
        // The vectors of the models measured in this process (a resumed trial's earlier ones are
        // rebuilt when it is run again from the start).
        if !saved.isEmpty {
            metadata.merge(
                [
                    "site": body.steer.site.rawValue, "method": body.steer.method.rawValue, "read": body.steer.read,
                    "scale": "raw (unscaled directions)", "positions": body.steer.positions.description,
                    "names": "m<model>.<concept>.layer<v>", "vld": VLD.version,
                ], uniquingKeysWith: { a, _ in a })
            try Steering.save(saved, metadata: metadata, to: dir.url.appendingPathComponent(SteerRunner.vectorsFile))
        }
        var metrics: [(String, JSONValue)] = []
        for (n, r) in records.enumerated() {
            for key in ["deltaT", "deltaR", "deltaK", "kl"] {
                metrics.append(("steer.m\(n).best.\(key)", r["best"]?["test"]?[key] ?? .null))
            }
            metrics.append(("steer.m\(n).kappa", r["kappa"] ?? .null))
            metrics.append(("steer.m\(n).C_TR", r["C"]?["T"]?["R"] ?? .null))
            metrics.append(("steer.m\(n).C_RT", r["C"]?["R"]?["T"] ?? .null))
        }
        let results = JSONValue.object([
            ("vldVersion", .string(VLD.version)), ("name", .string(h.name)), ("kind", .string(h.kind)),
            ("trial", JSONValue(trial.index)), ("condition", .string(trial.condition)),
            ("assignments", .object(trial.assignments)), ("seed", JSONValue(Int(h.seed))),
            ("records", .string(SteerRunner.recordsFile)), ("vectors", .string(SteerRunner.vectorsFile)),
            ("models", .array(records)), ("metrics", .object(metrics)),
            ("timing", .object([("wallSeconds", JSONValue((Date().timeIntervalSince(start) * 10).rounded() / 10))])),
        ])
        try writeAtomically(SteerReport.html(trial: trial, results: results), to: dir.report)
        try writeAtomically(results.serialized() + "\n", to: dir.results)
        return .completed
    }

    static func headline(_ r: JSONValue) -> String {
        func f(_ v: JSONValue?) -> String { v?.doubleValue.map { String(format: "%+.3f", $0) } ?? "—" }
        let b = r["best"]
        return "best T layer \(b?["layer"]?.intValue ?? -1) alpha \(b?["alpha"]?.doubleValue ?? .nan): "
            + "dT \(f(b?["test"]?["deltaT"])) dR \(f(b?["test"]?["deltaR"])) dK \(f(b?["test"]?["deltaK"])) "
            + "KL \(f(b?["test"]?["kl"])); kappa \(f(r["kappa"]))"
    }

    /// The probes rewritten in another template ("the city of w5 is" for "w5 city is"): the
    /// out-of-template split of knowledge and truth probes.
    static func otherTemplate(_ p: WorldProbe) -> WorldProbe? {
        guard p.kind == .knowledge || p.kind == .truth, p.prefix.count == 4 else { return nil }
        var q = p
        q.prefix = ["<bos>", "the", p.prefix[2], "of", p.prefix[1], "is"]
        return q
    }

    func steer(
        _ model: Transformer, checkpoint: URL, ref: CheckpointRef, index: Int, world: WorldTask,
        tokenizer: WordTokenizer
    ) throws -> (JSONValue, [(name: String, values: [Float])]) {
        let spec = body.steer
        let seed = trial.manifest.seed
        let D = model.config.applications, C = model.config.dModel, T = model.config.context
        let layers = spec.layers ?? Array(0..<D)
        for l in layers where l >= D {
            throw TrialError(
                "steer.layers: layer \(l) is outside \(ref), which has \(D) schedule positions (0...\(D - 1))")
        }
        let probes = world.probes(seed: seed, count: spec.items).filter { $0.kind != .truthRef }
        // Statements (each probe's prefix with its true and a false answer), for the directions.
        var rng = TaskRNG(seed: seed, stream: 0x57EE, index: 0)
        var rows: [[Int32]] = []
        var tags: [(concept: String, positive: Bool, dev: Bool)] = []
        var nth: [WorldProbe.Kind: Int] = [:]
        for p in probes {
            guard let concept = [WorldProbe.Kind.truth: "T", .reasoning: "R", .knowledge: "K"][p.kind] else { continue }
            let i = nth[p.kind, default: 0]
            nth[p.kind] = i + 1
            var wrong = p.misconception ?? rng.int(p.choices.count - 1)
            if p.misconception == nil && wrong >= p.answer { wrong += 1 }
            for (choice, positive) in [(p.answer, true), (wrong, false)] {
                rows.append(tokenizer.encode((p.prefix + [p.choices[choice]]).joined(separator: " ")))
                tags.append((concept, positive, i % 2 == 0))
            }
        }
        var hidden = [[[Double]]](repeating: [[Double]](repeating: [], count: rows.count), count: D)
        let mean = spec.read == "mean"
        try Evaluator.forEachRow(
            model, rows: rows, B: spec.batch, T: T,
            positions: { r in mean ? Array(1..<rows[r].count) : [rows[r].count - 1] }, visit: { _, _, _ in },
            residual: { r, _, v, h in
                if hidden[v][r].isEmpty { hidden[v][r] = [Double](repeating: 0, count: C) }
                let w = mean ? 1 / Double(rows[r].count - 1) : 1
                for c in 0..<C { hidden[v][r][c] += w * Double(h[c]) }
            }, site: spec.site)
        // Directions per concept and layer from the dev split; controls along T.
        var directions: [String: [Int: [Double]]] = [:]
        var loaded: [String: [Int: [Float]]] = [:]
        if let path = spec.vectors {
            for concept in SteerRunner.concepts {
                for l in layers {
                    let (values, _) = try Steering.load(URL(fileURLWithPath: path), name: "m0.\(concept).layer\(l)")
                    guard values.count == C else {
                        throw TrialError(
                            "steer.vectors: m0.\(concept).layer\(l) in \(path) has width \(values.count); \(ref) has d = \(C)"
                        )
                    }
                    loaded[concept, default: [:]][l] = values
                }
            }
        }
        var shuffleRng = TaskRNG(seed: seed, stream: 0x5AFF, index: index)
        var randomRng = SeededRNG(seed: seed &+ 0xD1CE &+ UInt64(index))
        var controls: [String: [Int: [Double]]] = ["random": [:], "shuffled": [:]]
        for l in layers {
            func set(_ concept: String, _ positive: Bool) -> [[Double]] {
                tags.indices.filter { tags[$0].concept == concept && tags[$0].positive == positive && tags[$0].dev }
                    .map { hidden[l][$0] }
            }
            for concept in SteerRunner.concepts {
                if let v = loaded[concept]?[l] {
                    directions[concept, default: [:]][l] = v.map(Double.init)
                } else {
                    directions[concept, default: [:]][l] = Steering.direction(
                        spec.method, positive: set(concept, true), negative: set(concept, false), seed: seed)
                }
            }
            // Shuffled labels: each pair's two statements swapped with probability 1/2.
            var pos = set("T", true), neg = set("T", false)
            for i in pos.indices where shuffleRng.unit() < 0.5 { swap(&pos[i], &neg[i]) }
            controls["shuffled"]![l] = Steering.direction(spec.method, positive: pos, negative: neg, seed: seed)
            let size = Steering.norm(directions["T"]![l]!)
            let g = (0..<C).map { _ in randomRng.nextNormal() }
            controls["random"]![l] = g.map { $0 * size / max(Steering.norm(g), 1e-12) }
        }
        let fit = { (l: Int) in hidden[l].filter { !$0.isEmpty } }
        func unit(_ v: [Double], _ l: Int) -> [Float] {
            Steering.unitOfAlpha(v, scale: spec.scale, fit: fit(l)).map { Float($0) }
        }
        // Held-out text: documents of another seed than any trial's data.
        let docs = try (0..<spec.textDocuments).map {
            tokenizer.encode(try world.trainingDocument(seed: 0xFEED_7E57, index: $0).words.joined(separator: " "))
        }
        let ood = probes.compactMap(SteerRunner.otherTemplate)
        var baseText: [[Double]] = []
        func evaluate(_ steering: (vector: [Float], layer: Int)?, probes list: [WorldProbe]) throws -> Evaluation {
            // Forced choice: each row is a whole prompt, so afterPrompt steers its last token.
            let rowLengths = list.map { tokenizer.encode($0.prefix.joined(separator: " ")).count }
            let probeHook: ((Int) -> (ActivationSite) -> Void)? = steering.map { s in
                { first in
                    Steering.hook(
                        site: spec.site, layer: s.layer, vector: s.vector, mode: spec.mode, positions: spec.positions,
                        promptLengths: { first + $0 < rowLengths.count ? rowLengths[first + $0] : 1 })
                }
            }
            let o = try WorldOutcomes.score(
                model, probes: list, tokenizer: tokenizer, B: spec.batch, T: T, steer: probeHook)
            func split(_ dev: Bool) -> Scores {
                func half(_ a: [Double]) -> [Double] {
                    a.enumerated().filter { ($0.offset % 2 == 0) == dev }.map(\.element)
                }
                return Scores(
                    t: Stats.mean(half(o.items.truthMC2)), t1: Stats.mean(half(o.items.truthMC1)),
                    r: Stats.mean(half(o.reasoningAll)), k: Stats.mean(half(o.items.knowledge)))
            }
            // CE of the next word and KL(unsteered || steered) over held-out text; the text has
            // no prompt, so afterPrompt steers every token there.
            var ce = 0.0, kl = 0.0, count = 0
            var logProbs: [[Double]] = []
            let textHook: ((Int) -> (ActivationSite) -> Void)? = steering.map { s in
                { _ in
                    Steering.hook(
                        site: spec.site, layer: s.layer, vector: s.vector, mode: spec.mode, positions: spec.positions,
                        promptLengths: { _ in 1 })
                }
            }
            try Evaluator.forEachRow(
                model, rows: docs, B: spec.batch, T: T, positions: { Array(0..<(docs[$0].count - 1)) },
                visit: { r, t, logits in
                    let lp = Evaluator.logSoftmax(logits)
                    ce -= lp[Int(docs[r][t + 1])]
                    if steering == nil {
                        logProbs.append(lp)
                    } else {
                        let base = baseText[count]
                        var k = 0.0
                        for j in lp.indices { k += exp(base[j]) * (base[j] - lp[j]) }
                        kl += k
                    }
                    count += 1
                }, steer: textHook)
            if steering == nil { baseText = logProbs }
            return Evaluation(
                dev: split(true), test: split(false),
                margins: o.truthMargin.enumerated().filter { $0.offset % 2 == 1 }.map(\.element),
                ce: ce / Double(max(1, count)), kl: kl / Double(max(1, count)))
        }
        let base = try evaluate(nil, probes: probes)
        let baseOOD = try evaluate(nil, probes: ood)
        var sweep: [JSONValue] = []
        var results: [String: [Int: [Double: Evaluation]]] = [:]
        for (name, table) in SteerRunner.concepts.map({ ($0, directions[$0]!) })
            + (spec.controls ? [("T-random", controls["random"]!), ("T-shuffled", controls["shuffled"]!)] : [])
        {
            for l in layers {
                var u = unit(table[l]!, l)
                if name.hasPrefix("T-") {
                    // A control adds a vector of the same norm as the truth direction's at each
                    // alpha (whatever its own spread along itself would give under sigma scaling).
                    let size = Steering.norm(unit(directions["T"]![l]!, l).map(Double.init))
                    let own = Steering.norm(u.map(Double.init))
                    if own > 0 { u = u.map { $0 * Float(size / own) } }
                }
                for a in spec.alphas {
                    let e =
                        a == 0 && spec.mode == .add
                        ? base : try evaluate((u.map { Float(a) * $0 }, l), probes: probes)
                    results[name, default: [:]][l, default: [:]][a] = e
                    sweep.append(
                        .object([
                            ("direction", .string(name)), ("layer", JSONValue(l)), ("alpha", JSONValue(a)),
                            ("dev", e.dev.json), ("test", e.test.json),
                            ("deltaT", JSONValue(e.test.t - base.test.t)),
                            ("deltaR", JSONValue(e.test.r - base.test.r)),
                            ("deltaK", JSONValue(e.test.k - base.test.k)), ("ce", JSONValue(e.ce)),
                            ("kl", JSONValue(e.kl)),
                            ("vectorNorm", JSONValue(abs(a) * Steering.norm(u.map(Double.init)))),
                        ]))
                }
            }
        }
        // The best (layer, alpha) for each concept on dev; reported on test.
        func best(_ concept: String) -> (layer: Int, alpha: Double, e: Evaluation) {
            var out: (Int, Double, Evaluation) = (layers[0], 0, base)
            var top = -Double.infinity
            for l in layers {
                for a in spec.alphas where a != 0 || spec.mode == .projectOut {
                    let e = results[concept]![l]![a]!
                    let gain = e.dev.value(concept) - base.dev.value(concept)
                    if gain > top {
                        top = gain
                        out = (l, a, e)
                    }
                }
            }
            return out
        }
        func delta(_ e: Evaluation) -> JSONValue {
            .object([
                ("deltaT", JSONValue(e.test.t - base.test.t)), ("deltaT_MC1", JSONValue(e.test.t1 - base.test.t1)),
                ("deltaR", JSONValue(e.test.r - base.test.r)), ("deltaK", JSONValue(e.test.k - base.test.k)),
                ("ce", JSONValue(e.ce)), ("kl", JSONValue(e.kl)),
            ])
        }
        let bestT = best("T")
        var bestJSON: [(String, JSONValue)] = [
            ("layer", JSONValue(bestT.layer)), ("alpha", JSONValue(bestT.alpha)),
            ("devDeltaT", JSONValue(bestT.e.dev.t - base.dev.t)), ("test", delta(bestT.e)),
        ]
        // Out of template: the T direction at its best setting on the probes in another template.
        let uT = unit(directions["T"]![bestT.layer]!, bestT.layer)
        let oodSteered = try evaluate(
            spec.mode == .add ? (uT.map { Float(bestT.alpha) * $0 }, bestT.layer) : (uT, bestT.layer), probes: ood)
        bestJSON.append(("outOfTemplateDeltaT", JSONValue(oodSteered.test.t - baseOOD.test.t)))
        for control in ["T-random", "T-shuffled"] where spec.controls {
            if let e = results[control]?[bestT.layer]?[bestT.alpha] { bestJSON.append((control, delta(e))) }
        }
        // The CAPE baseline layer floor(L/4).
        let cape = D / 4
        if let e = results["T"]?[cape]?[bestT.alpha] {
            bestJSON.append(("capeLayer", .object([("layer", JSONValue(cape)), ("test", delta(e))])))
        }
        // Per-item slopes of the truth margin over alpha at the best T layer; anti-steerable share.
        let alphas = spec.alphas
        let slopes: [Double] = base.margins.indices.map { i in
            let y = alphas.map { results["T"]![bestT.layer]![$0]!.margins[i] }
            return Stats.leastSquares(y, columns: [alphas])?[1] ?? .nan
        }
        let finite = slopes.filter(\.isFinite)
        // The cross-effect matrix at the smallest alpha with its negative, each direction at its
        // own best layer.
        var cJSON: [(String, JSONValue)] = []
        var c: [String: [String: Double]] = [:]
        if let a = alphas.filter({ $0 > 0 && alphas.contains(-$0) }).min(), spec.mode == .add {
            for i in SteerRunner.concepts {
                let l = best(i).layer
                let plus = results[i]![l]![a]!.test, minus = results[i]![l]![-a]!.test
                var row: [(String, JSONValue)] = [("layer", JSONValue(l)), ("alpha", JSONValue(a))]
                for j in SteerRunner.concepts {
                    let v = (plus.value(j) - minus.value(j)) / (2 * a)
                    c[i, default: [:]][j] = v
                    row.append((j, JSONValue(v)))
                }
                cJSON.append((i, .object(row)))
            }
        }
        var kappa = JSONValue.null
        if let rt = c["R"]?["T"], let rr = c["R"]?["R"], let tt = c["T"]?["T"], rr * tt != 0 {
            kappa = JSONValue(rt / (abs(rr * tt)).squareRoot())
        }
        let modelData = (try? Data(contentsOf: checkpoint.appendingPathComponent("model.safetensors"))) ?? Data()
        let hash = String(format: "crc32:%08x", CRC32.checksum(modelData))
        var vectors: [(name: String, values: [Float])] = []
        for concept in SteerRunner.concepts {
            for l in layers { vectors.append(("\(concept).layer\(l)", directions[concept]![l]!.map { Float($0) })) }
        }
        let record = JSONValue.object([
            ("ref", .string(ref.description)), ("checkpoint", .string(checkpoint.path)), ("modelHash", .string(hash)),
            ("dModel", JSONValue(C)), ("layers", JSONValue(D)), ("params", JSONValue(model.config.totalParams)),
            (
                "steered",
                .object([
                    ("site", .string(spec.site.rawValue)), ("layers", .array(layers.map { JSONValue($0) })),
                    ("positions", .string(spec.positions.description)), ("mode", .string(spec.mode.rawValue)),
                    ("scale", .string(spec.scale.rawValue)), ("method", .string(spec.method.rawValue)),
                    ("read", .string(spec.read)),
                    (
                        "tokens",
                        .string(
                            "forced-choice probes: \(spec.positions == .afterPrompt ? "each prompt's last token" : spec.positions == .all ? "every prompt token" : "the first tokens of each prompt"); held-out text: \(spec.positions == .all || spec.positions == .afterPrompt ? "every token" : "its first tokens")"
                        )
                    ),
                    (
                        "vectorsFrom",
                        spec.vectors.map { .string($0) } ?? .string("built from this model's dev statements")
                    ),
                ])
            ),
            ("unsteered", .object([("dev", base.dev.json), ("test", base.test.json), ("ce", JSONValue(base.ce))])),
            (
                "directionNorms",
                .object(
                    SteerRunner.concepts.map { k in
                        (k, .array(layers.map { JSONValue(Steering.norm(directions[k]![$0]!)) }))
                    })
            ),
            ("best", .object(bestJSON)),
            ("C", .object(cJSON)), ("kappa", kappa),
            (
                "slopes",
                .object([
                    ("items", JSONValue(finite.count)), ("mean", JSONValue(Stats.mean(finite))),
                    (
                        "antiSteerable",
                        JSONValue(finite.isEmpty ? .nan : Double(finite.filter { $0 < 0 }.count) / Double(finite.count))
                    ),
                ])
            ),
            ("sweep", .array(sweep)),
        ])
        return (record, vectors)
    }
}
