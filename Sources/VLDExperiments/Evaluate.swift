// Evaluate.swift: the evaluation of a training run: held-out loss and each task's own metric.
//
//   loss           mean cross-entropy on `evalBatches` packed batches taken far past anything the
//                  run trains on (document 2^40 on): fresh problems for igsm, the memorised
//                  people and windows for bios and random-tokens.
//   igsm           greedy, KV-cached generation after "Solution :" at each evaluation op count, on
//                  held-out-template problems and (with the template split) on fresh problems from
//                  training templates; exact match of the final answer and full-solution validity
//                  (specs/vld.md 6.3 step 8).
//   bios           teacher-forced cross-entropy of every person's attribute values (and name) in a
//                  canonical biography, scored as bits of knowledge (specs/vld.md 6.2, K2).
//   random-tokens  cross-entropy and softmax entropy at every predicted position of every window,
//                  scored as ΔH_ce and ΔH_ent (specs/vld.md 6.2, K1).
//   chain          greedy exact match of the answer per chain length k on held-out problems; for
//                  the cot format also step validity (ChainChecker) and sampled pass@1.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The evaluation of one model at one step.
public struct Evaluation {
    public var loss: Double
    /// Flat scalar metrics for metrics.jsonl and the reports, e.g. "igsm.acc.op6".
    public var scalars: [(String, Double)]
    /// Full per-task results for results.json.
    public var tasks: [(String, JSONValue)]
}

struct Evaluator {
    /// The trial's body, and its seed (the held-out data and samples are drawn from it).
    let body: TrainBody
    let seed: UInt64
    let mixture: TaskMixture
    let config: ModelConfig

    var tokenizer: WordTokenizer { mixture.tokenizer }

    func evaluate(_ model: Transformer) throws -> Evaluation {
        var scalars: [(String, Double)] = []
        var tasks: [(String, JSONValue)] = []
        let loss = try heldOutLoss(model)
        for (k, spec) in body.tasks.enumerated() {
            let task = mixture.tasks[k]
            switch spec {
            case let .igsm(_, _, problems, ops):
                let r = try evaluateIGSM(model, task as! IGSMTask, problems: problems, ops: ops)
                scalars += r.scalars
                tasks.append(("igsm", r.json))
            case let .bios(_, _, evalNames):
                let r = try evaluateBios(model, task as! BiosTask, names: evalNames)
                scalars += r.scalars
                tasks.append(("bios", r.json))
            case .randomTokens:
                let r = try evaluateRandomTokens(model, task as! RandomTokensTask)
                scalars += r.scalars
                tasks.append(("random-tokens", r.json))
            case let .chain(_, _, problems, ks):
                let r = try evaluateChain(model, task as! ChainTask, problems: problems, ks: ks)
                scalars += r.scalars
                tasks.append(("chain", r.json))
            case let .world(_, _, items):
                let r = try evaluateWorld(model, task as! WorldTask, items: items)
                scalars += r.scalars
                tasks.append(("world", r.json))
            }
        }
        return Evaluation(loss: loss, scalars: scalars, tasks: tasks)
    }

    static let heldOutCursor = 1 << 40

    func heldOutLoss(_ model: Transformer) throws -> Double {
        let B = body.train.batch, T = body.model.context
        var cursor = Evaluator.heldOutCursor, total = 0.0
        for _ in 0..<body.train.evalBatches {
            let batch = try mixture.batch(seed: seed, cursor: cursor, B: B, T: T)
            cursor = batch.nextCursor
            total += Double(
                try model.evaluationLoss(
                    inputs: batch.inputs, targets: batch.targets, B: B, T: T, segments: batch.segments))
        }
        return total / Double(body.train.evalBatches)
    }

    /// Runs rows of token ids (each at most T long) through the model in batches of the training
    /// batch size and hands each row's logits at the requested positions to `visit`.
    func forEachRow(
        _ model: Transformer, rows: [[Int32]], positions: (Int) -> [Int],
        visit: (_ row: Int, _ position: Int, _ logits: [Float]) -> Void
    ) throws {
        try Evaluator.forEachRow(
            model, rows: rows, B: body.train.batch, T: body.model.context, positions: positions, visit: visit)
    }

