// DataBenchmark.swift: `vld-bench --data FILE`, the speed of a manifest's data pipeline next to the
// training speed of the model it feeds (issue 11: generation must never bound training).
//
// For each trial with a distinct (tasks, batch, context, model), on this machine:
//  - per task: documents/s and tokens/s of generating training documents and encoding them
//    (`TaskSpec` → `SyntheticTask.trainingDocument` → `WordTokenizer.encodeStrict`, the path the
//    trainer takes), from document 0 on, single-threaded;
//  - the packer: rows/s of `TaskMixture.batch` at the trial's B and T, reported as B·T positions
//    per second (padding included), the unit in which training speed is counted;
//  - training: the median step time of the trial's model on the trial's own batches (3 warm-up
//    steps, then at least 10 steps and `minSeconds`), as B·T positions per second;
//  - ratio = packer positions/s ÷ training positions/s. Data comes from the training thread
//    between steps, so 1/ratio is the fraction of a step spent waiting for data.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

public enum DataBenchmark {
    /// One JSON object per distinct trial. `threads` is the training thread count.
    public static func run(
        _ experiment: Experiment, threads: Int, minSeconds: Double,
        log: (String) -> Void = { _ in }
    ) throws -> [JSONValue] {
        var seen = Set<String>()
        var rows: [JSONValue] = []
        for trial in experiment.trials {
            guard let m = trial.manifest.body as? TrainBody else { continue }  // only training has a data pipeline
            // Seeds change the documents, not their cost: one row per (tasks, batch, model).
            let key = "\(m.tasks) \(m.train.batch) \(m.model)"
            guard seen.insert(key).inserted else { continue }
            log("trial \(trial.index + 1)/\(experiment.trials.count) [\(trial.condition)]")
            rows.append(try measure(trial, threads: threads, minSeconds: minSeconds))
        }
        return rows
    }

    static func clock() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

    static func measure(_ trial: Trial, threads: Int, minSeconds: Double) throws -> JSONValue {
        guard let m = trial.manifest.body as? TrainBody else { throw TrialError("not a train trial") }
        let mixture = try m.makeMixture()
        let B = m.train.batch, T = m.model.context
        let seconds = max(minSeconds, 0.2)

        // Generators, one task at a time.
        var generators: [JSONValue] = []
        for task in mixture.tasks {
            var docs = 0, tokens = 0
            let start = clock()
            while docs < 20 || clock() - start < seconds {
                let doc = try task.trainingDocument(seed: trial.manifest.seed, index: docs)
                tokens += try mixture.tokenizer.encodeStrict(doc.words.joined(separator: " ")).count
                docs += 1
                if docs >= 50_000_000 { break }
            }
            let elapsed = clock() - start
            generators.append(
                .object([
                    ("task", .string(task.family)), ("docs_per_s", JSONValue(Double(docs) / elapsed)),
                    ("tokens_per_s", JSONValue(Double(tokens) / elapsed)),
                    ("mean_doc_tokens", JSONValue(Double(tokens) / Double(docs))),
                ]))
        }

        // The packer, as the trainer calls it.
        var batches: [PackedBatch] = []
        var cursor = 0, packed = 0, scored = 0
        let packStart = clock()
        while packed < 5 || clock() - packStart < seconds {
            let b = try mixture.batch(seed: trial.manifest.seed, cursor: cursor, B: B, T: T)
            cursor = b.nextCursor
            scored += b.scoredTokens
            if batches.count < 4 { batches.append(b) }
            packed += 1
            if packed >= 10_000_000 { break }
        }
        let packElapsed = clock() - packStart
        let packPositions = Double(packed * B * T) / packElapsed

        // Training on those batches.
        let cfg = m.modelConfig(vocab: mixture.tokenizer.vocabSize)
        try cfg.validate()
        let pool = ThreadPool(threads: threads)
        var rng = SeededRNG(seed: trial.manifest.seed)
        let model = try Transformer(config: cfg, pool: pool, rng: &rng)
        let opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig())
        func step(_ i: Int) throws {
            let b = batches[i % batches.count]
            _ = try model.trainStep(
                inputs: b.inputs, targets: b.targets, B: B, T: T, lr: Float(m.train.lr) * 0.1,
                clip: Float(m.train.clip), optimizer: opt, segments: b.segments)
        }
        for i in 0..<3 { try step(i) }
        var times: [Double] = []
        let trainStart = clock()
        while (times.count < 10 || clock() - trainStart < minSeconds) && times.count < 1000 {
            let t0 = clock()
            try step(times.count)
            times.append(clock() - t0)
        }
        times.sort()
        let median = times[times.count / 2]
        let trainPositions = Double(B * T) / median

        return .object([
            ("trial", JSONValue(trial.index + 1)), ("condition", .string(trial.condition)),
            ("batch", JSONValue(B)), ("context", JSONValue(T)), ("threads", JSONValue(threads)),
            ("generators", .array(generators)),
            ("pack_positions_per_s", JSONValue(packPositions)),
            ("pack_scored_fraction", JSONValue(Double(scored) / Double(packed * B * T))),
            ("train_positions_per_s", JSONValue(trainPositions)),
            ("data_over_train", JSONValue(packPositions / trainPositions)),
            ("blas_core", .string(BLAS.coreName)),
        ])
    }
}
