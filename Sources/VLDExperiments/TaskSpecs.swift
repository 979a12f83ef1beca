// TaskSpecs.swift: the `task` section of a manifest, the checks that need the whole trial, and the
// resolved trial written to manifest.json.

import Foundation
import VLDModel
import VLDTasks

extension TrainBody {
    static func parseIGSM(_ r: inout FieldReader, weight: Double) -> TaskSpec {
        var c = IGSMConfig()
        c.maxOps = r.int("maxOps", default: c.maxOps, in: 1...15)
        c.maskQuestion = r.bool("maskQuestion", default: c.maskQuestion)
        if r.has("maxEdges") {
            c.maxEdges = r.int("maxEdges", default: c.maxEdges, in: 1...IGSMConfig.largestMaxEdges)
        } else {
            _ = r.value("maxEdges")
        }
        if r.has("maxWords") {
            c.maxWords = r.int("maxWords", default: 1000, in: 16...100_000)
        } else {
            _ = r.value("maxWords")
        }
        c.modulus = r.int("modulus", default: c.modulus, in: IGSMConfig.modulusRange)
        c.render =
            IGSMConfig.Render(
                rawValue: r.choice(
                    "render", default: c.render.rawValue,
                    from: IGSMConfig.Render.allCases.map(\.rawValue))) ?? .text
        c.stepSymbols =
            IGSMConfig.StepSymbols(
                rawValue: r.choice(
                    "stepSymbols", default: c.stepSymbols.rawValue,
                    from: IGSMConfig.StepSymbols.allCases.map(\.rawValue))) ?? .random
        c.split =
            IGSMConfig.Split(
                rawValue: r.choice(
                    "split", default: c.split.rawValue,
                    from: IGSMConfig.Split.allCases.map(\.rawValue))) ?? .template
        if r.has("curriculum") {
            var cr = r.object("curriculum")
            let from = cr.int("fromMaxOps", default: 1, in: 1...IGSMConfig.supportedMaxOps.upperBound)
            let documents = cr.int("documents", default: 100_000, in: 1...1_000_000_000)
            cr.finish()
            if from > c.maxOps {
                r.issues.add(
                    cr.sub("fromMaxOps"),
                    "\(from) exceeds maxOps (\(c.maxOps)); the curriculum raises the op range up to maxOps")
            } else {
                c.curriculum = IGSMConfig.Curriculum(fromMaxOps: from, documents: documents)
            }
        } else {
            _ = r.value("curriculum")
        }
        let problems = r.int("evalProblems", default: 100, in: 1...100_000)
        let ops = r.intList(
            "evalOps", default: [c.maxOps, c.maxOps + 5, c.maxOps + 6], in: 1...(c.maxOps + 6), maxCount: 32)
        if Set(ops).count != ops.count {
            r.issues.add(r.sub("evalOps"), "lists an operation count twice; expected distinct values")
        }
        do { try c.validate() } catch { r.issues.add(r.path, "\(error)") }
        return .igsm(c, weight: weight, evalProblems: problems, evalOps: ops)
    }

    static func parseBios(_ r: inout FieldReader, weight: Double) -> TaskSpec {
        var c = BiosConfig()
        c.people = r.int("people", default: c.people, in: 1...1_000_000)
        c.firstNames = r.int("firstNames", default: c.firstNames, in: 1...10_000)
        c.middleNames = r.int("middleNames", default: c.middleNames, in: 1...10_000)
        c.lastNames = r.int("lastNames", default: c.lastNames, in: 1...10_000)
        c.exposures = r.int("exposures", default: c.exposures, in: 1...1_000_000)
        var attrs = r.object("attributes")
        if !attrs.fields.isEmpty {
            var sizes: [String: Int] = [:]
            for (key, _) in attrs.fields { sizes[key] = attrs.int(key, default: 2, in: 2...100_000) }
            c.attributes = sizes
        }
        let evalNames = r.bool("evalNames", default: true)
        do { try c.validate() } catch { r.issues.add(r.path, "\(error)") }
        return .bios(c, weight: weight, evalNames: evalNames)
    }

