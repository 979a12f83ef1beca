// TTSKind.swift: the `tts` kind (issue 13, part 2). A trial runs test-time searches of a policy,
// scored by a process reward model, on held-out chain `cot` problems (specs/tts.md 8.1-8.3):
//
//   {"kind": "tts", "policy": "@policy", "prm": "@prm", "task": ...,
//    "tts": {"problems": 1000, "methods": ["bon", "beam", "dvts"], "nMax": 64, "m": [4]}}
//
// Per problem (its own seeded generator, so a resumed trial draws what an uninterrupted one would):
//
//   greedy      the policy's greedy solution (the reference a larger policy gives);
//   difficulty  `difficultySamples` solutions apart from the searches': their pass@1 gives the
//               oracle bin, the PRM's mean last score the predicted bin (its cost counted);
//   bon         best-of-N with N = nMax; every smaller N is a prefix of its candidates;
//   beam        beam search (N, M) for every N >= M in 1, 2, 4, ..., nMax and every M;
//   dvts        DVTS (nMax, M) for every M; every smaller N is its first N/M subtrees.
//
// Every search shares prefixes in one KV cache (Search.swift) and the PRM scores incrementally
// (RewardScorer). Each problem's record (every candidate: the words, step ends and step scores it
// added to its parent, its answer, kept or pruned, round, subtree; the greedy solution; the
// difficulty samples) is one line of
// records.jsonl, appended durably, so a stopped trial resumes after its last whole problem.
// results.json, the summary's scalars and the report are computed from those records alone
// (TTSAnalysis.swift), with the FLOPs of every node from specs/tts.md 8.5.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The body of a `tts` manifest.
public struct TTSBody: KindBody, Equatable {
    public var policy: CheckpointRef
    /// The PRM (a checkpoint with a value head); nil: majority vote and pass@k only.
    public var prm: CheckpointRef?
    public var tasks: [TaskSpec]
    public var tts: TTSSpec

    public var resolvedFields: [(String, JSONValue)] {
        let task = TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).resolvedFields[0]
        return [("policy", .string(policy.description))] + (prm.map { [("prm", .string($0.description))] } ?? [])
            + [task, ("tts", tts.json)]
    }
    public var progress: (total: Int, unit: String) { (tts.problems, "problems") }
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] {
        [("policy", policy)] + (prm.map { [("prm", $0)] } ?? [])
    }

    /// No model is trained; sampling's FLOPs depend on the checkpoints (results.json reports them).
    public func estimate(_ header: ManifestHeader) throws -> TrialEstimate {
        TrialEstimate(
            parameters: 0, memoryMiB: 256, flops: 0, progressTotal: progress.total, progressUnit: progress.unit)
    }

    /// Rows of the searches' KV caches: nMax candidates, or the difficulty samples if more.
    var rows: Int { max(tts.nMax, tts.difficultySamples) }

    /// Peak memory of a trial in MiB: the policy's and the PRM's weights, a KV cache of `rows`
    /// sequences of the full context for each (every schedule position keeps its keys and values),
    /// their decode buffers and the logits kept per row, and 64 MiB for the rest.
    public static func memoryMiB(policy: ModelConfig, prm: ModelConfig?, rows: Int) -> Double {
        func model(_ c: ModelConfig) -> Double {
            let kv = 2.0 * Double(c.applications * rows * c.kvHeads * c.context * c.headSize)
            let scratch = Double(rows) * Double(4 * c.dModel + c.qkvWidth + c.fcWidth + c.ffnHidden + 2 * c.vocab)
            return 4 * (Double(c.totalParams) + kv + scratch)
        }
        return (model(policy) + (prm.map(model) ?? 0)) / 1_048_576 + 64
    }

    public func summaryScalars(_ results: JSONValue) -> [(String, Double)] { metricScalars(results) }

    /// The task's chain configuration (checked by crossCheck).
    func chainTask() throws -> ChainTask {
        guard
            let t = try TrainBody(tasks: tasks, model: ModelSpec(), train: TrainSpec()).makeMixture().tasks.first
                as? ChainTask
        else { throw TrialError("a tts trial needs a chain cot task") }
        return t
    }

    /// The search settings the task implies, unless the manifest sets them.
    func settings(_ task: ChainTask, tokenizer: WordTokenizer) throws -> SearchSettings {
        guard let sep = tokenizer.id(of: "|") else { throw TrialError("the task's vocabulary has no step separator") }
        var s = SearchSettings(separator: sep, eos: WordTokenizer.eos)
        s.temperature = Float(tts.temperature)
        // A chain trace step is at most "v p + c | " or "v x + c = y |": 7 words; the answer step 3.
        s.maxStepTokens = tts.maxStepTokens ?? 12
        // 2k - 1 steps and the answer at the longest k, and two to spare.
        s.maxRounds = tts.maxRounds ?? (2 * task.config.maxK + 2)
        s.aggregation = tts.searchAggregation
        return s
    }
}

