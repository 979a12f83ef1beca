// HeadVariantTests.swift: the width levers of issue 14, part 3 (specs/phase.md 5(c)): a rank-r
// head, a wider trained head and an output multiplier (their gradients are checked against finite
// differences in GradientTests). Here: what they cost in parameters, that a checkpoint of one
// round-trips in vld and is marked vld-only for Hugging Face, and that KV-cached decoding gives
// the logits of the full forward pass.

import Foundation
import Testing
import VLDJSON
import VLDModel
import VLDTensor

private func config(_ head: OutputHead, multiplier: Float = 1) throws -> ModelConfig {
    var c = ModelConfig(
        arch: .llama, dModel: 16, layers: 2, heads: 2, context: 12, vocab: 40, tiedEmbeddings: false)
    c.head = head
    c.outputMultiplier = multiplier
    try c.validate()
    return c
}

@Test func headVariantsCountTheirParameters() throws {
    let full = try config(.full), rank = try config(.rank(4)), wide = try config(.wide(2))
    #expect(full.headMatrixParams == 40 * 16)
    #expect(rank.headMatrixParams == 40 * 4 + 4 * 16)
    #expect(wide.headMatrixParams == 40 * 32 + 32 * 16)
    #expect(rank.totalParams - full.totalParams == rank.headMatrixParams - full.headMatrixParams)
    for c in [full, rank, wide] {
        let layout = ParameterLayout(c)
        #expect(layout.count == c.totalParams, "\(c.head)")
    }
    #expect(full.isHuggingFaceCompatible && !rank.isHuggingFaceCompatible)
    #expect(!(try config(.full, multiplier: 0.5)).isHuggingFaceCompatible)
    // A tied embedding cannot be a factorised head's vocabulary matrix.
    var tied = rank
    tied.tiedEmbeddings = true
    #expect(throws: ConfigError.self) { try tied.validate() }
}

@Test(arguments: [OutputHead.rank(4), .wide(2), .full])
func aHeadVariantCheckpointRoundTripsAndIsVldOnly(_ head: OutputHead) throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 3)
    let model = try Transformer(config: try config(head, multiplier: head == .full ? 0.5 : 1), pool: pool, rng: &rng)
    let dir = temporaryDirectory().appendingPathComponent("ckpt")
    try Checkpoint.save(model, to: dir, optimizer: nil, state: nil)
    let json = try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("config.json")))
    // Transformers refuses a model type it does not know, instead of loading wrong logits.
    #expect(json["model_type"] == .string("vld_llama"))
    #expect(json["architectures"] == .array([.string("VLDLlamaForCausalLM")]))
    #expect(json["vld_head"] == .string(head.description))
    let loaded = try Checkpoint.loadModel(from: dir, pool: pool)
    #expect(loaded.config == model.config)
    #expect(loaded.params.array() == model.params.array())
}

@Test(arguments: [OutputHead.rank(4), .wide(2)])
func cachedDecodingWithAHeadVariantEqualsTheForwardPass(_ head: OutputHead) throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 9)
    let model = try Transformer(config: try config(head, multiplier: 0.75), pool: pool, rng: &rng)
    let tokens: [Int32] = [3, 17, 5, 29, 8, 11]
    try model.forward(inputs: tokens, B: 1, T: tokens.count)
    let full = (0..<tokens.count).map { model.logits(row: $0) }
    let cache = KVCache(model: model, batch: 1, capacity: 12)
    let first = try model.prefill(prompts: [Array(tokens.prefix(3))], cache: cache)[0]
    #expect(zip(first, full[2]).map { abs($0 - $1) }.max()! < 1e-4)
    for t in 3..<tokens.count {
        let out = Array(try model.decode(tokens: [tokens[t]], cache: cache))
        #expect(zip(out, full[t]).map { abs($0 - $1) }.max()! < 1e-4, "\(head) position \(t)")
    }
}
