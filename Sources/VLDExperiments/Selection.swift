// Selection.swift: choosing one answer from N candidates (specs/tts.md 8.1), and unbiased pass@k.
//
// Every rule skips candidates without an answer (INVALID, nil here). A candidate's PRM scores
// (one per step separator) are reduced to one number by an aggregation: `last`, `min`, `prod` or
// `mean`, and -1 when it has none (the compute-optimal-tts convention).
//
//   majority  the most frequent answer; ties go to the answer that occurs first (search-and-learn)
//   prmMax    the answer of the highest-scoring candidate; ties to the first
//   prmVote   the answer with the largest sum of scores (weighted best-of-N; Snell et al. 2024's
//             default with `last`); ties to the answer that occurs first
//
// pass@k from n samples with c right is 1 - C(n-c, k) / C(n, k), computed as the product
// 1 - prod_{i = n-c+1}^{n} (1 - k / i) (Chen et al. 2021; search-and-learn's pass_at_k).

public enum StepAggregation: String, Sendable, CaseIterable {
    case last, min, prod, mean

    public func apply(_ scores: [Double]) -> Double {
        guard !scores.isEmpty else { return -1 }
        switch self {
        case .last: return scores.last!
        case .min: return scores.min()!
        case .prod: return scores.reduce(1, *)
        case .mean: return scores.reduce(0, +) / Double(scores.count)
        }
    }
}

public enum SelectionRule: String, Sendable, CaseIterable {
    case majority
    case prmMax = "prm_max"
    case prmVote = "prm_vote"
}

/// One finished candidate: its extracted answer (nil when it has none) and its step scores.
public struct Candidate: Equatable, Sendable {
    public var answer: Int?
    public var scores: [Double]
    public init(answer: Int?, scores: [Double] = []) {
        self.answer = answer
        self.scores = scores
    }
}

/// The answer `rule` picks from `candidates` (nil when none has an answer). (Not `select`: that
/// name is also Glibc's, which Foundation brings into every file.)
public func selectAnswer(_ candidates: [Candidate], rule: SelectionRule, aggregation: StepAggregation = .last) -> Int? {
    let valid = candidates.compactMap { c in c.answer.map { (answer: $0, score: aggregation.apply(c.scores)) } }
    guard !valid.isEmpty else { return nil }
    var order: [Int] = []
    var count: [Int: Int] = [:], sum: [Int: Double] = [:]
    for v in valid {
        if count[v.answer] == nil { order.append(v.answer) }
        count[v.answer, default: 0] += 1
        sum[v.answer, default: 0] += v.score
    }
    switch rule {
    case .majority:
        let top = order.map { count[$0]! }.max()!
        return order.first { count[$0]! == top }
    case .prmMax:
        var best = valid[0]
        for v in valid.dropFirst() where v.score > best.score { best = v }
        return best.answer
    case .prmVote:
        let top = order.map { sum[$0]! }.max()!
        return order.first { sum[$0]! == top }
    }
}

/// The unbiased estimate of pass@k from `n` samples of which `c` are right.
public func passAtK(n: Int, c: Int, k: Int) -> Double {
    precondition(n >= 0 && c >= 0 && c <= n && k >= 1, "pass@k needs 0 <= c <= n and k >= 1")
    if c == 0 { return 0 }
    if n - c < k { return 1 }
    var miss = 1.0
    for i in (n - c + 1)...n { miss *= 1 - Double(k) / Double(i) }
    return 1 - miss
}