enum TTSKind: ExperimentKind {
    static let name = "tts"

    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> TTSBody? {
        let policy = root.checkpointRef("policy")
        if policy == nil, root.raw("policy") == nil || root.raw("policy") == .null {
            root.issues.add("policy", "missing; expected the policy's checkpoint: \(CheckpointRef.accepted)")
        }
        let prm = root.checkpointRef("prm")
        let tasks = TrainBody.parseTasks(root.value("task"), issues: root.issues)
        let spec = TTSSpec.parse(root.object("tts"))
        guard let policy, !tasks.isEmpty else { return nil }
        return TTSBody(policy: policy, prm: prm, tasks: tasks, tts: spec)
    }

    static func crossCheck(_ body: TTSBody, header: ManifestHeader, issues: IssueList, limits: Limits) {
        PRMKind.checkStepTask(body.tasks, labels: nil, issues: issues)
        if body.prm == nil {
            let searches = body.tts.methods.filter { $0 != .bon }
            if !searches.isEmpty {
                issues.add(
                    "prm",
                    "missing; \(searches.map(\.rawValue).joined(separator: " and ")) rank candidates by a PRM's scores: "
                        + "expected the PRM's checkpoint (\(CheckpointRef.accepted)), or methods [\"bon\"] alone")
            }
        }
    }

    static func run(_ trial: Trial, body: TTSBody, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome {
        try TTSRunner(trial: trial, body: body, dir: dir, context: context).run()
    }

    static func reportSections(_ report: inout HTMLReport, conditions: [Summary.Condition]) {
        TTSReport.summarySections(&report, conditions: conditions)
    }
}

/// One tts trial in progress.
final class TTSRunner {
    let trial: Trial
    let body: TTSBody
    let dir: TrialDirectory
    let context: RunContext
    let log: (String) -> Void
    let pool: ThreadPool
    let threads: Int

    static let recordsFile = "records.jsonl"

    init(trial: Trial, body: TTSBody, dir: TrialDirectory, context: RunContext) throws {
        self.trial = trial
        self.body = body
        self.dir = dir
        self.context = context
        threads = context.threads ?? trial.manifest.threads
        pool = ThreadPool(threads: threads)
        log = try TrainRunner.openTrialLog(trial, in: dir, context: context)
    }

    func load(_ ref: CheckpointRef, role: String, tokenizer: WordTokenizer) throws -> (Transformer, URL) {
        try TrainRunner.loadCheckpoint(
            ref, role: role, context: context, pool: pool, tokenizer: tokenizer,
            mismatch: "the task's (policy, PRM and task need one vocabulary)")
    }

