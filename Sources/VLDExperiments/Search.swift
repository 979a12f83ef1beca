// Search.swift: test-time search over a policy's step-by-step solutions (specs/tts.md 8.1-8.3):
// best-of-N, beam search (N, M) and diverse verifier tree search (DVTS, N, M), every candidate
// kept for audit.
//
// A step is what the policy writes up to and including a separator token; `<eos>` ends the
// candidate, and so does a step longer than `maxStepTokens`, a full context, or the last round.
// All sequences of one search live in one KV cache of N rows: a child starts as a copy of its
// parent's row (`KVCache.copyRow`), so expanding a beam costs only the tokens the child adds,
// never its prefix again; one of a parent's children takes over the parent's own row. The cache
// advances one token per decode call for the rows writing a step (`decode(advancing:)`).
//
// Beam search follows specs/tts.md 8.2 (compute-optimal-tts): the first round samples N children
// of the prompt, every later round M per surviving beam; the k = N/M - |finished| best children
// by aggregated score survive, and a survivor that has ended takes its slot for good; beams still
// open after the last round are finished as they are. DVTS (8.3) runs N/M subtrees from the same
// prompt, each sampling M steps from its current best and keeping the best; a subtree ends when
// its best ends, and its last M candidates are all outputs (search-and-learn). Best-of-N samples N
// whole solutions, scored at their end.

import VLDModel
import VLDTensor

/// Scores a candidate: one score in [0, 1] per step end (`stepEnds`, indices into `tokens`,
/// the tokens written after the prompt).
public typealias StepScorer = (_ prompt: [Int32], _ tokens: [Int32], _ stepEnds: [Int]) throws -> [Double]

/// What scores a search's candidates, row by row: the search tells it when a search starts and
/// when a row is forked, so that a KV-cached PRM (`RewardScorer`) runs only the tokens each
/// candidate added since its row was last scored.
public protocol StepScoring: AnyObject {
    /// Tokens run so far (prompts and candidates): the PRM's share of the search's cost.
    var tokens: Int { get }
    func start(prompt: [Int32]) throws
    func fork(from: Int, to: Int)
    func score(_ requests: [(row: Int, tokens: [Int32], stepEnds: [Int])]) throws -> [[Double]]
}

extension RewardScorer: StepScoring {}

/// A scorer that sees each candidate whole, every time (what a PRM without a cache costs: its
/// tokens count the prompt and the whole candidate at each call).
public final class WholeCandidateScoring: StepScoring {
    let scorer: StepScorer
    var prompt: [Int32] = []
    public private(set) var tokens = 0
    public init(_ scorer: @escaping StepScorer) { self.scorer = scorer }
    public func start(prompt: [Int32]) throws { self.prompt = prompt }
    public func fork(from: Int, to: Int) {}
    public func score(_ requests: [(row: Int, tokens: [Int32], stepEnds: [Int])]) throws -> [[Double]] {
        try requests.map { q in
            tokens += prompt.count + q.tokens.count
            return try scorer(prompt, q.tokens, q.stepEnds)
        }
    }
}

public struct SearchSettings: Equatable, Sendable {
    /// The step separator and the end of a solution.
    public var separator: Int32
    public var eos: Int32
    public var temperature: Float = 0.8
    /// Tokens one step may take; a longer step is cut there and ends its candidate.
    public var maxStepTokens = 32
    /// Rounds (steps) of beam search and DVTS, and steps of a best-of-N solution.
    public var maxRounds = 12
    public var aggregation: StepAggregation = .last

    public init(separator: Int32, eos: Int32) {
        self.separator = separator
        self.eos = eos
    }
}

public enum SearchMethod: Equatable, Sendable {
    case bestOfN(n: Int)
    case beam(n: Int, m: Int)
    case dvts(n: Int, m: Int)
}

/// One candidate of a search.
public struct SearchNode: Equatable, Sendable {
    public var id: Int
    public var parent: Int?
    /// The DVTS subtree (0 for the other methods).
    public var subtree: Int
    /// The round that wrote its last step (0 is the first).
    public var round: Int
    /// Tokens after the prompt, where its steps end, and each step's score.
    public var tokens: [Int32]
    public var stepEnds: [Int] = []
    public var scores: [Double] = []
    /// Ended: `<eos>`, a step too long, a full context, or the last round.
    public var done = false
    /// Kept by the search (a survivor of its round, or an output); false: pruned.
    public var kept = false
}

/// What a search produced and cost.
public struct SearchOutcome: Sendable {
    /// The candidates selection chooses from.
    public var outputs: [SearchNode] = []
    /// Every candidate of every round, pruned ones included.
    public var nodes: [SearchNode] = []
    /// Tokens the policy generated on all branches, and prompt tokens it prefilled.
    public var generatedTokens = 0
    public var prefillTokens = 0
    /// Tokens the scorer ran (PRM forward tokens).
    public var scoredTokens = 0
}