    static func parseRandomTokens(_ r: inout FieldReader, weight: Double) -> TaskSpec {
        var c = RandomTokensConfig()
        c.symbols = r.int("symbols", default: c.symbols, in: 2...4096)
        c.tokens = r.int("tokens", default: c.tokens, in: 2...100_000_000)
        return .randomTokens(c, weight: weight)
    }

    static func parseChain(_ r: inout FieldReader, weight: Double) -> TaskSpec {
        var c = ChainConfig()
        let format = r.choice("format", default: c.format.rawValue, from: ChainConfig.Format.allCases.map(\.rawValue))
        c.format = ChainConfig.Format(rawValue: format) ?? .direct
        c.modulus = r.int("modulus", default: c.modulus, in: ChainConfig.modulusRange)
        c.statements = r.int("statements", default: c.statements, in: ChainConfig.statementRange)
        c.minK = r.int("minK", default: c.minK, in: 1...ChainConfig.largestK)
        c.maxK = r.int("maxK", default: max(c.minK, min(c.maxK, c.longestK)), in: 1...ChainConfig.largestK)
        c.variables = r.int("variables", default: max(c.variables, c.statements), in: ChainConfig.variableRange)
        c.queries = r.int("queries", default: 1, in: 1...ChainConfig.statementRange.upperBound)
        c.derivedShare = r.double("derivedShare", default: c.derivedShare, in: 0...1)
        c.syntax =
            ChainConfig.Syntax(
                rawValue: r.choice(
                    "syntax", default: c.syntax.rawValue,
                    from: ChainConfig.Syntax.allCases.map(\.rawValue))) ?? .compact
        c.recallDocuments = r.int("recallDocuments", default: 0, in: 0...1_000_000_000)
        c.cotSteps =
            ChainConfig.CotSteps(
                rawValue: r.choice(
                    "cotSteps", default: c.cotSteps.rawValue,
                    from: ChainConfig.CotSteps.allCases.map(\.rawValue))) ?? .trace
        do { try c.validate() } catch { r.issues.add(r.path, "chain: \(error)") }
        let problems = r.int("evalProblems", default: 100, in: 1...100_000)
        let longest = max(1, c.longestK)
        let defaultK = Array(c.minK...max(c.minK, min(longest, c.maxK + 2)))
        let ks = r.intList("evalK", default: defaultK, in: 1...longest, maxCount: 48)
        if Set(ks).count != ks.count {
            r.issues.add(r.sub("evalK"), "lists a chain length twice; expected distinct values")
        }
        return .chain(c, weight: weight, evalProblems: problems, evalK: ks)
    }

    static func parseWorld(_ r: inout FieldReader, weight: Double) -> TaskSpec {
        var c = WorldConfig()
        c.entities = r.int("entities", default: c.entities, in: WorldConfig.entityRange)
        c.relations = r.int("relations", default: c.relations, in: WorldConfig.relationRange)
        c.properties = r.int("properties", default: c.properties, in: WorldConfig.propertyRange)
        c.values = r.int("values", default: c.values, in: WorldConfig.valueRange)
        c.popular = r.int("popular", default: min(c.popular, c.entities), in: 0...WorldConfig.entityRange.upperBound)
        c.misconceptionShare = r.double("misconceptionShare", default: c.misconceptionShare, in: 0...1)
        c.fMis = r.double("fMis", default: c.fMis, in: 0...1000)
        c.fTrue = r.double("fTrue", default: c.fTrue, in: 0...1000)
        c.zipf = r.double("zipf", default: c.zipf, in: 0...4)
        c.sourceTags = r.bool("sourceTags", default: c.sourceTags)
        c.tagShare = r.double("tagShare", default: c.tagShare, in: 0...1)
        c.forumTruth = r.double("forumTruth", default: c.forumTruth, in: 0...1)
        c.paraphrases = r.int("paraphrases", default: c.paraphrases, in: 1...3)
        c.statements = r.int("statements", default: c.statements, in: 1...64)
        c.reasoningShare = r.double("reasoningShare", default: c.reasoningShare, in: 0...1)
        c.heldOutShare = r.double("heldOutShare", default: c.heldOutShare, in: 0...0.9)
        c.premise = r.bool("premise", default: c.premise)
        do { try c.validate() } catch { r.issues.add(r.path, "\(error)") }
        let items = r.int("evalItems", default: 200, in: 1...100_000)
        return .world(c, weight: weight, evalItems: items)
    }

