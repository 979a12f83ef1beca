// TrainRun.swift: the `train` experiment kind. One trial trains one model on a task mixture.
//
// The trial works in one directory (the caller publishes it by renaming it when `run` returns
// `.completed`):
//
//   manifest.json     the resolved trial (every default written out); a restart checks it
//   metrics.jsonl     one JSON object per evaluation (step, losses, each task's metrics)
//   log.txt           the human-readable progress lines
//   checkpoint/       model, optimizer, state.json (step, RNG, data cursor), tokenizer.json and
//                     run.json (the running train-loss sum and the wall time so far, published
//                     in the same rename as the weights)
//   report.html       the trial's plots
//   results.json      final metrics, written last: its presence means the trial is complete
//
// Restarting after a crash or a stop resumes from checkpoint/: the weights, AdamW moments, step,
// RNG and data cursor are restored exactly and metrics.jsonl is cut back to the checkpoint's
// step, so an interrupted run ends with the same numbers as an uninterrupted one.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// What a running trial reports to its caller (a progress bar, the daemon's heartbeat).
public struct TrainProgress: Sendable {
    public var step: Int
    public var steps: Int
    /// Mean training loss over the steps since the last report.
    public var loss: Double
    public var tokensPerSecond: Double
    /// Seconds left for this trial at the current rate.
    public var etaSeconds: Double
    /// Set on evaluation steps.
    public var evalLoss: Double?
}

/// How a trial talks to the outside world.
public struct RunContext {
    /// Overrides the manifest's resources.threads (e.g. `vldctl run --threads`).
    public var threads: Int?
    /// Progress lines for a human; the runner also appends them to log.txt.
    public var log: (String) -> Void
    /// Called after every step and every evaluation.
    public var progress: (TrainProgress) -> Void
    /// Polled between steps: true asks the trial to checkpoint and return `.stopped`.
    public var shouldStop: () -> Bool
    /// The checkpoint directory a reference names (`vldctl run` resolves stages in its output
    /// directory, the daemon through its queue); throws a TrialError naming what is missing.
    public var checkpoint: (CheckpointRef) throws -> URL
    /// Where files computed once for several trials live (distill's teacher cache): `vldctl run`
    /// uses `<out>/<name>/.cache`, the daemon `<state_dir>/cache`; nil keeps them in the trial's
    /// own directory.
    public var cacheDirectory: URL?

    public init(
        threads: Int? = nil, log: @escaping (String) -> Void = { _ in },
        progress: @escaping (TrainProgress) -> Void = { _ in },
        shouldStop: @escaping () -> Bool = { false },
        checkpoint: @escaping (CheckpointRef) throws -> URL = RunContext.pathsOnly,
        cacheDirectory: URL? = nil
    ) {
        self.threads = threads
        self.log = log
        self.progress = progress
        self.shouldStop = shouldStop
        self.checkpoint = checkpoint
        self.cacheDirectory = cacheDirectory
    }

    /// Resolves paths as they are and refuses stage and job references (a trial run on its own).
    public static let pathsOnly: (CheckpointRef) throws -> URL = { ref in
        guard case let .path(p) = ref else {
            throw TrialError("\(ref) names a stage or job, which only a pipeline run resolves")
        }
        return URL(fileURLWithPath: p)
    }
}

public enum TrialOutcome: Equatable {
    /// results.json is written; the directory can be published.
    case completed
    /// Checkpointed at this step on request; run again to resume.
    case stopped(step: Int)
}

public struct TrialError: Error, CustomStringConvertible {
    public let message: String
    /// Whether running the trial again could end differently. Most trial errors cannot (a run is
    /// deterministic: it diverges again at the same step); a failed file operation can.
    public let retryable: Bool
    public init(_ message: String, retryable: Bool = false) {
        self.message = message
        self.retryable = retryable
    }
    public var description: String { message }

    /// Whether a trial that failed with `error` may succeed if run again: not for errors that
    /// follow from the manifest and the code (a manifest or task that cannot work, a token
    /// outside the vocabulary, divergence), yes for anything else (a full disk, a killed process).
    public static func isRetryable(_ error: Error) -> Bool {
        switch error {
        case let e as TrialError: return e.retryable
        case is ManifestError, is TaskError, is TokenError: return false
        default: return true
        }
    }
}

