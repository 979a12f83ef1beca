// Fixtures.swift: small models and data shared by the model tests.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

func tinyConfig(_ arch: Arch, schedule: LayerSchedule = .base, context: Int = 16, vocab: Int = 16) -> ModelConfig {
    ModelConfig(
        arch: arch, dModel: 32, layers: 2, heads: 4, kvHeads: arch == .llama ? 2 : nil, context: context, vocab: vocab,
        schedule: schedule)
}

/// Trains a model on sequence reversal for `steps` steps and returns it with its optimizer.
func trainedReverser(_ arch: Arch, schedule: LayerSchedule, steps: Int, pool: ThreadPool) throws -> Transformer {
    let task = ReverseTask(vocab: 16, length: 6)
    var rng = SeededRNG(seed: 7)
    let model = try Transformer(config: tinyConfig(arch, schedule: schedule), pool: pool, rng: &rng)
    let opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig(weightDecay: 0))
    let lr = LRSchedule(peak: 3e-3, floor: 3e-4, warmup: 20, total: steps)
    for step in 0..<steps {
        let b = task.batch(seed: 1, cursor: step * 16, batch: 16)
        try model.trainStep(
            inputs: b.inputs, targets: b.targets, B: 16, T: task.sequenceLength, lr: lr.lr(at: step), clip: 1,
            optimizer: opt)
    }
    return model
}

func temporaryDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("vld-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