    func run() throws -> TrialOutcome {
        let h = trial.manifest
        let start = Date()
        let task = try body.chainTask()
        let tokenizer = try TaskMixture(tasks: [task], weights: [1]).tokenizer
        let (policy, policyDir) = try load(body.policy, role: "policy", tokenizer: tokenizer)
        var prm: (model: Transformer, head: RewardHead, dir: URL)?
        if let ref = body.prm {
            let (model, prmDir) = try load(ref, role: "prm", tokenizer: tokenizer)
            let head: RewardHead
            do { head = try RewardHead.load(from: prmDir, dModel: model.config.dModel) } catch {
                throw TrialError("prm \(ref): \(error)")
            }
            guard model.config.context >= policy.config.context else {
                throw TrialError(
                    "prm \(ref) has a context of \(model.config.context); the policy writes up to \(policy.config.context) tokens"
                )
            }
            prm = (model, head, prmDir)
        }
        let settings = try body.settings(task, tokenizer: tokenizer)
        let spec = body.tts
        let need = TTSBody.memoryMiB(policy: policy.config, prm: prm?.model.config, rows: body.rows)
        guard need <= Double(h.memoryMiB) else {
            throw TrialError(
                "tts.nMax: searches of \(spec.nMax) candidates need about \(Int(need.rounded(.up))) MiB (the models and "
                    + "their KV caches); resources.memoryMiB is \(h.memoryMiB): raise it or lower nMax")
        }
        let scorer: StepScoring =
            prm.map {
                RewardScorer(
                    model: $0.model, head: $0.head, rows: max(spec.nMax, spec.difficultySamples),
                    capacity: policy.config.context)
            }
            ?? WholeCandidateScoring { _, _, ends in ends.map { _ in 0 } }
        let search = StepSearch(policy: policy, settings: settings, scoring: scorer)
        let problems = ProblemSet.ttsTest(spec.problems)
        let recordsURL = dir.url.appendingPathComponent(TTSRunner.recordsFile)
        var records = try TTSRunner.readRecords(recordsURL)
        if records.count > spec.problems { records = Array(records.prefix(spec.problems)) }
        try TTSRunner.rewriteRecords(records, to: recordsURL)
        if records.isEmpty {
            log(
                "vld \(VLD.version) tts \(h.name) trial \(trial.index) [\(trial.condition)] seed \(h.seed) | policy "
                    + "\(body.policy): \(TrainRunner.brief(policy.config)) P_total=\(policy.config.totalParams)"
                    + (prm.map { " | prm \(body.prm!): P_total=\($0.model.config.totalParams)" } ?? " | no prm")
                    + " | \(spec.problems) problems, methods \(spec.methods.map(\.rawValue).joined(separator: ",")), "
                    + "N up to \(spec.nMax), M \(spec.m) | \(threads) threads")
        } else {
            log("resuming after \(records.count) of \(spec.problems) problems (\(TTSRunner.recordsFile))")
        }
        let handle = try FileHandle(forWritingTo: recordsURL)
        defer { try? handle.close() }
        try handle.seekToEnd()
        let firstProblem = records.count
        var tokensSince = 0
        for i in records.count..<spec.problems {
            if context.shouldStop() {
                log("stopped after \(i) problems; run again to resume")
                return .stopped(step: i)
            }
            let problem = try problems.problem(i, task: task, seed: h.seed)
            var rng = SeededRNG(seed: h.seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(i) &+ 0x77)
            let t0 = Date()
            var record = try solve(
                problem, index: i, policy: policy, prm: prm.map { ($0.model, $0.head) }, search: search,
                tokenizer: tokenizer, task: task, rng: &rng)
            // Seconds this problem took: the trial's wall time survives a resume as their sum.
            record.set(path: ["seconds"], to: JSONValue((Date().timeIntervalSince(t0) * 1000).rounded() / 1000))
            tokensSince += TTSRecord.policyTokens(record)
            try handle.write(contentsOf: Data((record.serialized(pretty: false) + "\n").utf8))
            try handle.synchronize()
            records.append(record)
            let elapsed = Date().timeIntervalSince(start)
            let done = i + 1 - firstProblem
            let eta = elapsed / Double(done) * Double(spec.problems - i - 1)
            context.progress(
                TrainProgress(
                    step: i + 1, steps: spec.problems, loss: .nan,
                    tokensPerSecond: Double(tokensSince) / max(elapsed, 1e-9), etaSeconds: eta, evalLoss: nil))
            if (i + 1) % max(1, spec.problems / 10) == 0 || i + 1 == spec.problems {
                log("problem \(i + 1)/\(spec.problems) eta=\(formatDuration(eta))")
            }
        }
        let loopEnd = Date()
        let analysis = TTSAnalysis(
            records: records, spec: spec, policy: policy.config, prm: prm?.model.config)
        var results = analysis.results()
        let header: [(String, JSONValue)] = [
            ("vldVersion", .string(VLD.version)), ("name", .string(h.name)), ("kind", .string(h.kind)),
            ("trial", JSONValue(trial.index)), ("condition", .string(trial.condition)),
            ("assignments", .object(trial.assignments)), ("seed", JSONValue(Int(h.seed))),
            ("threads", JSONValue(threads)),
            ("policy", TTSRunner.describe(body.policy, policyDir, policy.config)),
            ("prm", prm.map { TTSRunner.describe(body.prm!, $0.dir, $0.model.config) } ?? .null),
            (
                "search",
                .object([
                    ("maxStepTokens", JSONValue(settings.maxStepTokens)), ("maxRounds", JSONValue(settings.maxRounds)),
                    ("temperature", JSONValue(Double(settings.temperature))),
                    ("aggregation", .string(settings.aggregation.rawValue)),
                ])
            ),
            ("records", .string(TTSRunner.recordsFile)),
            (
                "endToEnd",
                TTSRunner.endToEnd(
                    policyDir: policyDir, prmDir: prm?.dir, inference: results["flops"]?["total"]?.doubleValue ?? 0,
                    problems: records.count)
            ),
        ]
        if case let .object(f) = results { results = .object(header + f) }
        // The problems' own seconds (summed over every process that ran them) and the analysis.
        let solving = records.reduce(0.0) { $0 + ($1["seconds"]?.doubleValue ?? 0) }
        let analysisSeconds = Date().timeIntervalSince(loopEnd)
        let wall = Date().timeIntervalSince(start)
        func tenths(_ x: Double) -> JSONValue { JSONValue((x * 10).rounded() / 10) }
        results.set(
            path: ["timing"],
            to: .object([
                ("wallSeconds", tenths(solving + analysisSeconds)), ("problemSeconds", tenths(solving)),
                ("analysisSeconds", tenths(analysisSeconds)), ("thisProcessSeconds", tenths(wall)),
            ]))
        try writeAtomically(TTSReport.trialHTML(trial: trial, results: results), to: dir.report)
        try writeAtomically(results.serialized() + "\n", to: dir.results)
        log("done in \(formatDuration(wall)): " + analysis.headline(results))
        return .completed
    }