    /// Runs rows through the model in batches of B rows of T tokens (padded) and hands each row's
    /// logits at the requested positions to `visit`; with `residual`, also the activations at
    /// `site` (the residual stream after each block by default) of every schedule position v at
    /// those positions (C floats, valid during the call); `steer` gives each batch (told its first
    /// row) a site hook that runs before anything is read.
    static func forEachRow(
        _ model: Transformer, rows: [[Int32]], B: Int, T: Int, positions: (Int) -> [Int],
        visit: (_ row: Int, _ position: Int, _ logits: [Float]) -> Void,
        residual: ((_ row: Int, _ position: Int, _ v: Int, _ hidden: UnsafeBufferPointer<Float>) -> Void)? = nil,
        site readSite: SiteKind = .residPost, steer: ((_ firstRow: Int) -> (ActivationSite) -> Void)? = nil
    ) throws {
        var start = 0
        defer { model.siteHook = nil }
        while start < rows.count {
            let n = min(B, rows.count - start)
            var inputs = [Int32](repeating: WordTokenizer.pad, count: B * T)
            for r in 0..<n {
                for (j, t) in rows[start + r].prefix(T).enumerated() { inputs[r * T + j] = t }
            }
            // A steering hook for this batch (told its first row) runs before any reading.
            let steering = steer?(start)
            model.siteHook = steering
            if let residual {
                // The positions of this batch's rows, read by the hook during the forward pass.
                let wanted = (0..<n).map { r in positions(start + r).filter { $0 < T } }
                let first = start
                model.siteHook = { site in
                    steering?(site)
                    guard site.kind == readSite else { return }
                    for r in 0..<n {
                        for p in wanted[r] {
                            residual(
                                first + r, p, site.position,
                                UnsafeBufferPointer(start: site.hidden + (r * T + p) * site.C, count: site.C))
                        }
                    }
                }
            }
            try model.forward(inputs: inputs, B: B, T: T)
            for r in 0..<n {
                for p in positions(start + r) where p < T { visit(start + r, p, model.logits(row: r * T + p)) }
            }
            start += n
        }
    }

    /// Natural-log softmax of one row of logits.
    static func logSoftmax(_ logits: [Float]) -> [Double] {
        let m = Double(logits.max() ?? 0)
        let logZ = log(logits.reduce(0.0) { $0 + exp(Double($1) - m) }) + m
        return logits.map { Double($0) - logZ }
    }

    /// Natural-log softmax cross-entropy of `target` and the entropy of the distribution.
    static func crossEntropyAndEntropy(_ logits: [Float], target: Int32) -> (ce: Double, entropy: Double) {
        let m = Double(logits.max() ?? 0)
        var z = 0.0
        for l in logits { z += exp(Double(l) - m) }
        let logZ = log(z) + m
        var entropy = 0.0
        for l in logits {
            let lp = Double(l) - logZ
            entropy -= exp(lp) * lp
        }
        return (logZ - Double(logits[Int(target)]), entropy)
    }

    // MARK: igsm

