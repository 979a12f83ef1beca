// RewardHead.swift: the value head of a process reward model (PRM), and how a checkpoint holds it.
//
// A PRM is a language model of vld's (any arch and schedule) plus a linear head d -> 1 and a
// sigmoid read on the final normalised hidden state at each step separator (specs/tts.md 8.6; the
// kernels are VLDTensor/ValueHead.swift). Its checkpoint is a normal checkpoint directory with one
// more file, `value_head.safetensors`, holding
//
//   v_head.summary.weight   [1, d_model]
//   v_head.summary.bias     [1]
//
// the names TRL's AutoModelForCausalLMWithValueHead gives its value head, so the head can be read
// by code that knows that class. A checkpoint without the file is a policy, not a PRM, and loading
// it as a PRM is refused with a message that says so.

import Foundation
import VLDTensor

public struct RewardHead: Equatable, Sendable {
    public var weight: [Float]
    public var bias: Float

    public static let fileName = "value_head.safetensors"
    public static let weightName = "v_head.summary.weight"
    public static let biasName = "v_head.summary.bias"

    public init(weight: [Float], bias: Float) {
        self.weight = weight
        self.bias = bias
    }

    /// A fresh head for a model of width `dModel`: small normal weights (std 0.02, GPT-2's), bias 0.
    public init(dModel: Int, rng: inout SeededRNG) {
        weight = (0..<dModel).map { _ in Float(rng.nextNormal() * 0.02) }
        bias = 0
    }

    /// The file's bytes.
    public func encoded() -> Data {
        Safetensors.encode(
            [
                NamedTensor(name: RewardHead.weightName, shape: [1, weight.count], values: weight),
                NamedTensor(name: RewardHead.biasName, shape: [1], values: [bias]),
            ], metadata: ["vld_version": VLD.version])
    }

    /// Reads the head of the checkpoint in `dir` for a model of width `dModel`.
    public static func load(from dir: URL, dModel: Int) throws -> RewardHead {
        let file = dir.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw CheckpointError(
                "\(dir.path) has no value head (\(fileName) with \(weightName) and \(biasName) is missing): "
                    + "it is a language model, not a process reward model; train one with a prm trial")
        }
        let (tensors, _) = try Safetensors.decode(try Data(contentsOf: file), file: file.path)
        guard let w = tensors[weightName], let b = tensors[biasName] else {
            throw CheckpointError("\(file.path): expected the tensors \(weightName) and \(biasName)")
        }
        guard w.values.count == dModel, b.values.count == 1 else {
            throw CheckpointError(
                "\(file.path): \(weightName) has \(w.values.count) values and \(biasName) \(b.values.count); "
                    + "the model's width is \(dModel)")
        }
        return RewardHead(weight: w.values, bias: b.values[0])
    }

    /// sigmoid(w . h + b) for each row of `hidden` (C floats per row) named in `rows`.
    public func scores(hidden: UnsafePointer<Float>, rows: [Int]) -> [Double] {
        weight.withUnsafeBufferPointer { w in
            valueHeadScores(hidden: hidden, C: weight.count, rows: rows, weight: w.baseAddress!, bias: bias).map {
                Double($0)
            }
        }
    }
}

extension Transformer {
    /// The PRM's scores of whole sequences: one forward pass over `sequences` (padded to the
    /// longest), the head read at each sequence's `positions` (indices into it). The reference
    /// that incremental, KV-cached scoring (`RewardScorer`) must match.
    public func rewardScores(_ sequences: [[Int32]], positions: [[Int]], head: RewardHead) throws -> [[Double]] {
        precondition(sequences.count == positions.count, "one list of positions per sequence")
        guard let T = sequences.map(\.count).max(), T > 0 else { return sequences.map { _ in [] } }
        let B = sequences.count
        var inputs = [Int32](repeating: 0, count: B * T)
        for (b, s) in sequences.enumerated() { for (t, x) in s.enumerated() { inputs[b * T + t] = x } }
        try forward(inputs: inputs, B: B, T: T)
        let rows = positions.enumerated().flatMap { b, ps in ps.map { b * T + $0 } }
        var flat = head.scores(hidden: hiddenBuffer, rows: rows)[...]
        return positions.map { ps in
            defer { flat = flat.dropFirst(ps.count) }
            return Array(flat.prefix(ps.count))
        }
    }
}