/// What the training loop hands a kind's hooks once it has built the data and the model config.
struct HookSetup {
    let pool: ThreadPool
    let mixture: TaskMixture
    let config: ModelConfig
    let evaluator: Evaluator
    let context: RunContext
    /// The trial's directory.
    let directory: URL
    let log: (String) -> Void
}

/// What a kind that trains like `train` changes in the loop (`distill`: the loss and a teacher).
protocol TrainingHooks: AnyObject {
    /// One optimisation step on `batch` (forward, the kind's loss, backward, AdamW).
    func step(
        _ model: Transformer, batch: PackedBatch, B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState
    ) throws -> StepStats
    /// Scalars added to every evaluation (metrics.jsonl, results.json `metrics`, summaries).
    func evaluate(_ model: Transformer) throws -> [(String, Double)]
    /// Fields of results.json that the kind adds or replaces, after `steps` steps; a key with dots
    /// ("flops.labelling") names a nested field.
    func results(steps: Int) -> [(String, JSONValue)]
    /// Files saved in every checkpoint beside the model (a PRM's value head), read back by the
    /// hooks when the trial resumes.
    func checkpointFiles() -> [String: Data]
}

extension TrainingHooks {
    func checkpointFiles() -> [String: Data] { [:] }
}

public enum TrainRunner {
    static func brief(_ c: ModelConfig) -> String {
        "\(c.arch.rawValue) d=\(c.dModel) L=\(c.layers) heads \(c.heads)/\(c.kvHeads) ffn \(c.ffnHidden) context \(c.context) vocab \(c.vocab)\(c.tiedEmbeddings ? " tied" : " untied")\(c.head == .full ? "" : " head \(c.head)")\(c.outputMultiplier == 1 ? "" : " output x\(c.outputMultiplier)")"
    }