    /// Builds the task objects of the trial (their constructors check what depends on the model,
    /// e.g. the random-token window is the model context).
    public func makeTasks() throws -> [any SyntheticTask] {
        try tasks.map { spec -> any SyntheticTask in
            switch spec {
            case let .igsm(c, _, _, _): return try IGSMTask(config: c)
            case let .bios(c, _, _): return try BiosTask(config: c)
            case let .randomTokens(c, _): return try RandomTokensTask(config: c, window: model.context)
            case let .chain(c, _, _, _): return try ChainTask(config: c)
            case let .world(c, _, _): return try WorldTask(config: c)
            }
        }
    }

    /// The training data of the trial.
    public func makeMixture() throws -> TaskMixture {
        try TaskMixture(tasks: makeTasks(), weights: tasks.map(\.weight))
    }

    /// The model configuration (the vocabulary comes from the task mixture).
    public func modelConfig(vocab: Int) -> ModelConfig {
        var c = ModelConfig(
            arch: model.arch, dModel: model.dModel, layers: model.layers, heads: model.heads, kvHeads: model.kvHeads,
            ffnHidden: model.ffnHidden, context: model.context, vocab: vocab,
            // A head with its own vocabulary matrix is untied unless the manifest says otherwise.
            tiedEmbeddings: model.tiedEmbeddings ?? (model.head == .full ? nil : false), schedule: model.schedule)
        c.head = model.head
        c.outputMultiplier = Float(model.outputMultiplier)
        return c
    }

    /// Rough peak memory of training in MiB: parameters, gradients and AdamW moments, plus the
    /// activations kept per schedule position and the logits (float32). The engine's buffers are
    /// sized by the same shapes (ActivationLayout), within ~20%.
    public static func trainingMemoryMiB(_ c: ModelConfig, batch B: Int, context T: Int) -> Double {
        let N = Double(B * T), C = Double(c.dModel)
        let perPosition = N * (8 * C + 2 * Double(c.qkvWidth) + 3 * Double(c.fcWidth) + Double(c.heads * T) + 8)
        let floats =
            4 * Double(c.totalParams) + Double(c.applications) * perPosition + 3 * N * Double(c.vocab) + 4 * N * C
        return floats * 4 / 1_048_576 + 32
    }

