// PolicySamples.swift: a policy's sampled chain `cot` solutions, what the `prm` kind labels and
// learns from and the `tts` kind estimates difficulty with (specs/tts.md 8.6: "policy samples 16
// solutions per training problem at T≈0.8"), with the FLOPs the sampling cost.
//
// Problems are drawn by index, each with its chain length k cycling through minK...maxK so that
// every difficulty is equally represented; the split and an index offset keep the sets apart:
//
//   prm training problems     split train, indices 0 ..< problems
//   prm held-out problems     split train, indices 1,000,000 ...
//   tts test problems         split test,  indices 0 ..< problems (the evaluation's own problems)
//   tts validation problems   split test,  indices 2,000,000 ...
//
// The train split of ChainTask.problem is a different stream from the documents the policy trained
// on (ChainTask.trainingProblem), so none of these is a training document except by chance.

import VLDModel
import VLDTasks
import VLDTensor

/// One sampled solution: the words after the prompt (`<eos>` included when the policy wrote it).
struct SampledSolution: Equatable, Sendable {
    var problem: Int
    var words: [String]
}

/// Which problems a set is made of.
struct ProblemSet: Equatable, Sendable {
    var split: ChainSplit
    var offset: Int
    var count: Int

    static func prmTraining(_ n: Int) -> ProblemSet { ProblemSet(split: .train, offset: 0, count: n) }
    static func prmHeldOut(_ n: Int) -> ProblemSet { ProblemSet(split: .train, offset: 1_000_000, count: n) }
    static func ttsTest(_ n: Int) -> ProblemSet { ProblemSet(split: .test, offset: 0, count: n) }
    static func ttsValidation(_ n: Int) -> ProblemSet { ProblemSet(split: .test, offset: 2_000_000, count: n) }

    /// The i-th problem (0-based within the set).
    func problem(_ i: Int, task: ChainTask, seed: UInt64) throws -> ChainProblem {
        let c = task.config
        let k = c.minK + i % (c.maxK - c.minK + 1)
        return try task.problem(seed: seed, index: offset + i, k: k, split: split)
    }

    func problems(task: ChainTask, seed: UInt64) throws -> [ChainProblem] {
        try (0..<count).map { try problem($0, task: task, seed: seed) }
    }
}

/// Samples continuations from a policy in batches and counts what it cost.
struct PolicySampler {
    let policy: Transformer
    let tokenizer: WordTokenizer
    let temperature: Float
    /// Sequences decoded together.
    var chunk = 64
    /// Tokens generated, and the FLOPs of generating them (prefill of each prompt included).
    var generated = 0
    var flops = 0.0

    init(policy: Transformer, tokenizer: WordTokenizer, temperature: Double) {
        self.policy = policy
        self.tokenizer = tokenizer
        self.temperature = Float(temperature)
    }

    func encode(_ words: [String]) -> [Int32] { tokenizer.encode(words.joined(separator: " ")) }
    func words(_ tokens: [Int32]) -> [String] {
        tokenizer.decode(tokens).split(separator: " ").map(String.init)
    }

    /// One continuation of each prompt (words), at most `maxNew` tokens or the context; a
    /// continuation that stopped at `<eos>` ends with it.
    mutating func continue_(_ prompts: [[String]], maxNew: [Int], rng: inout SeededRNG) throws -> [[String]] {
        var out: [[String]] = []
        var start = 0
        let context = policy.config.context
        while start < prompts.count {
            let end = min(prompts.count, start + chunk)
            let encoded = prompts[start..<end].map(encode)
            let limit = maxNew[start..<end].max()!
            let options = SamplingOptions(
                maxNewTokens: limit, temperature: temperature, stopTokens: [WordTokenizer.eos])
            let drawn = try policy.generate(prompts: encoded, options: options, rng: &rng)
            let capacity = min(context, encoded.map(\.count).max()! + limit)
            for (j, tokens) in drawn.enumerated() {
                let cap = maxNew[start + j]
                var t = Array(tokens.prefix(cap))
                // generate leaves the stop token out: a sequence shorter than both limits stopped at it.
                if tokens.count < limit && encoded[j].count + tokens.count < capacity && t.count == tokens.count {
                    t.append(WordTokenizer.eos)
                }
                generated += t.count
                flops += policy.config.generationFlops(prompt: encoded[j].count, generated: t.count)
                out.append(words(t))
            }
            start = end
        }
        return out
    }

    /// `samples` solutions of each problem.
    mutating func solutions(_ problems: [ChainProblem], samples: Int, task: ChainTask, rng: inout SeededRNG) throws
        -> [SampledSolution]
    {
        var prompts: [[String]] = [], maxNew: [Int] = [], owner: [Int] = []
        for (i, p) in problems.enumerated() {
            let prompt = p.prompt(.cot)
            for _ in 0..<samples {
                prompts.append(prompt)
                maxNew.append(max(1, task.maxDocumentLength(k: p.k) - prompt.count + 2))
                owner.append(i)
            }
        }
        let drawn = try continue_(prompts, maxNew: maxNew, rng: &rng)
        return zip(owner, drawn).map { SampledSolution(problem: $0, words: $1) }
    }
}
