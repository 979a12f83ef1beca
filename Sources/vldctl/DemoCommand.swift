// DemoCommand.swift: `vldctl demo`, a real end-to-end training run on sequence reversal.
//
// It trains a small model with the chosen architecture and layer schedule, evaluates held-out
// loss and greedy exact-match (KV-cached generation) as it goes, checkpoints, resumes from its
// checkpoint when run again with the same options, and prints one table row per evaluation.

import Foundation
import VLDExperiments
import VLDModel
import VLDTasks
import VLDTensor

enum DemoCommand {
    static let usage = """
        usage: vldctl demo [--arch gpt2|llama] [--schedule S] [--steps N] [--threads N] [--seed N] [--out DIR]

        Trains a small transformer (d=64, 2 physical blocks, 4 heads) to reverse strings of 12 of 30 symbols,
        printing step, train loss, held-out loss, greedy exact-match on 128 held-out strings, tokens/s
        and ETA. The final checkpoint is written to DIR/checkpoint (default ./var/demo); running the
        same command again resumes from it.

          --arch      gpt2 (default) or llama
          --schedule  layer schedule, e.g. base, cyc(1), inv(1), seq(1), [0,1,1,0] (default cyc(1))
          --steps     optimizer steps (default 600)
          --threads   worker threads (default: all cores)
          --seed      data and initialisation seed (default 1)
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.contains("-h") || args.contains("--help") { print(usage); return 0 }
        let p = try CLI.parse(
            args, options: ["--arch", "--schedule", "--steps", "--threads", "--seed", "--out"], flags: [])
        guard p.positional.isEmpty else { throw UsageError(message: "demo takes no positional arguments\n\(usage)") }
        guard let arch = Arch(rawValue: p.values["--arch"] ?? "gpt2") else {
            throw UsageError(message: "--arch is gpt2 or llama")
        }
        let schedule: LayerSchedule
        do { schedule = try LayerSchedule(parsing: p.values["--schedule"] ?? "cyc(1)") } catch let e as ScheduleError {
            throw UsageError(message: "--schedule: \(e.message)")
        }
        let steps = try CLI.int(p.values, "--steps", default: 600)
        let threads = try CLI.int(
            p.values, "--threads", default: ProcessInfo.processInfo.activeProcessorCount, max: CLI.maxThreads)
        let seed = UInt64(try CLI.int(p.values, "--seed", default: 1, min: 0))
        let out = URL(fileURLWithPath: p.values["--out"] ?? "var/demo")
        let ckpt = out.appendingPathComponent("checkpoint")

        let task = ReverseTask(vocab: 32, length: 12)
        let B = 32, T = task.sequenceLength
        let cfg = ModelConfig(
            arch: arch, dModel: 64, layers: 2, heads: 4, kvHeads: arch == .llama ? 2 : nil, context: T,
            vocab: task.vocab, schedule: schedule)
        do { try cfg.validate() } catch let e as ConfigError { throw UsageError(message: e.message) }
        let lr = LRSchedule(peak: 3e-3, floor: 3e-4, warmup: 30, total: steps)
        let pool = ThreadPool(threads: threads)

        var model: Transformer, opt: OptimizerState, state: TrainingState
        if FileManager.default.fileExists(atPath: ckpt.appendingPathComponent("state.json").path) {
            (model, opt, state) = try Checkpoint.loadForResume(from: ckpt, pool: pool)
            guard model.config == cfg else {
                throw UsageError(
                    message:
                        "\(ckpt.path) holds a different model (\(model.config.arch.rawValue), \(model.config.schedule)); use another --out"
                )
            }
            print("resuming from \(ckpt.path) at step \(state.step)")
        } else {
            var rng = SeededRNG(seed: seed)
            model = try Transformer(config: cfg, pool: pool, rng: &rng)
            opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig(weightDecay: 0.0))
            state = TrainingState(step: 0, rng: rng, dataCursor: 0, adamW: opt.config)
        }
        print(
            "vld \(VLD.version) demo: reverse \(task.length) symbols | \(arch.rawValue) d=\(cfg.dModel) L=\(cfg.layers) schedule \(schedule) "
                + "(D=\(cfg.applications), D_VLD=\(cfg.vldDepth)) | P_total=\(cfg.totalParams) P_non-emb=\(cfg.nonEmbeddingParams) | "
                + "\(threads) threads, BLAS \(BLAS.coreName)")
        print("  step   train loss   eval loss   exact match   tokens/s        ETA")

        let evalSeed = seed &+ 1_000_003
        func evaluate() throws -> (loss: Float, exact: Double) {
            let batch = task.batch(seed: evalSeed, cursor: 0, batch: B)
            let loss = try model.evaluationLoss(inputs: batch.inputs, targets: batch.targets, B: B, T: T)
            let strings = (0..<128).map { task.symbols(seed: evalSeed, index: $0) }
            var sampler = SeededRNG(seed: 0)
            let outputs = try model.generate(
                prompts: strings.map { $0 + [ReverseTask.sep] },
                options: .greedy(maxNewTokens: task.length), rng: &sampler)
            let exact = zip(strings, outputs).filter { Array($0.0.reversed()) == $0.1 }.count
            return (loss, Double(exact) / Double(strings.count))
        }
        let evalEvery = max(1, steps / 10)
        let start = Date()
        let firstStep = state.step
        var recentLoss: Float = .nan
        while state.step < steps {
            let batch = task.batch(seed: seed, cursor: state.dataCursor, batch: B)
            let stats = try model.trainStep(
                inputs: batch.inputs, targets: batch.targets, B: B, T: T, lr: lr.lr(at: state.step),
                clip: 1.0, optimizer: opt)
            state.step += 1
            state.dataCursor += B
            recentLoss = stats.loss
            if state.step % evalEvery == 0 || state.step == steps {
                let e = try evaluate()
                let elapsed = Date().timeIntervalSince(start)
                let done = state.step - firstStep
                let tps = Double(done * B * T) / elapsed
                let eta = elapsed / Double(done) * Double(steps - state.step)
                print(
                    String(
                        format: "%6d   %10.4g   %9.4g   %10.1f%%   %8.0f   %8@", state.step, recentLoss, e.loss,
                        100 * e.exact, tps,
                        formatDuration(eta) as NSString))
                fflush(stdout)
                try Checkpoint.save(model, to: ckpt, optimizer: opt, state: state)
            }
        }
        let e = try evaluate()
        print(
            String(format: "final: held-out loss %.3g, exact match %.1f%% of 128 unseen strings", e.loss, 100 * e.exact)
        )
        print("checkpoint: \(ckpt.path)  (inspect: vldctl checkpoint inspect \(ckpt.path))")
        return 0
    }
}