    /// Checks that need several sections at once: the model against the task's vocabulary and
    /// document lengths, and the resources against the limits.
    func crossCheck(_ header: ManifestHeader, issues: IssueList, limits: Limits) {
        let memoryMiB = header.memoryMiB
        let mixture: TaskMixture
        do { mixture = try makeMixture() } catch {
            issues.add("task", "\(error)")
            return
        }
        let cfg = modelConfig(vocab: mixture.tokenizer.vocabSize)
        do { try cfg.validate() } catch let e as ConfigError {
            issues.add("model", e.message)
            return
        } catch {
            issues.add("model", "\(error)")
            return
        }
        if cfg.totalParams > limits.maxParams {
            issues.add(
                "model", "the model has \(cfg.totalParams) parameters; the limit maxParams is \(limits.maxParams)")
        }
        for (k, spec) in tasks.enumerated() {
            let path = tasks.count == 1 ? "task" : "task[\(k)]"
            if case let .igsm(c, _, _, ops) = spec, c.maxWords != nil, let t = mixture.tasks[k] as? IGSMTask {
                for op in Set(ops + [c.maxOps]).sorted()
                where t.acceptanceRate(ops: op, split: .test) < 0.002
                    || t.acceptanceRate(ops: op, split: .train) < 0.002
                {
                    issues.add(
                        path + ".maxWords",
                        "\(c.maxWords!) words is too few for problems with \(op) operations; raise maxWords or lower maxEdges"
                    )
                    break
                }
            }
            if case let .chain(c, _, _, ks) = spec, let t = mixture.tasks[k] as? ChainTask {
                // A model that writes every solution out must have room for it at every k evaluated.
                let need = (ks + [c.maxK]).map { t.maxDocumentLength(k: $0) }.max()!
                if need > model.context {
                    issues.add(
                        "model.context",
                        "\(model.context) is too short for chain documents with k up to \((ks + [c.maxK]).max()!) "
                            + "(up to \(need) tokens in the \(c.format.rawValue) format); expected at least \(need)")
                }
            }
            if case let .randomTokens(c, _) = spec, c.tokens < model.context {
                issues.add(
                    "task",
                    "random-tokens needs tokens >= model.context (\(model.context)) to fill one window, got \(c.tokens)"
                )
            }
        }
        let longest = mixture.maxDocumentLength
        if longest > model.context + 1 {
            // A chain task already named the context it needs (with room to generate its longest solution).
            let chainSaid = issues.items.contains { $0.path == "model.context" }
            let hasIGSM = tasks.contains { if case .igsm = $0 { return true } else { return false } }
            if !chainSaid {
                issues.add(
                    "model.context",
                    "\(model.context) is too short for the task's documents (up to \(longest) tokens); expected at least \(longest - 1)"
                        + (hasIGSM ? " (or set a smaller igsm maxWords)" : ""))
            }
        }
        let need = TrainBody.trainingMemoryMiB(cfg, batch: train.batch, context: model.context)
        if need > Double(memoryMiB) {
            issues.add(
                "resources.memoryMiB",
                "\(memoryMiB) is too little: training this model with batch \(train.batch) and context \(model.context) needs about \(Int(need.rounded(.up))) MiB"
            )
        }
        if train.warmup > train.steps {
            issues.add("train.warmup", "\(train.warmup) exceeds train.steps (\(train.steps))")
        }
        if let m = train.minLr, m > train.lr {
            issues.add("train.minLr", "\(JSONValue.format(m)) exceeds train.lr (\(JSONValue.format(train.lr)))")
        }
    }