    /// The study's compute end to end (specs/tts.md 8.5): the policy's pretraining and the PRM's
    /// training, labelling rollouts and held-out evaluation (and the pretraining of the weights it
    /// started from, when they are not the policy's), read from the results.json beside each
    /// checkpoint (a published trial's), plus this trial's inference. A checkpoint without
    /// one (a directory given by path) leaves its part null and the total out.
    static func endToEnd(policyDir: URL, prmDir: URL?, inference total: Double, problems: Int) -> JSONValue {
        func flops(_ dir: URL, _ keys: [String]) -> Double? {
            let file = dir.deletingLastPathComponent().appendingPathComponent(TrialDirectory.commitMarker)
            guard let r = try? JSONValue.parse(Data(contentsOf: file)) else { return nil }
            return keys.reduce(0.0) { $0 + (r["flops"]?[$1]?.doubleValue ?? 0) }
        }
        let pretrain = flops(policyDir, ["train"])
        let prmTrain = prmDir.flatMap { flops($0, ["train"]) }
        let prmData = prmDir.flatMap { flops($0, ["labelling", "prmEvaluation"]) }
        // A PRM started from another checkpoint than the policy's carries that checkpoint's training.
        var prmInit = 0.0
        if let prmDir,
            let r = try? JSONValue.parse(
                Data(contentsOf: prmDir.deletingLastPathComponent().appendingPathComponent(TrialDirectory.commitMarker))
            ),
            case let .string(path)? = r["init"]?["checkpoint"], path != policyDir.standardizedFileURL.path
        {
            prmInit = r["init"]?["trainFlops"]?.doubleValue ?? .nan
        }
        var f: [(String, JSONValue)] = [
            ("policyPretraining", pretrain.map { JSONValue($0) } ?? .null),
            ("prmTraining", prmDir == nil ? JSONValue(0) : prmTrain.map { JSONValue($0) } ?? .null),
            ("prmLabellingAndEvaluation", prmDir == nil ? JSONValue(0) : prmData.map { JSONValue($0) } ?? .null),
            ("prmInitPretraining", prmInit.isNaN ? .null : JSONValue(prmInit)),
            ("inference", JSONValue(total)),
            ("inferencePerProblem", JSONValue(total / Double(max(1, problems)))),
        ]
        if let pretrain, prmDir == nil || (prmTrain != nil && prmData != nil), !prmInit.isNaN {
            f.append(("total", JSONValue(pretrain + (prmTrain ?? 0) + (prmData ?? 0) + prmInit + total)))
        }
        return .object(f)
    }