public final class StepSearch {
    let model: Transformer
    let settings: SearchSettings
    let scoring: StepScoring

    public init(policy: Transformer, settings: SearchSettings, scoring: StepScoring) {
        model = policy
        self.settings = settings
        self.scoring = scoring
    }

    public convenience init(policy: Transformer, settings: SearchSettings, scorer: @escaping StepScorer) {
        self.init(policy: policy, settings: settings, scoring: WholeCandidateScoring(scorer))
    }

    /// The live state of one search: the cache, each row's pending next-token logits (one flat
    /// buffer, V per row, so that a decode step copies into it without allocating).
    final class Rows {
        let cache: KVCache
        var pending: [Float]
        let V: Int
        let scoring: StepScoring
        init(cache: KVCache, first: [Float], scoring: StepScoring) {
            self.cache = cache
            V = first.count
            pending = Array((0..<cache.batch).map { _ in first }.joined())
            self.scoring = scoring
        }
        func fork(_ from: Int, to: Int) {
            cache.copyRow(from: from, to: to)
            pending.withUnsafeMutableBufferPointer { p in
                (p.baseAddress! + to * V).update(from: p.baseAddress! + from * V, count: V)
            }
            scoring.fork(from: from, to: to)
        }
    }

    public func run(_ method: SearchMethod, prompt: [Int32], rng: inout SeededRNG) throws -> SearchOutcome {
        let n: Int
        switch method {
        case let .bestOfN(x): n = x
        case let .beam(x, m), let .dvts(x, m):
            precondition(m >= 1 && x % m == 0, "M must divide N")
            n = x
        }
        precondition(n >= 1, "N must be at least 1")
        nextID = 0
        let cache = KVCache(model: model, batch: n, capacity: model.config.context)
        let first = try model.prefill(prompt, row: 0, cache: cache)
        let scoredBefore = scoring.tokens
        try scoring.start(prompt: prompt)
        let rows = Rows(cache: cache, first: first, scoring: scoring)
        var outcome = SearchOutcome()
        outcome.prefillTokens = prompt.count
        for r in 1..<n { rows.fork(0, to: r) }
        switch method {
        case .bestOfN: try bestOfN(n, rows, &outcome, &rng)
        case let .beam(_, m): try beam(n, m, rows, &outcome, &rng)
        case let .dvts(_, m): try dvts(n, m, rows, &outcome, &rng)
        }
        outcome.scoredTokens = scoring.tokens - scoredBefore
        return outcome
    }

    private var nextID = 0
    private func node(parent: SearchNode?, subtree: Int, round: Int) -> SearchNode {
        defer { nextID += 1 }
        return SearchNode(
            id: nextID, parent: parent?.id, subtree: subtree, round: round, tokens: parent?.tokens ?? [],
            stepEnds: parent?.stepEnds ?? [], done: false)
    }

    /// Writes one more step of each node (node i in cache row `at[i]`), all in one batch; with
    /// `whole`, each writes on to its end instead.
    private func write(
        _ nodes: inout [SearchNode], at rowOf: [Int], rows: Rows, lastRound: Bool, whole: Bool,
        _ outcome: inout SearchOutcome, _ rng: inout SeededRNG
    ) throws {
        let V = model.config.vocab, cache = rows.cache
        let options = SamplingOptions(maxNewTokens: settings.maxStepTokens, temperature: settings.temperature)
        var stepLength = [Int](repeating: 0, count: nodes.count)
        var steps = [Int](repeating: 0, count: nodes.count)
        var writing = nodes.indices.filter { !nodes[$0].done }
        while !writing.isEmpty {
            var feed = [Int32](repeating: settings.eos, count: cache.batch)
            var advancing = [Bool](repeating: false, count: cache.batch)
            var continuing: [Int] = []
            for i in writing {
                let r = rowOf[i]
                let t = rows.pending.withUnsafeBufferPointer {
                    sampleToken(
                        logits: UnsafeBufferPointer(rebasing: $0[(r * V)..<((r + 1) * V)]), options: options, rng: &rng)
                }
                nodes[i].tokens.append(t)
                stepLength[i] += 1
                outcome.generatedTokens += 1
                let end = nodes[i].tokens.count - 1
                if t == settings.eos || stepLength[i] >= settings.maxStepTokens
                    || Int(cache.lengths[r]) >= cache.capacity
                {
                    nodes[i].stepEnds.append(end)
                    nodes[i].done = true
                    continue
                }
                if t == settings.separator {
                    nodes[i].stepEnds.append(end)
                    steps[i] += 1
                    stepLength[i] = 0
                    if lastRound || (whole && steps[i] >= settings.maxRounds) {
                        nodes[i].done = true
                        continue
                    }
                }
                feed[r] = t
                advancing[r] = true
                if !(t == settings.separator && !whole) { continuing.append(i) }
            }
            if advancing.contains(true) {
                let logits = try model.decode(tokens: feed, cache: cache, advancing: advancing)
                rows.pending.withUnsafeMutableBufferPointer { p in
                    for r in 0..<cache.batch where advancing[r] {
                        (p.baseAddress! + r * V).update(from: logits.baseAddress! + r * V, count: V)
                    }
                }
            }
            writing = continuing
        }
        let scores = try scoring.score(nodes.indices.map { (rowOf[$0], nodes[$0].tokens, nodes[$0].stepEnds) })
        for i in nodes.indices { nodes[i].scores = scores[i] }
    }

