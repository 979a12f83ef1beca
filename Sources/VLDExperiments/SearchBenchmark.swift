// SearchBenchmark.swift: `vld-bench --search`, the speed of test-time search (issue 13, "Speed"):
// best-of-64 and beam search (N = 16, M = 4) from one 16-token prompt on a benchmark model with
// random weights (arranged to end a step about every 8 tokens), at temperature 1, steps of at most 16 tokens and 4 rounds (so at most 64 new
// tokens per candidate, the shape of the sampling benchmark and of bench/torch_gpt_bench.py
// --sample-batches 64), and a KV-cached PRM (the same model with a value head) scoring 64
// candidates of 64 tokens. Each is run once to warm up, then repeated for at least `minSeconds`
// (3 times at least); rates are the work of all timed runs over their time (candidates differ in
// length from run to run).
//
//   search_bon64_tokens_per_s, search_bon64_candidates_per_s    generated tokens (and candidates) / s
//   search_bon16_tokens_per_s                                   best-of-16: beam search's rows
//   search_beam16x4_tokens_per_s, ..._candidates_per_s          all branches, pruned ones included
//   search_beam_over_bon16_per_token, ..._bon64_per_token       beam's seconds per token / bon's
//   prm_scored_tokens_per_s                                     candidate tokens the PRM ran / s

import Foundation
import VLDModel
import VLDTensor

public enum SearchBenchmark {
    /// Runs `body` once to warm up, then at least 3 times and for `minSeconds`; returns the
    /// seconds and the amount of work (`body`'s result, e.g. tokens) summed over the timed runs,
    /// so that a rate is total work over total time even when each run draws a different length.
    static func measure(_ minSeconds: Double, _ body: () throws -> Double) rethrows -> (seconds: Double, work: Double) {
        _ = try body()
        var seconds = 0.0, work = 0.0, runs = 0
        let start = monotonicSeconds()
        while runs < 3 || (monotonicSeconds() - start < minSeconds && runs < 1000) {
            let t0 = monotonicSeconds()
            work += try body()
            seconds += monotonicSeconds() - t0
            runs += 1
        }
        return (seconds, work)
    }

    public static func run(config: String, arch: Arch, threads: Int, minSeconds: Double) throws -> [(String, JSONValue)]
    {
        guard let (cfg, _, _) = BenchConfig.named(config, arch: arch) else {
            throw TrialError("unknown config \(config)")
        }
        let pool = ThreadPool(threads: threads)
        var rng = SeededRNG(seed: 1234)
        guard arch == .gpt2 else {
            throw TrialError("--search models steps with gpt2's final LayerNorm bias; use --arch gpt2")
        }
        let model = try Transformer(config: cfg, pool: pool, rng: &rng)
        // A random model writes steps: the final norm's dimension 0 is held at 1 (weight 0, bias
        // 1) and only the separator reads it (log(V/8) in its head row), so about one token in
        // 8 ends a step whatever the rest of the state.
        let layout = model.layout
        model.params[layout.normFW][0] = 0
        if let b = layout.normFB { model.params[b][0] = 1 }
        for v in 0..<cfg.vocab { model.params[layout.head][v * cfg.dModel] = 0 }
        model.params[layout.head][3 * cfg.dModel] = Float(log(Double(cfg.vocab) / 8))
        let prompt = (0..<16).map { _ in Int32(rng.nextInt(cfg.vocab)) }
        var settings = SearchSettings(separator: 3, eos: 4)
        settings.temperature = 1
        settings.maxStepTokens = 16
        settings.maxRounds = 4
        // Generation alone: a scorer that computes nothing.
        let free = StepSearch(
            policy: model, settings: settings, scoring: WholeCandidateScoring { _, _, ends in ends.map { _ in 0 } })
        var srng = SeededRNG(seed: 1241)
        func search(_ method: SearchMethod) throws -> (tokens: Double, candidates: Double, seconds: Double) {
            var candidates = 0.0
            let (seconds, tokens) = try measure(minSeconds) {
                let o = try free.run(method, prompt: prompt, rng: &srng)
                candidates += Double(o.outputs.count)
                return Double(o.generatedTokens)
            }
            return (tokens, candidates, seconds)
        }
        let bon64 = try search(.bestOfN(n: 64))
        let bon16 = try search(.bestOfN(n: 16))
        let beam = try search(.beam(n: 16, m: 4))
        // The PRM: 64 rows of 64 candidate tokens after the prompt, scored at every 16th token.
        var hrng = SeededRNG(seed: 7)
        let scorer = RewardScorer(
            model: model, head: RewardHead(dModel: cfg.dModel, rng: &hrng), rows: 64, capacity: cfg.context)
        let candidates = (0..<64).map { _ in (0..<64).map { _ in Int32(hrng.nextInt(cfg.vocab)) } }
        let prm = try measure(minSeconds) {
            try scorer.start(prompt: prompt)
            for r in 1..<64 { scorer.fork(from: 0, to: r) }
            _ = try scorer.score(candidates.enumerated().map { ($0, $1, [15, 31, 47, 63]) })
            return Double(64 * 64)
        }
        func perToken(_ x: (tokens: Double, candidates: Double, seconds: Double)) -> Double { x.seconds / x.tokens }
        return [
            ("config", .string(config)), ("arch", .string(arch.rawValue)), ("threads", JSONValue(threads)),
            ("params", JSONValue(model.parameterCount)),
            ("search_bon64_tokens_per_s", JSONValue(bon64.tokens / bon64.seconds)),
            ("search_bon64_candidates_per_s", JSONValue(bon64.candidates / bon64.seconds)),
            ("search_bon16_tokens_per_s", JSONValue(bon16.tokens / bon16.seconds)),
            ("search_beam16x4_tokens_per_s", JSONValue(beam.tokens / beam.seconds)),
            ("search_beam16x4_candidates_per_s", JSONValue(beam.candidates / beam.seconds)),
            ("search_beam_over_bon16_per_token", JSONValue(perToken(beam) / perToken(bon16))),
            ("search_beam_over_bon64_per_token", JSONValue(perToken(beam) / perToken(bon64))),
            ("prm_scored_tokens_per_s", JSONValue(prm.work / prm.seconds)),
        ]
    }
}