    /// The body with every default filled in (manifest.json holds the header, then these).
    public var resolvedFields: [(String, JSONValue)] {
        var taskValues: [JSONValue] = []
        for spec in tasks {
            var f: [(String, JSONValue)] = [("type", .string(spec.type)), ("weight", JSONValue(spec.weight))]
            switch spec {
            case let .igsm(c, _, problems, ops):
                f += [
                    ("maxOps", JSONValue(c.maxOps)), ("maskQuestion", JSONValue(c.maskQuestion)),
                    ("maxEdges", JSONValue(c.maxEdges)),
                ]
                if let w = c.maxWords { f.append(("maxWords", JSONValue(w))) }
                f += [
                    ("modulus", JSONValue(c.modulus)), ("render", .string(c.render.rawValue)),
                    ("stepSymbols", .string(c.stepSymbols.rawValue)), ("split", .string(c.split.rawValue)),
                ]
                if let cu = c.curriculum {
                    f.append(
                        (
                            "curriculum",
                            .object([("fromMaxOps", JSONValue(cu.fromMaxOps)), ("documents", JSONValue(cu.documents))])
                        ))
                }
                f += [
                    ("evalProblems", JSONValue(problems)), ("evalOps", .array(ops.map { JSONValue($0) })),
                ]
            case let .bios(c, _, evalNames):
                f += [
                    ("people", JSONValue(c.people)), ("firstNames", JSONValue(c.firstNames)),
                    ("middleNames", JSONValue(c.middleNames)), ("lastNames", JSONValue(c.lastNames)),
                    ("exposures", JSONValue(c.exposures)), ("evalNames", JSONValue(evalNames)),
                ]
                if let a = c.attributes {
                    f.append(
                        ("attributes", .object(a.sorted { $0.key < $1.key }.map { ($0.key, JSONValue($0.value)) })))
                }
            case let .randomTokens(c, _):
                f += [("symbols", JSONValue(c.symbols)), ("tokens", JSONValue(c.tokens))]
            case let .chain(c, _, problems, ks):
                f += [
                    ("format", .string(c.format.rawValue)), ("modulus", JSONValue(c.modulus)),
                    ("statements", JSONValue(c.statements)),
                    ("minK", JSONValue(c.minK)), ("maxK", JSONValue(c.maxK)), ("variables", JSONValue(c.variables)),
                    ("queries", JSONValue(c.queries)), ("derivedShare", JSONValue(c.derivedShare)),
                    ("syntax", .string(c.syntax.rawValue)), ("recallDocuments", JSONValue(c.recallDocuments)),
                    ("evalProblems", JSONValue(problems)), ("evalK", .array(ks.map { JSONValue($0) })),
                ]
                // Only cot solutions have steps; direct manifests normalise as before.
                if c.format == .cot { f.append(("cotSteps", .string(c.cotSteps.rawValue))) }
            case let .world(c, _, items):
                f += [
                    ("entities", JSONValue(c.entities)), ("relations", JSONValue(c.relations)),
                    ("properties", JSONValue(c.properties)), ("values", JSONValue(c.values)),
                    ("popular", JSONValue(c.popular)), ("misconceptionShare", JSONValue(c.misconceptionShare)),
                    ("fMis", JSONValue(c.fMis)), ("fTrue", JSONValue(c.fTrue)), ("zipf", JSONValue(c.zipf)),
                    ("sourceTags", .bool(c.sourceTags)), ("tagShare", JSONValue(c.tagShare)),
                    ("forumTruth", JSONValue(c.forumTruth)), ("paraphrases", JSONValue(c.paraphrases)),
                    ("statements", JSONValue(c.statements)), ("reasoningShare", JSONValue(c.reasoningShare)),
                    ("heldOutShare", JSONValue(c.heldOutShare)), ("premise", .bool(c.premise)),
                    ("evalItems", JSONValue(items)),
                ]
            }
            taskValues.append(.object(f))
        }
        var modelFields: [(String, JSONValue)] = [
            ("arch", .string(model.arch.rawValue)), ("dModel", JSONValue(model.dModel)),
            ("layers", JSONValue(model.layers)),
            ("heads", JSONValue(model.heads)),
        ]
        let cfg = modelConfig(vocab: 2)
        modelFields += [
            ("kvHeads", JSONValue(cfg.kvHeads)), ("ffnHidden", JSONValue(cfg.ffnHidden)),
            ("context", JSONValue(model.context)), ("schedule", .string(model.schedule.description)),
            ("tiedEmbeddings", JSONValue(cfg.tiedEmbeddings)),
        ]
        // Written only when set, so manifests without them resolve as they always have.
        if model.head != .full { modelFields.append(("head", .string(model.head.description))) }
        if model.outputMultiplier != 1 { modelFields.append(("outputMultiplier", JSONValue(model.outputMultiplier))) }
        let t = train
        let trainFields: [(String, JSONValue)] = [
            ("steps", JSONValue(t.steps)), ("batch", JSONValue(t.batch)), ("lr", JSONValue(t.lr)),
            ("minLr", JSONValue(minLr)),
            ("warmup", JSONValue(t.warmup)), ("weightDecay", JSONValue(t.weightDecay)), ("clip", JSONValue(t.clip)),
            ("beta1", JSONValue(t.beta1)), ("beta2", JSONValue(t.beta2)), ("evalEvery", JSONValue(evalEvery)),
            ("checkpointEvery", JSONValue(checkpointEvery)), ("evalBatches", JSONValue(t.evalBatches)),
        ]
        // `init` only when set, so that trials without it resolve as they did before it existed.
        return [
            ("task", taskValues.count == 1 ? taskValues[0] : .array(taskValues)),
            ("model", .object(modelFields)), ("train", .object(trainFields)),
        ] + (initFrom.map { [("init", .string($0.description))] } ?? [])
    }
}