    private func value(_ n: SearchNode) -> Double { settings.aggregation.apply(n.scores) }

    private func bestOfN(
        _ n: Int, _ rows: Rows, _ outcome: inout SearchOutcome, _ rng: inout SeededRNG
    ) throws {
        var nodes = (0..<n).map { _ in node(parent: nil, subtree: 0, round: 0) }
        try write(&nodes, at: Array(0..<n), rows: rows, lastRound: false, whole: true, &outcome, &rng)
        for i in nodes.indices {
            nodes[i].done = true
            nodes[i].kept = true
        }
        outcome.nodes = nodes
        outcome.outputs = nodes
    }

    private func beam(
        _ n: Int, _ m: Int, _ rows: Rows, _ outcome: inout SearchOutcome,
        _ rng: inout SeededRNG
    ) throws {
        let slots = n / m
        var finished: [SearchNode] = []
        // The open beams and their cache rows.
        var frontier: [(node: SearchNode?, row: Int)] = [(nil, 0)]
        for round in 0..<settings.maxRounds {
            let k = slots - finished.count
            if k <= 0 || frontier.isEmpty { break }
            // Children: N of the prompt in the first round, M per beam after; a parent's first
            // child keeps its row, the others take free rows.
            var children: [SearchNode] = []
            var rowOf: [Int] = []
            var free = Array(Set(0..<n).subtracting(frontier.map(\.row))).sorted()
            for (parent, row) in frontier {
                let count = round == 0 ? n : m
                for c in 0..<count {
                    let r = c == 0 ? row : free.removeFirst()
                    if c > 0 { rows.fork(row, to: r) }
                    children.append(node(parent: parent, subtree: 0, round: round))
                    rowOf.append(r)
                }
            }
            // Forks read the parent's row before its first child writes into it.
            try write(
                &children, at: rowOf, rows: rows, lastRound: round == settings.maxRounds - 1, whole: false, &outcome,
                &rng)
            let order = children.indices.sorted {
                value(children[$0]) > value(children[$1]) || (value(children[$0]) == value(children[$1]) && $0 < $1)
            }
            let top = Set(order.prefix(k))
            frontier = []
            for i in children.indices {
                children[i].kept = top.contains(i)
                if !children[i].kept { continue }
                if children[i].done {
                    finished.append(children[i])
                } else {
                    frontier.append((children[i], rowOf[i]))
                }
            }
            outcome.nodes += children
        }
        // Beams still open are finished as they are.
        finished += frontier.compactMap(\.node)
        outcome.outputs = finished
    }

    private func dvts(
        _ n: Int, _ m: Int, _ rows: Rows, _ outcome: inout SearchOutcome,
        _ rng: inout SeededRNG
    ) throws {
        let subtrees = n / m
        // Each subtree's best node so far and its row (rows s*M ..< (s+1)*M belong to subtree s).
        var best: [(node: SearchNode?, row: Int)] = (0..<subtrees).map { (nil, $0 * m) }
        var last: [[SearchNode]] = Array(repeating: [], count: subtrees)
        var open = Array(0..<subtrees)
        for round in 0..<settings.maxRounds where !open.isEmpty {
            var children: [SearchNode] = []
            var rowOf: [Int] = []
            var owner: [Int] = []
            for s in open {
                let block = Array((s * m)..<((s + 1) * m))
                for r in block where r != best[s].row { rows.fork(best[s].row, to: r) }
                for r in [best[s].row] + block.filter({ $0 != best[s].row }) {
                    children.append(node(parent: best[s].node, subtree: s, round: round))
                    rowOf.append(r)
                    owner.append(s)
                }
            }
            try write(
                &children, at: rowOf, rows: rows, lastRound: round == settings.maxRounds - 1, whole: false, &outcome,
                &rng)
            var stillOpen: [Int] = []
            for s in open {
                let mine = children.indices.filter { owner[$0] == s }
                let top = mine.max {
                    value(children[$0]) < value(children[$1]) || (value(children[$0]) == value(children[$1]) && $0 > $1)
                }!
                last[s] = mine.map { children[$0] }
                children[top].kept = true
                best[s] = (children[top], rowOf[top])
                if !children[top].done { stillOpen.append(s) }
            }
            outcome.nodes += children
            open = stillOpen
        }
        for s in 0..<subtrees {
            for var c in last[s] {
                c.kept = true
                outcome.outputs.append(c)
            }
        }
    }
}