    /// Greedy solutions to `problems` problems per op count from the held-out-template stream
    /// (`igsm.acc.opN`, `igsm.valid.opN`) and, when the task splits by template, from the
    /// training templates (`igsm.accIn.opN`, `igsm.validIn.opN`): fresh problems whose templates
    /// are on the training side of the split, so "in distribution" means what it says. With
    /// `split: none` there is one distribution and only the first pair is reported.
    func evaluateIGSM(_ model: Transformer, _ task: IGSMTask, problems: Int, ops: [Int]) throws -> (
        scalars: [(String, Double)], json: JSONValue
    ) {
        var scalars: [(String, Double)] = []
        var accuracy: [(String, JSONValue)] = [], validity: [(String, JSONValue)] = [],
            skipped: [(String, JSONValue)] = []
        var accuracyIn: [(String, JSONValue)] = [], validityIn: [(String, JSONValue)] = [],
            guess: [(String, JSONValue)] = []
        var samples: [JSONValue] = []
        let splitByTemplate = task.config.split == .template
        for op in ops {
            let heldOut = try (0..<problems).map {
                try task.problem(seed: seed, index: $0, ops: op, split: .test)
            }
            let r = try solveIGSM(model, task, heldOut, op: op, samples: &samples)
            let acc = Double(r.correct) / Double(problems), val = Double(r.valid) / Double(problems)
            scalars += [("igsm.acc.op\(op)", acc), ("igsm.valid.op\(op)", val)]
            accuracy.append((String(op), JSONValue(acc)))
            validity.append((String(op), JSONValue(val)))
            guess.append((String(op), JSONValue(heldOut.map(\.constantGuessAccuracy).reduce(0, +) / Double(problems))))
            var tooLong = r.tooLong
            if splitByTemplate {
                var none: [JSONValue] = []
                let inTemplate = try (0..<problems).map {
                    try task.problem(seed: seed, index: $0, ops: op, split: .train)
                }
                let s = try solveIGSM(model, task, inTemplate, op: op, samples: &none)
                let accIn = Double(s.correct) / Double(problems), valIn = Double(s.valid) / Double(problems)
                scalars += [("igsm.accIn.op\(op)", accIn), ("igsm.validIn.op\(op)", valIn)]
                accuracyIn.append((String(op), JSONValue(accIn)))
                validityIn.append((String(op), JSONValue(valIn)))
                tooLong += s.tooLong
            }
            if tooLong > 0 { skipped.append((String(op), JSONValue(tooLong))) }
        }
        var fields: [(String, JSONValue)] = [
            ("problemsPerOp", JSONValue(problems)), ("accuracy", .object(accuracy)), ("validity", .object(validity)),
            ("constantGuess", .object(guess)),
        ]
        if splitByTemplate {
            fields += [("accuracyInTemplate", .object(accuracyIn)), ("validityInTemplate", .object(validityIn))]
        }
        fields += [("decoding", .string("greedy")), ("split", .string(splitByTemplate ? "template" : "none"))]
        if !skipped.isEmpty { fields.append(("promptTooLong", .object(skipped))) }
        fields.append(("samples", .array(samples)))
        return (scalars, .object(fields))
    }

    /// Greedy, KV-cached solutions to `list`, checked; the first two problems go to `samples`.
    private func solveIGSM(
        _ model: Transformer, _ task: IGSMTask, _ list: [IGSMProblem], op: Int,
        samples: inout [JSONValue]
    ) throws -> (correct: Int, valid: Int, tooLong: Int) {
        let T = body.model.context
        let chunk = max(1, min(64, body.train.batch * 2))
        var correct = 0, valid = 0, tooLong = 0
        var start = 0
        while start < list.count {
            let part = Array(list[start..<min(list.count, start + chunk)])
            start += part.count
            var prompts: [[Int32]] = [], owners: [Int] = []
            for (i, p) in part.enumerated() {
                let ids = tokenizer.encode(p.prompt.joined(separator: " "))
                if ids.count >= T { tooLong += 1; continue }
                prompts.append(ids)
                owners.append(i)
            }
            if prompts.isEmpty { continue }
            // Every sequence may run to the end of the context (T - P + 1 new tokens for a prompt
            // of P), whatever else shares its batch: generate stops each row at the capacity.
            let shortest = prompts.map(\.count).min()!
            var rng = SeededRNG(seed: 0)  // unused by greedy decoding
            let outputs = try model.generate(
                prompts: prompts,
                options: .greedy(maxNewTokens: T - shortest + 1, stopTokens: [WordTokenizer.eos]),
                rng: &rng)
            for (j, out) in outputs.enumerated() {
                let words = tokenizer.decode(out).split(separator: " ").map(String.init) + ["<eos>"]
                let problem = part[owners[j]]
                let check = task.check(problem, candidate: words)
                if check.answerCorrect { correct += 1 }
                if check.validSolution { valid += 1 }
                // The first two problems of each op count, so a reader can see what the model writes.
                if start - part.count + owners[j] < 2 {
                    samples.append(
                        .object([
                            ("ops", JSONValue(op)), ("question", .string(problem.question.joined(separator: " "))),
                            ("expected", .string(problem.solution.joined(separator: " "))),
                            ("generated", .string(words.joined(separator: " "))),
                            ("answerCorrect", .bool(check.answerCorrect)),
                            ("validSolution", .bool(check.validSolution)),
                            ("firstInvalidStep", check.firstInvalidStep.map { JSONValue($0) } ?? .null),
                        ]))
                }
            }
        }
        return (correct, valid, tooLong)
    }