    static func describe(_ ref: CheckpointRef, _ dir: URL, _ c: ModelConfig) -> JSONValue {
        .object([
            ("checkpoint", .string(ref.description)), ("path", .string(dir.path)),
            ("arch", .string(c.arch.rawValue)), ("dModel", JSONValue(c.dModel)), ("layers", JSONValue(c.layers)),
            ("schedule", .string(c.schedule.description)), ("context", JSONValue(c.context)),
            ("P_total", JSONValue(c.totalParams)), ("P_nonEmbedding", JSONValue(c.nonEmbeddingParams)),
        ])
    }

    /// The searches, greedy solution and difficulty samples of one problem, as its record.
    func solve(
        _ problem: ChainProblem, index: Int, policy: Transformer, prm: (Transformer, RewardHead)?,
        search: StepSearch, tokenizer: WordTokenizer, task: ChainTask, rng: inout SeededRNG
    ) throws -> JSONValue {
        let spec = body.tts
        let promptWords = problem.prompt(.cot)
        let prompt = tokenizer.encode(promptWords.joined(separator: " "))
        func words(_ t: [Int32]) -> [String] { tokenizer.decode(t).split(separator: " ").map(String.init) }
        var fields: [(String, JSONValue)] = [
            ("problem", JSONValue(index)), ("k", JSONValue(problem.k)), ("gold", JSONValue(problem.answer)),
            ("promptTokens", JSONValue(prompt.count)),
        ]
        // Greedy decoding may write as long as the context allows (a search's candidates may too).
        let maxNew = max(1, policy.config.context - prompt.count)
        if spec.greedy {
            var unused = SeededRNG(seed: 0)
            let out = try policy.generate(
                prompts: [prompt], options: .greedy(maxNewTokens: maxNew, stopTokens: [WordTokenizer.eos]),
                rng: &unused)[0]
            let w = words(out)
            fields.append(
                (
                    "greedy",
                    .object([
                        ("words", .string(w.joined(separator: " "))), ("answer", TTSRecord.answerJSON(w)),
                        ("tokens", JSONValue(out.count)),
                    ])
                ))
        }
        if spec.difficultySamples > 0 {
            // Sampled as best-of-N's candidates are (same lengths, temperature and PRM), apart from them.
            let o = try search.run(.bestOfN(n: spec.difficultySamples), prompt: prompt, rng: &rng)
            let ws = o.nodes.map { words($0.tokens) }
            fields.append(
                (
                    "difficulty",
                    .object([
                        ("answers", .array(ws.map { TTSRecord.answerJSON($0) })),
                        ("tokens", .array(o.nodes.map { JSONValue($0.tokens.count) })),
                        (
                            "prmLast",
                            .array(prm == nil ? [] : o.nodes.map { $0.scores.last.map { JSONValue($0) } ?? .null })
                        ),
                        ("prmTokens", JSONValue(prm == nil ? 0 : o.scoredTokens)),
                    ])
                ))
        }
        var runs: [JSONValue] = []
        func record(_ method: String, n: Int, m: Int?, _ o: SearchOutcome) {
            let byID = Dictionary(uniqueKeysWithValues: o.nodes.map { ($0.id, $0) })
            runs.append(
                .object([
                    ("method", .string(method)), ("n", JSONValue(n)), ("m", m.map { JSONValue($0) } ?? .null),
                    ("generatedTokens", JSONValue(o.generatedTokens)), ("prmTokens", JSONValue(o.scoredTokens)),
                    ("outputs", .array(o.outputs.map { JSONValue($0.id) })),
                    (
                        "nodes",
                        .array(
                            o.nodes.map { n in
                                // What the node added to its parent: its words, step ends and scores
                                // (the parent's are in the parent's entry; a root's are all its own).
                                let parent = n.parent.flatMap { byID[$0] }
                                let (t0, s0) = (parent?.tokens.count ?? 0, parent?.scores.count ?? 0)
                                return .object([
                                    ("id", JSONValue(n.id)), ("parent", n.parent.map { JSONValue($0) } ?? .null),
                                    ("subtree", JSONValue(n.subtree)), ("round", JSONValue(n.round)),
                                    ("added", .string(words(Array(n.tokens[t0...])).joined(separator: " "))),
                                    ("stepEnds", .array(n.stepEnds[s0...].map { JSONValue($0) })),
                                    ("scores", .array(n.scores[s0...].map { JSONValue(($0 * 1e6).rounded() / 1e6) })),
                                    ("answer", TTSRecord.answerJSON(words(n.tokens))), ("done", .bool(n.done)),
                                    ("kept", .bool(n.kept)),
                                ])
                            })
                    ),
                ]))
        }
        for method in spec.methods {
            switch method {
            case .bon:
                record("bon", n: spec.nMax, m: nil, try search.run(.bestOfN(n: spec.nMax), prompt: prompt, rng: &rng))
            case .beam:
                for m in spec.m {
                    for n in spec.budgets where n >= m && n % m == 0 {
                        record("beam", n: n, m: m, try search.run(.beam(n: n, m: m), prompt: prompt, rng: &rng))
                    }
                }
            case .dvts:
                for m in spec.m {
                    record(
                        "dvts", n: spec.nMax, m: m, try search.run(.dvts(n: spec.nMax, m: m), prompt: prompt, rng: &rng)
                    )
                }
            }
        }
        fields.append(("runs", .array(runs)))
        return .object(fields)
    }

    // MARK: records.jsonl

    /// The whole records of a file (a torn last line, from a kill mid-write, is dropped).
    static func readRecords(_ url: URL) throws -> [JSONValue] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        var out: [JSONValue] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let v = try? JSONValue.parse(String(line)), v["problem"]?.doubleValue == Double(out.count) else {
                break
            }
            out.append(v)
        }
        return out
    }

    static func rewriteRecords(_ records: [JSONValue], to url: URL) throws {
        try writeAtomically(records.map { $0.serialized(pretty: false) + "\n" }.joined(), to: url)
    }
}