extension KVCache {
    /// The final normalised hidden states of the last `decode` (batch rows of d_model): what a
    /// value head reads.
    public var hidden: UnsafePointer<Float> { UnsafePointer(ln.base) }
}

/// Scores the candidates of a search with a PRM, incrementally: one KV cache row per search row,
/// forked when the search forks (a child inherits its parent's scored prefix), so each call feeds
/// only the tokens a candidate wrote since its row was last scored, all rows in one batch per
/// token (specs/tts.md 8.5: "an incremental KV-cached PRM scores only new tokens").
public final class RewardScorer {
    public let model: Transformer
    public let head: RewardHead
    let cache: KVCache
    /// Per row: tokens after the prompt already in the cache, and the scores of the step ends
    /// among them.
    var fed: [Int]
    var scored: [[Double]]
    /// Tokens the PRM has run (prompt prefills and candidate tokens) since it was made.
    public private(set) var tokens = 0

    /// A scorer with `rows` rows of up to `capacity` tokens (prompt included).
    public init(model: Transformer, head: RewardHead, rows: Int, capacity: Int) {
        precondition(head.weight.count == model.config.dModel, "the head must match the model's width")
        self.model = model
        self.head = head
        cache = KVCache(model: model, batch: rows, capacity: min(capacity, model.config.context))
        fed = Array(repeating: 0, count: rows)
        scored = Array(repeating: [], count: rows)
    }

    public var rows: Int { cache.batch }

    /// Runs `prompt` into row 0: the start of one search, whose other rows are forks of it.
    public func start(prompt: [Int32]) throws {
        _ = try model.prefill(prompt, row: 0, cache: cache)
        tokens += prompt.count
        fed[0] = 0
        scored[0] = []
    }

    /// Row `to` becomes a copy of row `from`.
    public func fork(from: Int, to: Int) {
        guard from != to else { return }
        cache.copyRow(from: from, to: to)
        fed[to] = fed[from]
        scored[to] = scored[from]
    }

    /// The scores at `stepEnds` (indices into `tokens`, the tokens after the prompt) of each
    /// request's candidate, whose row holds a prefix of it: only the tokens past that prefix run.
    public func score(_ requests: [(row: Int, tokens: [Int32], stepEnds: [Int])]) throws -> [[Double]] {
        precondition(Set(requests.map(\.row)).count == requests.count, "one request per row")
        var fresh: [[Double]] = requests.map { _ in [] }
        let ends = requests.map { Set($0.stepEnds) }
        let startFed = requests.map { fed[$0.row] }
        while true {
            var feed = [Int32](repeating: 0, count: rows)
            var advancing = [Bool](repeating: false, count: rows)
            var active: [Int] = []
            for (i, q) in requests.enumerated() {
                let at = fed[q.row]
                guard at < q.tokens.count, Int(cache.lengths[q.row]) < cache.capacity else { continue }
                feed[q.row] = q.tokens[at]
                advancing[q.row] = true
                active.append(i)
            }
            if active.isEmpty { break }
            _ = try model.decode(tokens: feed, cache: cache, advancing: advancing)
            tokens += active.count
            let reading = active.filter { ends[$0].contains(fed[requests[$0].row]) }
            if !reading.isEmpty {
                let values = head.scores(hidden: cache.hidden, rows: reading.map { requests[$0].row })
                for (i, v) in zip(reading, values) { fresh[i].append(v) }
            }
            for i in active { fed[requests[i].row] += 1 }
        }
        var out: [[Double]] = []
        for (i, q) in requests.enumerated() {
            // The scores of step ends written before the row's last call come from it; a step end
            // the cache could not reach (a full context) scores as the last one reached.
            let before = q.stepEnds.filter { $0 < startFed[i] }.count
            var all = Array(scored[q.row].prefix(before)) + fresh[i]
            while all.count < q.stepEnds.count { all.append(all.last ?? 0.5) }
            scored[q.row] = all
            out.append(all)
        }
        return out
    }
}