    // MARK: chain

    /// Per chain length k, on `problems` held-out problems: greedy exact match of the answer; for
    /// the cot format also the share of solutions whose every step is right (ChainChecker) and
    /// sampled pass@1 (one sample per problem at temperature 1, seeded), the numbers a search
    /// over samples starts from.
    func evaluateChain(_ model: Transformer, _ task: ChainTask, problems: Int, ks: [Int]) throws -> (
        scalars: [(String, Double)], json: JSONValue
    ) {
        let format = task.config.format
        var scalars: [(String, Double)] = []
        var accuracy: [(String, JSONValue)] = [], validity: [(String, JSONValue)] = [],
            sampled: [(String, JSONValue)] = []
        var guess: [(String, JSONValue)] = []
        var samples: [JSONValue] = []
        let chunk = max(1, min(64, body.train.batch * 2))
        var sampler = SeededRNG(seed: seed &+ 0x5A4D)
        for k in ks {
            let list = try (0..<problems).map { try task.problem(seed: seed, index: $0, k: k, split: .test) }
            let newTokens = task.maxDocumentLength(k: k) - list.map { $0.prompt(format).count }.min()!
            var correct = 0, valid = 0, sampledCorrect = 0
            var start = 0
            while start < list.count {
                let part = Array(list[start..<min(list.count, start + chunk)])
                let prompts = part.map { tokenizer.encode($0.prompt(format).joined(separator: " ")) }
                func decode(_ out: [Int32]) -> [String] { tokenizer.decode(out).split(separator: " ").map(String.init) }
                var unused = SeededRNG(seed: 0)
                let greedy = try model.generate(
                    prompts: prompts, options: .greedy(maxNewTokens: newTokens, stopTokens: [WordTokenizer.eos]),
                    rng: &unused)
                for (j, out) in greedy.enumerated() {
                    let words = decode(out), problem = part[j]
                    let check = format == .cot ? ChainChecker.check(problem, candidate: words) : nil
                    let right = check?.answerCorrect ?? (words.first == String(problem.answer))
                    if right { correct += 1 }
                    if check?.valid == true { valid += 1 }
                    if start + j < 2 {
                        samples.append(
                            .object([
                                ("k", JSONValue(k)), ("prompt", .string(problem.prompt(format).joined(separator: " "))),
                                ("expected", .string(problem.solution(format).joined(separator: " "))),
                                ("generated", .string(words.joined(separator: " "))), ("correct", .bool(right)),
                                ("firstWrongStep", check?.firstError.map { JSONValue($0) } ?? .null),
                            ]))
                    }
                }
                if format == .cot {
                    let drawn = try model.generate(
                        prompts: prompts,
                        options: SamplingOptions(
                            maxNewTokens: newTokens, temperature: 1,
                            stopTokens: [WordTokenizer.eos]), rng: &sampler)
                    for (j, out) in drawn.enumerated()
                    where ChainChecker.check(part[j], candidate: decode(out)).answerCorrect {
                        sampledCorrect += 1
                    }
                }
                start += part.count
            }
            let acc = Double(correct) / Double(problems)
            scalars.append(("chain.acc.k\(k)", acc))
            accuracy.append((String(k), JSONValue(acc)))
            let floor = list.map(\.constantGuessAccuracy).reduce(0, +) / Double(problems)
            guess.append((String(k), JSONValue(floor)))
            if k == 1 { scalars.append(("chain.guess.k1", floor)) }
            if format == .cot {
                let val = Double(valid) / Double(problems), pass = Double(sampledCorrect) / Double(problems)
                scalars += [("chain.valid.k\(k)", val), ("chain.sampled.k\(k)", pass)]
                validity.append((String(k), JSONValue(val)))
                sampled.append((String(k), JSONValue(pass)))
            }
        }
        var fields: [(String, JSONValue)] = [
            ("format", .string(format.rawValue)), ("problemsPerK", JSONValue(problems)),
            ("accuracy", .object(accuracy)),
            ("constantGuess", .object(guess)), ("decoding", .string("greedy")), ("split", .string("test")),
        ]
        if format == .cot {
            fields += [
                ("validity", .object(validity)), ("sampledPass1", .object(sampled)),
                ("sampledTemperature", JSONValue(1)),
            ]
        }
        fields.append(("samples", .array(samples)))
        return (scalars, .object(fields))
    }

