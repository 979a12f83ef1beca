// SearchBenchmark.swift: `vld-bench --search`, the speed of test-time search (issue 13, "Speed"):
// best-of-64 and beam search (N = 16, M = 4) from one 16-token prompt on a benchmark model with
// random weights (arranged to end a step about every 8 tokens), at temperature 1, steps of at most 16 tokens and 4 rounds (so at most 64 new
// tokens per candidate, the shape of the sampling benchmark and of bench/torch_gpt_bench.py
// --sample-batches 64), and a KV-cached PRM (the same model with a value head) scoring 64
// candidates of 64 tokens. Each is run once to warm up, then repeated for at least `minSeconds`
// (3 times at least); the median time is reported.
//
//   search_bon64_tokens_per_s, search_bon64_candidates_per_s    generated tokens (and candidates) / s
//   search_beam16x4_tokens_per_s                                all branches, pruned ones included
//   search_beam_over_bon_per_token                              beam's seconds per token / bon's
//   prm_scored_tokens_per_s                                     candidate tokens the PRM ran / s

import Foundation
import VLDModel
import VLDTensor

public enum SearchBenchmark {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Median seconds of `body` (one warm-up, then at least 3 runs and `minSeconds`), and what
    /// the last run returned.
    static func time<T>(_ minSeconds: Double, _ body: () throws -> T) rethrows -> (Double, T) {
        var last = try body()
        var times: [Double] = []
        let start = now()
        while times.count < 3 || (now() - start < minSeconds && times.count < 1000) {
            let t0 = now()
            last = try body()
            times.append(now() - t0)
        }
        times.sort()
        return (times[times.count / 2], last)
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
        let (bon, bonOut) = try time(minSeconds) { try free.run(.bestOfN(n: 64), prompt: prompt, rng: &srng) }
        let (beam, beamOut) = try time(minSeconds) { try free.run(.beam(n: 16, m: 4), prompt: prompt, rng: &srng) }
        let bonTokens = Double(bonOut.generatedTokens), beamTokens = Double(beamOut.generatedTokens)
        // The PRM: 64 rows of 64 candidate tokens after the prompt, scored at every 16th token.
        var hrng = SeededRNG(seed: 7)
        let scorer = RewardScorer(
            model: model, head: RewardHead(dModel: cfg.dModel, rng: &hrng), rows: 64, capacity: cfg.context)
        let candidates = (0..<64).map { _ in (0..<64).map { _ in Int32(hrng.nextInt(cfg.vocab)) } }
        let (prm, _) = try time(minSeconds) {
            try scorer.start(prompt: prompt)
            for r in 1..<64 { scorer.fork(from: 0, to: r) }
            return try scorer.score(candidates.enumerated().map { ($0, $1, [15, 31, 47, 63]) })
        }
        return [
            ("config", .string(config)), ("arch", .string(arch.rawValue)), ("threads", JSONValue(threads)),
            ("params", JSONValue(model.parameterCount)),
            ("search_bon64_tokens_per_s", JSONValue(bonTokens / bon)),
            ("search_bon64_candidates_per_s", JSONValue(64 / bon)),
            ("search_bon64_tokens", JSONValue(bonTokens)),
            ("search_beam16x4_tokens_per_s", JSONValue(beamTokens / beam)),
            ("search_beam16x4_tokens", JSONValue(beamTokens)),
            ("search_beam_over_bon_per_token", JSONValue((beam / beamTokens) / (bon / bonTokens))),
            ("prm_scored_tokens_per_s", JSONValue(Double(64 * 64) / prm)),
        ]
    }
}
