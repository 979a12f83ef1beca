// SamplingTests.swift: KV-cached generation against recomputation without a cache.

import Testing
import VLDModel
import VLDTasks
import VLDTensor

/// Greedy decoding by running the full forward pass over the whole prefix for every token.
func greedyWithoutCache(_ model: Transformer, prompt: [Int32], newTokens: Int) throws -> [Int32] {
    var seq = prompt
    for _ in 0..<newTokens {
        try model.forward(inputs: seq, B: 1, T: seq.count)
        let row = model.logits(row: seq.count - 1)
        seq.append(Int32(row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!))
    }
    return Array(seq.dropFirst(prompt.count))
}

@Test(arguments: [(Arch.gpt2, "cyc(1)"), (.llama, "inv(1)"), (.llama, "[0,1,1,0,1]"), (.gpt2, "base")])
func cachedGreedyEqualsRecomputation(_ arch: Arch, _ schedule: String) throws {
    let pool = ThreadPool(threads: 2)
    let model = try trainedReverser(arch, schedule: try LayerSchedule(parsing: schedule), steps: 60, pool: pool)
    // Prompts of different lengths in one batch.
    let prompts: [[Int32]] = [[5, 6, 7, 8, 9, 10, 1], [3, 4], [15, 2, 2, 9], [11]]
    var rng = SeededRNG(seed: 0)
    let cached = try model.generate(prompts: prompts, options: .greedy(maxNewTokens: 8), rng: &rng)
    for (p, out) in zip(prompts, cached) {
        #expect(try out == greedyWithoutCache(model, prompt: p, newTokens: 8), "prompt \(p)")
    }
    // Same-length prompts take the batched prefill path.
    let same: [[Int32]] = [[5, 6, 7, 1], [9, 9, 3, 1], [2, 3, 4, 1]]
    let batched = try model.generate(prompts: same, options: .greedy(maxNewTokens: 6), rng: &rng)
    for (p, out) in zip(same, batched) { #expect(try out == greedyWithoutCache(model, prompt: p, newTokens: 6)) }
}

@Test func stopTokensEndASequenceAndContextLimitsGeneration() throws {
    let pool = ThreadPool(threads: 1)
    let model = try trainedReverser(.gpt2, schedule: .base, steps: 150, pool: pool)
    var rng = SeededRNG(seed: 0)
    // Stopping at the third greedy token leaves what came before its first occurrence.
    let prompt: [Int32] = [5, 6, 7, 8, 9, 10, 1]
    let full = try greedyWithoutCache(model, prompt: prompt, newTokens: 6)
    let stop = full[2]
    let out = try model.generate(prompts: [prompt], options: .greedy(maxNewTokens: 6, stopTokens: [stop]), rng: &rng)
    #expect(out == [Array(full.prefix { $0 != stop })])
    // Context is 16: a 14-token prompt fills positions 14 and 15 with two new tokens and gets a
    // third from the last position; nothing is ever computed beyond the context.
    let long = try model.generate(
        prompts: [Array(repeating: 4, count: 14), [4, 1]], options: .greedy(maxNewTokens: 10), rng: &rng)
    #expect(long[0].count == 3 && long[1].count == 10)
}

@Test func samplingIsSeededAndRespectsTopK() throws {
    let pool = ThreadPool(threads: 1)
    var init0 = SeededRNG(seed: 1)
    let model = try Transformer(config: tinyConfig(.llama), pool: pool, rng: &init0)
    let opts = SamplingOptions(maxNewTokens: 10, temperature: 1.0, topK: 3)
    var a = SeededRNG(seed: 9), b = SeededRNG(seed: 9)
    let x = try model.generate(prompts: [[1, 2], [3, 4]], options: opts, rng: &a)
    let y = try model.generate(prompts: [[1, 2], [3, 4]], options: opts, rng: &b)
    #expect(x == y)
    // top-k 1 is greedy.
    var c = SeededRNG(seed: 4)
    let k1 = try model.generate(
        prompts: [[1, 2]], options: SamplingOptions(maxNewTokens: 6, temperature: 0.7, topK: 1), rng: &c)
    #expect(try k1[0] == greedyWithoutCache(model, prompt: [1, 2], newTokens: 6))
    // top-p with a tiny p keeps only the most likely token: greedy again.
    let p0 = try model.generate(
        prompts: [[1, 2]], options: SamplingOptions(maxNewTokens: 6, temperature: 1, topP: 1e-6), rng: &c)
    #expect(p0[0] == k1[0])
}

/// A token id from outside the engine (a mismatched checkpoint, `vldctl checkpoint logits
/// --tokens`) is an error every entry point reports, never a crash or a read past the embedding
/// table; the model is still usable afterwards.
@Test(arguments: [Int32(16), -1, Int32.max])
func tokensOutsideTheVocabularyAreErrors(_ bad: Int32) throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 3)
    let model = try Transformer(config: tinyConfig(.gpt2), pool: pool, rng: &rng)
    let expected = TokenError(token: bad, vocab: 16)
    #expect(throws: expected) { try model.forward(inputs: [1, bad, 2], B: 1, T: 3) }
    #expect(throws: expected) { try model.evaluationLoss(inputs: [1, bad], targets: [2, 3], B: 1, T: 2) }
    let opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig())
    #expect(throws: expected) {
        try model.trainStep(inputs: [bad, 1], targets: [1, 2], B: 1, T: 2, lr: 1e-3, clip: 1, optimizer: opt)
    }
    #expect(opt.step == 0)
    #expect(throws: expected) {
        try model.prefill(prompts: [[1, 2], [bad, 3]], cache: KVCache(model: model, batch: 2, capacity: 8))
    }
    let cache = KVCache(model: model, batch: 1, capacity: 8)
    _ = try model.prefill(prompts: [[1, 2]], cache: cache)
    #expect(throws: expected) { try model.decode(tokens: [bad], cache: cache) }
    #expect(throws: expected) { try model.generate(prompts: [[bad]], options: .greedy(maxNewTokens: 2), rng: &rng) }
    #expect(try model.generate(prompts: [[1, 2]], options: .greedy(maxNewTokens: 2), rng: &rng)[0].count == 2)
}