    // MARK: bios

    func evaluateBios(_ model: Transformer, _ task: BiosTask, names: Bool) throws -> (
        scalars: [(String, Double)], json: JSONValue
    ) {
        let people = task.config.people
        let docs = (0..<people).map { task.evaluationDocument(seed: seed, person: $0) }
        let rows = docs.map { tokenizer.encode($0.words.joined(separator: " ")) }
        var attrCE = Array(repeating: Array(repeating: 0.0, count: task.attributeNames.count), count: people)
        var nameCE = Array(repeating: 0.0, count: people)
        try forEachRow(
            model, rows: rows,
            positions: { r in
                // Logits at position p - 1 predict the token at p.
                let d = docs[r]
                return (d.attributePositions + (names ? Array(d.nameRange) : [])).filter { $0 >= 1 }.map { $0 - 1 }
            }
        ) { r, p, logits in
            let d = docs[r]
            let target = rows[r][p + 1]
            let ce = Evaluator.crossEntropyAndEntropy(logits, target: target).ce
            if let a = d.attributePositions.firstIndex(of: p + 1) { attrCE[r][a] += ce }
            if d.nameRange.contains(p + 1) { nameCE[r] += ce }
        }
        let cfg = config
        let score = scoreBios(
            attributeCrossEntropyNats: attrCE, nameCrossEntropyNats: names ? nameCE : nil,
            attributeSizes: task.attributeSizes, attributeNames: task.attributeNames,
            namePool: task.config.firstNames * task.config.middleNames * task.config.lastNames,
            totalParams: cfg.totalParams, nonEmbeddingParams: cfg.nonEmbeddingParams)
        let json = score.json
        var scalars: [(String, Double)] = [
            ("bios.bitsAttributes", score.bitsAttributes), ("bios.bitsClipped", score.bitsClipped),
            ("bios.bitsPerParam", score.perParamTotal), ("bios.bitsPerNonEmbParam", score.perParamNonEmb),
        ]
        if let n = score.bitsName { scalars.append(("bios.bitsName", n)) }
        return (scalars, json)
    }

    // MARK: random tokens

    func evaluateRandomTokens(_ model: Transformer, _ task: RandomTokensTask) throws -> (
        scalars: [(String, Double)], json: JSONValue
    ) {
        let rows = (0..<task.windowCount).map {
            tokenizer.encode(task.window(seed: seed, $0).joined(separator: " "))
        }
        var ce = 0.0, entropy = 0.0
        try forEachRow(model, rows: rows, positions: { r in Array(0..<(rows[r].count - 1)) }) { r, p, logits in
            let e = Evaluator.crossEntropyAndEntropy(logits, target: rows[r][p + 1])
            ce += e.ce
            entropy += e.entropy
        }
        let c = task.config
        let score = scoreRandomTokens(
            crossEntropyNats: ce, entropyNats: entropy, predictedTokens: task.predictedTokens,
            symbols: c.symbols, totalParams: config.totalParams,
            nonEmbeddingParams: config.nonEmbeddingParams)
        let scalars: [(String, Double)] = [
            ("random.deltaCE", score.deltaCE), ("random.deltaEnt", score.deltaEnt),
            ("random.fractionCE", score.fractionCE), ("random.bitsPerParamCE", score.perParamTotalCE),
            ("random.bitsPerNonEmbParamCE", score.perParamNonEmbCE),
        ]
        return (scalars, score.json)
    }
}