    /// Runs (or resumes) `trial` in `dir`.
    public static func run(_ trial: Trial, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome {
        guard let m = trial.manifest.body as? TrainBody else {
            throw TrialError("trial \(trial.index) is a \(trial.manifest.kind) trial, not a train trial")
        }
        return try train(trial, body: m, in: dir, context: context, hooks: nil)
    }

    /// The training loop of `train` and of the kinds that train a model like it (`distill`):
    /// `hooks` (built once the tokenizer, model config and threads are known) replaces the step's
    /// loss, adds scalars to each evaluation and fields to results.json.
    static func train(
        _ trial: Trial, body m: TrainBody, in dir: TrialDirectory, context: RunContext,
        hooks makeHooks: ((HookSetup) throws -> TrainingHooks)?
    ) throws -> TrialOutcome {
        let h = trial.manifest
        let fm = FileManager.default
        let threads = context.threads ?? h.threads
        let logFile = try openTrial(trial, in: dir)
        func log(_ line: String) {
            logFile.write(line)
            context.log(line)
        }

        let mixture = try m.makeMixture()
        let cfg = m.modelConfig(vocab: mixture.tokenizer.vocabSize)
        try cfg.validate()
        let pool = ThreadPool(threads: threads)
        let ckpt = dir.checkpoint
        let tokenizerData = try tokenizerJSON(mixture.tokenizer)
        let adamW = AdamWConfig(
            beta1: Float(m.train.beta1), beta2: Float(m.train.beta2), weightDecay: Float(m.train.weightDecay))

        var model: Transformer, opt: OptimizerState, state: TrainingState
        var elapsedBefore = 0.0
        var lossSum = 0.0, lossCount = 0
        var lastTrainLoss = Double.nan
        if fm.fileExists(atPath: ckpt.appendingPathComponent("state.json").path) {
            (model, opt, state) = try Checkpoint.loadForResume(from: ckpt, pool: pool)
            guard model.config == cfg else {
                throw TrialError("\(ckpt.path) holds a different model; remove \(dir.path) to start over")
            }
            _ = try WordTokenizer.load(from: ckpt, expecting: mixture.tokenizer)
            let run = try? JSONValue.parse(Data(contentsOf: ckpt.appendingPathComponent("run.json")))
            guard case let .number(e)? = run?["elapsedSeconds"], case let .number(ls)? = run?["lossSum"],
                case let .number(lc)? = run?["lossCount"], case let .number(th)? = run?["threads"],
                e.isFinite, ls.isFinite, lc >= 0, lc <= 1e12, lc.rounded() == lc,
                (0...Double(m.train.steps)).contains(Double(state.step)),
                state.dataCursor >= 0
            else {
                throw TrialError(
                    "\(ckpt.path): run.json or state.json is missing or damaged; remove \(dir.path) to start over")
            }
            // Reductions are ordered per thread, so a run continues bit-for-bit only with its thread count.
            guard Int(th) == threads else {
                throw TrialError(
                    "\(dir.path) was started with \(Int(th)) threads; resume it with --threads \(Int(th)) (results depend on the thread count)"
                )
            }
            (elapsedBefore, lossSum, lossCount) = (e, ls, Int(lc))
            if case let .number(x)? = run?["lastTrainLoss"] { lastTrainLoss = x }
            log("resuming at step \(state.step) of \(m.train.steps) from \(ckpt.path)")
        } else {
            var rng = SeededRNG(seed: h.seed)
            model = try Transformer(config: cfg, pool: pool, rng: &rng)
            if let ref = m.initFrom {
                let source = try context.checkpoint(ref)
                try TrainRunner.initialize(model, from: source, ref: ref, tokenizer: mixture.tokenizer, pool: pool)
                log("initialized the weights from \(ref) (\(source.path)); the optimizer starts afresh")
            }
            opt = OptimizerState(parameterCount: model.parameterCount, config: adamW)
            state = TrainingState(step: 0, rng: rng, dataCursor: 0, adamW: adamW)
        }
        let metricsFile = dir.metrics
        try truncateMetrics(metricsFile, after: state.step)

        let B = m.train.batch, T = m.model.context, steps = m.train.steps
        let schedule = LRSchedule(peak: Float(m.train.lr), floor: Float(m.minLr), warmup: m.train.warmup, total: steps)
        let evaluator = Evaluator(body: m, seed: h.seed, mixture: mixture, config: cfg)
        let hooks = try makeHooks?(
            HookSetup(
                pool: pool, mixture: mixture, config: cfg, evaluator: evaluator, context: context, directory: dir.url,
                log: log))
        if state.step == 0 {
            log(
                "vld \(VLD.version) train \(h.name) trial \(trial.index) [\(trial.condition)] seed \(h.seed) | \(cfg.arch.rawValue) "
                    + "d=\(cfg.dModel) L=\(cfg.layers) schedule \(cfg.schedule) D=\(cfg.applications) D_VLD=\(cfg.vldDepth) | "
                    + "P_total=\(cfg.totalParams) P_nonemb=\(cfg.nonEmbeddingParams) | tasks \(mixture.tokenizer.family) "
                    + "vocab \(cfg.vocab) | \(threads) threads, BLAS \(BLAS.coreName)")
        }

        let start = Date()
        let firstStep = state.step
        // Test hook: VLD_FAULT_STEP_DELAY_MS slows every step, so that tests which interrupt a run
        // between two checkpoints do not depend on how fast the machine trains. Numbers are unchanged.
        let stepDelay =
            ProcessInfo.processInfo.environment["VLD_FAULT_STEP_DELAY_MS"].flatMap(UInt32.init).map { min($0, 10_000) }
            ?? 0
        func saveCheckpoint() throws {
            let run = JSONValue.object([
                ("lossSum", JSONValue(lossSum)), ("lossCount", JSONValue(lossCount)),
                ("lastTrainLoss", JSONValue(lastTrainLoss)),
                ("threads", JSONValue(threads)),
                ("elapsedSeconds", JSONValue(elapsedBefore + Date().timeIntervalSince(start))),
            ])
            try Checkpoint.save(
                model, to: ckpt, optimizer: opt, state: state,
                extraFiles: ["tokenizer.json": tokenizerData, "run.json": Data(run.serialized().utf8)].merging(
                    hooks?.checkpointFiles() ?? [:]
                ) { a, _ in a })
        }

        while state.step < steps {
            if context.shouldStop() {
                try saveCheckpoint()
                log("stopped at step \(state.step); run again to resume")
                return .stopped(step: state.step)
            }
            if stepDelay > 0 { usleep(stepDelay * 1000) }
            let batch = try mixture.batch(seed: h.seed, cursor: state.dataCursor, B: B, T: T)
            let stats =
                try hooks?.step(
                    model, batch: batch, B: B, T: T, lr: schedule.lr(at: state.step), clip: Float(m.train.clip),
                    optimizer: opt)
                ?? model.trainStep(
                    inputs: batch.inputs, targets: batch.targets, B: B, T: T, lr: schedule.lr(at: state.step),
                    clip: Float(m.train.clip), optimizer: opt, segments: batch.segments)
            state.step += 1
            state.dataCursor = batch.nextCursor
            guard stats.loss.isFinite else {
                try appendMetrics(
                    metricsFile,
                    .object([("step", JSONValue(state.step)), ("trainLoss", .null), ("diverged", .bool(true))]))
                throw TrialError(
                    "training diverged at step \(state.step): loss is \(stats.loss); lower train.lr or raise train.warmup"
                )
            }
            lossSum += Double(stats.loss)
            lossCount += 1
            let elapsed = Date().timeIntervalSince(start)
            let done = state.step - firstStep
            let tps = Double(done * B * T) / max(elapsed, 1e-9)
            let eta = elapsed / Double(done) * Double(steps - state.step)
            let isEval = state.step % m.evalEvery == 0 || state.step == steps
            if !isEval {
                context.progress(
                    TrainProgress(
                        step: state.step, steps: steps, loss: Double(stats.loss), tokensPerSecond: tps,
                        etaSeconds: eta, evalLoss: nil))
                if state.step % m.checkpointEvery == 0 {
                    try saveCheckpoint()
                }
                continue
            }
            lastTrainLoss = lossSum / Double(lossCount)
            lossSum = 0
            lossCount = 0
            var e = try evaluator.evaluate(model)
            if let hooks { e.scalars += try hooks.evaluate(model) }
            var fields: [(String, JSONValue)] = [
                ("step", JSONValue(state.step)), ("trainLoss", JSONValue(lastTrainLoss)),
                ("evalLoss", JSONValue(e.loss)),
                ("lr", JSONValue(Double(stats.lr))), ("gradNorm", JSONValue(Double(stats.gradNorm))),
                ("tokens", JSONValue(state.step * B * T)),
                ("flops", JSONValue(Double(state.step) * cfg.trainFlopsPerStep(batch: B, seqLen: T))),
            ]
            fields += e.scalars.map { ($0.0, JSONValue($0.1)) }
            try appendMetrics(metricsFile, .object(fields))
            let extras = headline(e)
            log(
                String(
                    format: "step %d/%d train_loss=%.4f eval_loss=%.4f tok/s=%.0f", state.step, steps, lastTrainLoss,
                    e.loss, tps)
                    + " eta=\(formatDuration(eta)) " + extras)
            context.progress(
                TrainProgress(
                    step: state.step, steps: steps, loss: lastTrainLoss, tokensPerSecond: tps,
                    etaSeconds: eta, evalLoss: e.loss))
            if state.step % m.checkpointEvery == 0 || state.step == steps {
                try saveCheckpoint()
            }
            if state.step == steps { try finish(e) }
        }
        // Killed after the last checkpoint but before results.json: the final evaluation is a pure
        // function of the checkpointed weights, so it is recomputed.
        if !dir.isComplete {
            var e = try evaluator.evaluate(model)
            if let hooks { e.scalars += try hooks.evaluate(model) }
            try finish(e)
        }
        return .completed

        func finish(_ e: Evaluation) throws {
            let wall = elapsedBefore + Date().timeIntervalSince(start)
            var results = resultsJSON(
                trial: trial, body: m, config: cfg, mixture: mixture, state: state, threads: threads,
                trainLoss: lastTrainLoss, evaluation: e, wallSeconds: wall)
            if let hooks {
                for (k, v) in hooks.results(steps: state.step) {
                    results.set(path: k.split(separator: ".").map(String.init), to: v)
                }
            }
            try writeAtomically(
                TrialReport.html(trial: trial, results: results, metrics: dir.readMetrics()),
                to: dir.report)
            try writeAtomically(results.serialized() + "\n", to: dir.results)
            let extras = headline(e)
            log("done in \(formatDuration(wall)): eval_loss=\(formatNumber(e.loss, significant: 4)) " + extras)
        }
    }

    /// The first few metrics of an evaluation as key=value text for the log.
    static func headline(_ e: Evaluation) -> String {
        e.scalars.filter { !$0.0.contains(".valid.") }.prefix(6)
            .map { "\($0.0)=\(formatNumber($0.1, significant: 3))" }.joined(separator: " ")
    }

    /// results.json of a finished trial.
    static func resultsJSON(
        trial: Trial, body m: TrainBody, config cfg: ModelConfig, mixture: TaskMixture, state: TrainingState,
        threads: Int, trainLoss: Double, evaluation e: Evaluation, wallSeconds: Double
    ) -> JSONValue {
        let h = trial.manifest
        let B = m.train.batch, T = m.model.context
        var documents = [Int](repeating: 0, count: mixture.tasks.count)
        for i in 0..<state.dataCursor { documents[mixture.taskIndex(seed: h.seed, index: i)] += 1 }
        var docFields: [(String, JSONValue)] = []
        for (k, task) in mixture.tasks.enumerated() { docFields.append((task.family, JSONValue(documents[k]))) }
        var training: [(String, JSONValue)] = [
            ("steps", JSONValue(state.step)), ("tokensSeen", JSONValue(state.step * B * T)),
            ("documents", .object(docFields)),
            ("finalTrainLoss", JSONValue(trainLoss)), ("evalLoss", JSONValue(e.loss)),
        ]
        for (k, spec) in m.tasks.enumerated() {
            if case let .bios(c, _, _) = spec {
                training.append(("biosExposures", JSONValue(Double(documents[k]) / Double(c.people))))
            }
            if case .randomTokens = spec, let t = mixture.tasks[k] as? RandomTokensTask {
                training.append(("randomTokensPasses", JSONValue(Double(documents[k]) / Double(t.windowCount))))
            }
        }
        let trainFlops = cfg.trainFlopsPerStep(batch: B, seqLen: T)
        return .object([
            ("vldVersion", .string(VLD.version)), ("name", .string(h.name)), ("kind", .string(h.kind)),
            ("trial", JSONValue(trial.index)), ("condition", .string(trial.condition)),
            ("assignments", .object(trial.assignments)), ("seed", JSONValue(Int(h.seed))),
            ("threads", JSONValue(threads)),
            (
                "model",
                .object([
                    ("arch", .string(cfg.arch.rawValue)), ("dModel", JSONValue(cfg.dModel)),
                    ("layers", JSONValue(cfg.layers)),
                    ("heads", JSONValue(cfg.heads)), ("context", JSONValue(cfg.context)),
                    ("vocab", JSONValue(cfg.vocab)),
                    ("schedule", .string(cfg.schedule.description)), ("D", JSONValue(cfg.applications)),
                    ("D_VLD", JSONValue(cfg.vldDepth)), ("P_total", JSONValue(cfg.totalParams)),
                    ("P_nonEmbedding", JSONValue(cfg.nonEmbeddingParams)),
                ])
            ),
            (
                "flops",
                .object([
                    ("forwardPerToken", JSONValue(cfg.forwardFlopsPerToken(attending: T))),
                    ("trainPerStep", JSONValue(trainFlops)), ("train", JSONValue(trainFlops * Double(state.step))),
                ])
            ),
            ("training", .object(training)),
            ("tasks", .object(e.tasks)),
            ("metrics", .object(e.scalars.map { ($0.0, JSONValue($0.1)) })),
            (
                "timing",
                .object([
                    ("wallSeconds", JSONValue((wallSeconds * 10).rounded() / 10)),
                    ("tokensPerSecond", JSONValue((Double(state.step * B * T) / max(wallSeconds, 1e-9)).rounded())),
                ])
            ),
        ])
    }

    // MARK: files

    static func tokenizerJSON(_ t: WordTokenizer) throws -> Data { t.jsonData }

    /// Keeps the lines of metrics.jsonl up to `step` (those after it are repeated by the resumed run).
    static func truncateMetrics(_ file: URL, after step: Int) throws {
        guard let text = try? String(contentsOf: file, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            guard let v = try? JSONValue.parse(String(line)), case let .number(s)? = v["step"] else { return false }
            return s <= Double(step)
        }
        try writeAtomically(kept.map { $0 + "\n" }.joined(), to: file)
    }

    static func appendMetrics(_ file: URL, _ value: JSONValue) throws {
        let line = Data((value.serialized(pretty: false) + "\n").utf8)
        if let h = try? FileHandle(forWritingTo: file) {
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: line)
            try h.synchronize()
        } else {
            try line.write(to: file)
        }
    }

}

/// An append-only log file.
final class LogFile {
    let handle: FileHandle
    init(_ url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
    }
    func write(_ line: String) { try? handle.write(contentsOf: Data((line + "\n").utf8)) }
    deinit { try? handle.close() }
}

/// 1m05s, 2h03m, 12.3s.
public func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    if s < 60 { return String(format: "%.1fs", s) }
    let m = Int(s) / 60, r = Int(s) % 60
    return m < 60 ? String(format: "%dm%02ds", m, r) : String(format: "%dh%02dm", m / 60, m % 60)
}