/// A forked cache row continues exactly as its parent: after `copyRow`, decoding the same tokens
/// in both rows gives the same logits, which are those of recomputing the whole prefix (search
/// expands children from their parent's cached prefix this way).
@Test(arguments: [(Arch.gpt2, "cyc(1)"), (.llama, "inv(1)")])
func aForkedCacheRowContinuesAsItsParent(_ arch: Arch, _ schedule: String) throws {
    let pool = ThreadPool(threads: 2)
    let model = try trainedReverser(arch, schedule: try LayerSchedule(parsing: schedule), steps: 20, pool: pool)
    let V = model.config.vocab
    let cache = KVCache(model: model, batch: 3, capacity: 12)
    // Row 0 holds the shared prefix; rows 1 and 2 something else, to be overwritten by forks.
    _ = try model.prefill(prompts: [[5, 6, 7, 1], [9, 9, 3, 2], [2, 2, 2, 2]], cache: cache)
    cache.copyRow(from: 0, to: 1)
    cache.copyRow(from: 0, to: 2)
    #expect(cache.lengths == [4, 4, 4])
    // The three rows continue with different tokens, then row 2 is forked again from row 1.
    let step = try model.decode(tokens: [8, 8, 3], cache: cache)
    let r0 = Array(step[0..<V]), r1 = Array(step[V..<(2 * V)]), r2 = Array(step[(2 * V)..<(3 * V)])
    #expect(r0 == r1)
    #expect(r0 != r2)
    try model.forward(inputs: [5, 6, 7, 1, 8], B: 1, T: 5)
    let recomputed = model.logits(row: 4)
    #expect(zip(r0, recomputed).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
    cache.copyRow(from: 1, to: 2)
    let next = try model.decode(tokens: [4, 4, 4], cache: cache)
    #expect(Array(next[0..<V]) == Array(next[(2 * V)..<(3 * V)]))
    try model.forward(inputs: [5, 6, 7, 1, 8, 4], B: 1, T: 6)
    let again = model.logits(row: 5)
    #expect(zip(Array(next[(2 * V)..<(3 * V)]), again).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
}

/// Decoding only some rows (`advancing`) computes just those, each against its own cache row:
/// their logits and hidden states are those of decoding every row, their lengths advance, and the
/// other rows' lengths stay.
@Test(arguments: [(Arch.gpt2, "cyc(1)"), (.llama, "base")])
func decodingSomeRowsGivesWhatDecodingAllGivesForThem(_ arch: Arch, _ schedule: String) throws {
    let pool = ThreadPool(threads: 2)
    let model = try trainedReverser(arch, schedule: try LayerSchedule(parsing: schedule), steps: 20, pool: pool)
    let V = model.config.vocab, C = model.config.dModel
    let prompts: [[Int32]] = [[5, 6, 7, 1], [9, 3, 2], [2, 2, 8, 2, 6], [4, 5]]
    let all = KVCache(model: model, batch: 4, capacity: 12)
    let some = KVCache(model: model, batch: 4, capacity: 12)
    _ = try model.prefill(prompts: prompts, cache: all)
    _ = try model.prefill(prompts: prompts, cache: some)
    let tokens: [Int32] = [8, 7, 3, 9]
    let full = Array(try model.decode(tokens: tokens, cache: all))
    let fullHidden = (0..<(4 * C)).map { all.hidden[$0] }
    let part = Array(try model.decode(tokens: tokens, cache: some, advancing: [false, true, false, true]))
    for r in [1, 3] {
        #expect(zip(part[(r * V)..<((r + 1) * V)], full[(r * V)..<((r + 1) * V)]).allSatisfy { abs($0 - $1) <= 1e-5 })
        #expect((0..<C).allSatisfy { abs(some.hidden[r * C + $0] - fullHidden[r * C + $0]) <= 1e-5 })
    }
    #expect(some.lengths == [4, 4, 5, 3])
    // The rows left behind continue later exactly as if they had waited in a full decode.
    let later = Array(try model.decode(tokens: tokens, cache: some, advancing: [true, false, true, false]))
    for r in [0, 2] {
        #expect(zip(later[(r * V)..<((r + 1) * V)], full[(r * V)..<((r + 1) * V)]).allSatisfy { abs($0 - $1) <= 1e-5 })
    }
    #expect(some.lengths == [5, 4, 6, 3])
}
