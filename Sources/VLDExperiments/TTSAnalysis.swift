// TTSAnalysis.swift: everything a tts trial reports, computed from its records (records.jsonl)
// alone: accuracy per method, selection rule, aggregation and N, overall and per difficulty bin,
// with 95% percentile-bootstrap intervals over problems; seed-paired (problem-paired) differences
// between methods; and the compute of each strategy per problem (specs/tts.md 8.5).
//
// Strategies: bon (best-of-N: the first N of its nMax candidates), beam<M> (the beam-search run
// with that N and M), dvts<M> (the first N/M subtrees of its nMax run). Rules: majority,
// prm_max.<agg> and prm_vote.<agg> (Selection.swift); bon adds pass (unbiased pass@N from its nMax
// candidates, Chen et al. 2021). Bins (Liu et al. 2025's absolute thresholds): easy when the
// policy's pass@1 on the difficulty samples is at least 0.5, medium from 0.1, hard below 0.1
// (oracle); the same thresholds on the PRM's mean last score over those samples (predicted).
//
// FLOPs per strategy and problem: the prompt's prefill once, then each node's added tokens after
// its cached prefix (prompt + parent), the policy with its LM head and the PRM with its value head
// (ModelConfig.generationFlops and scoringFlops); pruned branches count. Generations are the
// paper's unit: N.

import Foundation
import VLDModel
import VLDTensor

enum TTSRecord {
    static func answer(_ words: [String]) -> Int? {
        guard let a = words.firstIndex(of: "answer"), a + 1 < words.count else { return nil }
        return Int(words[a + 1])
    }
    static func answerJSON(_ words: [String]) -> JSONValue { answer(words).map { JSONValue($0) } ?? .null }

    /// Policy tokens a record generated (searches, greedy, difficulty samples).
    static func policyTokens(_ r: JSONValue) -> Int {
        var n = 0
        if case let .array(runs)? = r["runs"] { for run in runs { n += Int(run["generatedTokens"]?.doubleValue ?? 0) } }
        n += Int(r["greedy"]?["tokens"]?.doubleValue ?? 0)
        if case let .array(t)? = r["difficulty"]?["tokens"] { n += t.reduce(0) { $0 + Int($1.doubleValue ?? 0) } }
        return n
    }
}

/// A record read back into what the analysis needs.
struct ProblemRecord {
    struct Node {
        var id: Int, parent: Int?, subtree: Int, tokens: Int, scores: [Double], answer: Int?
    }
    struct Run {
        var method: String, n: Int, m: Int?
        var outputs: [Int]
        var nodes: [Node]
    }
    var index: Int, k: Int, gold: Int, promptTokens: Int
    var greedy: (answer: Int?, tokens: Int)?
    var difficulty: (answers: [Int?], tokens: [Int], prmLast: [Double])?
    var runs: [Run]

    /// A run's nodes with their whole candidates: each entry holds what it added to its parent
    /// (an earlier entry), so tokens and scores accumulate down the tree.
    static func nodes(_ list: [JSONValue]) throws -> [Node] {
        var byID: [Int: Node] = [:]
        return try list.map { v in
            guard case let .string(added)? = v["added"], case let .number(id)? = v["id"] else {
                throw TrialError("a node has no id or added words")
            }
            let parent = v["parent"]?.doubleValue.map(Int.init)
            let base = parent.flatMap { byID[$0] }
            guard parent == nil || base != nil else { throw TrialError("node \(Int(id)) comes before its parent") }
            var scores = base?.scores ?? []
            if case let .array(s)? = v["scores"] { scores += s.compactMap(\.doubleValue) }
            let node = Node(
                id: Int(id), parent: parent, subtree: v["subtree"]?.doubleValue.map(Int.init) ?? 0,
                tokens: (base?.tokens ?? 0) + added.split(separator: " ").count, scores: scores,
                answer: v["answer"]?.doubleValue.map(Int.init))
            byID[node.id] = node
            return node
        }
    }

    init(_ r: JSONValue) throws {
        func int(_ v: JSONValue?, _ what: String) throws -> Int {
            guard case let .number(n)? = v else { throw TrialError("a record has no \(what)") }
            return Int(n)
        }
        func ints(_ v: JSONValue?) -> [Int] {
            guard case let .array(a)? = v else { return [] }
            return a.compactMap { $0.doubleValue.map(Int.init) }
        }
        func optInt(_ v: JSONValue?) -> Int? { v?.doubleValue.map(Int.init) }
        index = try int(r["problem"], "problem")
        k = try int(r["k"], "k")
        gold = try int(r["gold"], "gold")
        promptTokens = try int(r["promptTokens"], "promptTokens")
        if let g = r["greedy"], g != .null { greedy = (optInt(g["answer"]), try int(g["tokens"], "greedy tokens")) }
        if let d = r["difficulty"], d != .null, case let .array(a)? = d["answers"] {
            let last: [Double]
            if case let .array(s)? = d["prmLast"] { last = s.compactMap(\.doubleValue) } else { last = [] }
            difficulty = (a.map { $0.doubleValue.map(Int.init) }, ints(d["tokens"]), last)
        }
        runs = []
        if case let .array(list)? = r["runs"] {
            for run in list {
                guard case let .string(method)? = run["method"], case let .array(nodes)? = run["nodes"] else {
                    throw TrialError("a record's run has no method or nodes")
                }
                runs.append(
                    Run(
                        method: method, n: try int(run["n"], "n"), m: optInt(run["m"]), outputs: ints(run["outputs"]),
                        nodes: try ProblemRecord.nodes(nodes)))
            }
        }
    }
}

/// One strategy's outcome on one problem.
struct StrategyOutcome {
    var candidates: [Candidate]
    var policyTokens: Int
    var policyFlops: Double
    var prmFlops: Double
    /// Unbiased pass@N (bon only).
    var pass: Double?
}

struct TTSAnalysis {
    let records: [ProblemRecord]
    let spec: TTSSpec
    let policy: ModelConfig
    let prm: ModelConfig?

    init(records: [JSONValue], spec: TTSSpec, policy: ModelConfig, prm: ModelConfig?) {
        self.records = records.compactMap { try? ProblemRecord($0) }
        self.spec = spec
        self.policy = policy
        self.prm = prm
    }

    static let bins = ["easy", "medium", "hard"]
    static func bin(_ p: Double) -> String { p >= 0.5 ? "easy" : p >= 0.1 ? "medium" : "hard" }

    func oracleBin(_ r: ProblemRecord) -> String? {
        guard let d = r.difficulty, !d.answers.isEmpty else { return nil }
        return TTSAnalysis.bin(Double(d.answers.filter { $0 == r.gold }.count) / Double(d.answers.count))
    }
    func predictedBin(_ r: ProblemRecord) -> String? {
        guard let d = r.difficulty, !d.prmLast.isEmpty else { return nil }
        return TTSAnalysis.bin(d.prmLast.reduce(0, +) / Double(d.prmLast.count))
    }

    /// Strategy labels and their N, in report order.
    var strategies: [(label: String, method: String, m: Int?, ns: [Int])] {
        var out: [(String, String, Int?, [Int])] = []
        for method in spec.methods {
            switch method {
            case .bon: out.append(("bon", "bon", nil, spec.budgets))
            case .beam: for m in spec.m { out.append(("beam\(m)", "beam", m, spec.budgets.filter { $0 >= m })) }
            case .dvts: for m in spec.m { out.append(("dvts\(m)", "dvts", m, spec.budgets.filter { $0 >= m })) }
            }
        }
        return out
    }

    /// The rules reported: majority, then prm_max and prm_vote per aggregation (with a PRM).
    var rules: [(key: String, rule: SelectionRule, agg: StepAggregation)] {
        var out: [(String, SelectionRule, StepAggregation)] = [("majority", .majority, .last)]
        if prm != nil {
            for a in spec.aggregations { out.append(("prm_vote.\(a.rawValue)", .prmVote, a)) }
            for a in spec.aggregations { out.append(("prm_max.\(a.rawValue)", .prmMax, a)) }
        }
        return out
    }

    /// What `method` with N (and M) gives on record `r`.
    func outcome(_ r: ProblemRecord, method: String, n: Int, m: Int?) -> StrategyOutcome? {
        let run: ProblemRecord.Run?
        var keep: (ProblemRecord.Node) -> Bool = { _ in true }
        switch method {
        case "bon":
            run = r.runs.first { $0.method == "bon" }
            if let run { let first = Set(run.outputs.prefix(n)); keep = { first.contains($0.id) } }
        case "dvts":
            run = r.runs.first { $0.method == "dvts" && $0.m == m }
            if let m { keep = { $0.subtree < n / m } }
        default:
            run = r.runs.first { $0.method == method && $0.m == m && $0.n == n }
        }
        guard let run else { return nil }
        let byID = Dictionary(uniqueKeysWithValues: run.nodes.map { ($0.id, $0) })
        let nodes = run.nodes.filter(keep)
        let outputs = Set(run.outputs)
        let P = r.promptTokens
        var tokens = 0
        var pf = policy.generationFlops(prompt: P, generated: 0)
        var qf = prm.map { $0.scoringFlops(tokens: P, scored: 0) } ?? 0
        for node in nodes {
            let parent = node.parent.flatMap { byID[$0] }
            let before = parent?.tokens ?? 0, added = node.tokens - before
            tokens += added
            pf += policy.generationFlops(cached: P + before, prompt: 0, generated: added)
            if let prm {
                qf += prm.scoringFlops(
                    cached: P + before, tokens: added, scored: node.scores.count - (parent?.scores.count ?? 0))
            }
        }
        let chosen = nodes.filter { outputs.contains($0.id) }
        var pass: Double?
        if method == "bon" {
            let all = run.nodes.filter { outputs.contains($0.id) }
            pass = passAtK(n: all.count, c: all.filter { $0.answer == r.gold }.count, k: min(n, all.count))
        }
        return StrategyOutcome(
            candidates: chosen.map { Candidate(answer: $0.answer, scores: $0.scores) }, policyTokens: tokens,
            policyFlops: pf, prmFlops: prm == nil ? 0 : qf, pass: pass)
    }

    /// Per (strategy label, rule key, N): each problem's correctness (1 or 0; pass@N is a fraction).
    func correctness() -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for s in strategies {
            for n in s.ns {
                var perRule: [String: [Double]] = [:]
                for r in records {
                    guard let o = outcome(r, method: s.method, n: n, m: s.m) else { continue }
                    for rule in rules {
                        let a = selectAnswer(o.candidates, rule: rule.rule, aggregation: rule.agg)
                        perRule[rule.key, default: []].append(a == r.gold ? 1 : 0)
                    }
                    if let p = o.pass { perRule["pass", default: []].append(p) }
                }
                for (k, v) in perRule { out["\(s.label).\(k).N\(n)"] = v }
            }
        }
        if spec.greedy { out["greedy"] = records.map { $0.greedy?.answer == $0.gold ? 1 : 0 } }
        return out
    }

    /// Shared bootstrap resamples of the problems (seeded: the intervals are reproducible).
    func resamples(_ count: Int = 1000) -> [[Int]] {
        var rng = SeededRNG(seed: 0xB007)
        let n = records.count
        guard n > 0 else { return [] }
        return (0..<count).map { _ in (0..<n).map { _ in rng.nextInt(n) } }
    }

    /// Mean and 95% percentile-bootstrap interval of `values` (one per problem), restricted to `mask`.
    static func interval(_ values: [Double], _ mask: [Bool]?, _ samples: [[Int]]) -> (
        mean: Double, lo: Double, hi: Double, n: Int
    ) {
        let idx = values.indices.filter { mask?[$0] ?? true }
        guard !idx.isEmpty else { return (.nan, .nan, .nan, 0) }
        let mean = idx.reduce(0) { $0 + values[$1] } / Double(idx.count)
        var means: [Double] = []
        for s in samples {
            var sum = 0.0, c = 0
            for i in s where mask?[i] ?? true {
                sum += values[i]
                c += 1
            }
            if c > 0 { means.append(sum / Double(c)) }
        }
        means.sort()
        guard !means.isEmpty else { return (mean, .nan, .nan, idx.count) }
        return (
            mean, means[Int(0.025 * Double(means.count - 1))], means[Int(0.975 * Double(means.count - 1))], idx.count
        )
    }

    func results() -> JSONValue {
        let table = correctness()
        let samples = resamples()
        let flops = meanFlops()
        func cell(_ v: [Double], _ mask: [Bool]?) -> JSONValue {
            let i = TTSAnalysis.interval(v, mask, samples)
            return .object([("mean", JSONValue(i.mean)), ("lo", JSONValue(i.lo)), ("hi", JSONValue(i.hi))])
        }
        func accuracy(_ mask: [Bool]?) -> JSONValue {
            var f: [(String, JSONValue)] = []
            if let g = table["greedy"] { f.append(("greedy", cell(g, mask))) }
            for s in strategies {
                var byRule: [(String, JSONValue)] = []
                for key in rules.map(\.key) + (s.method == "bon" ? ["pass"] : []) {
                    byRule.append(
                        (
                            key,
                            .object(
                                s.ns.compactMap { n in
                                    table["\(s.label).\(key).N\(n)"].map { (String(n), cell($0, mask)) }
                                })
                        ))
                }
                f.append((s.label, .object(byRule)))
            }
            return .object(f)
        }
        let oracle = records.map(oracleBin), predicted = records.map(predictedBin)
        var byBin: [(String, JSONValue)] = []
        for (name, bins) in [("oracle", oracle), ("predicted", predicted)] where bins.contains(where: { $0 != nil }) {
            let perBin: [(String, JSONValue)] = TTSAnalysis.bins.map { b in
                let mask = bins.map { $0 == b }
                var f: [(String, JSONValue)] = [("problems", JSONValue(mask.filter { $0 }.count))]
                if case let .object(a) = accuracy(mask) { f += a }
                return (b, .object(f))
            }
            byBin.append((name, .object(perBin)))
        }
        // Compute per strategy and N: means per problem.
        var cost: [(String, JSONValue)] = []
        var totals = (policy: 0.0, prm: 0.0, tokens: 0)
        for s in strategies {
            var perN: [(String, JSONValue)] = []
            for n in s.ns {
                let os = records.compactMap { outcome($0, method: s.method, n: n, m: s.m) }
                guard !os.isEmpty else { continue }
                let c = Double(os.count)
                perN.append(
                    (
                        String(n),
                        .object([
                            ("generations", JSONValue(n)),
                            ("policyTokens", JSONValue(Double(os.reduce(0) { $0 + $1.policyTokens }) / c)),
                            ("policyFlops", JSONValue(os.reduce(0) { $0 + $1.policyFlops } / c)),
                            ("prmFlops", JSONValue(os.reduce(0) { $0 + $1.prmFlops } / c)),
                        ])
                    ))
                // Totals: the runs as they ran (bon and dvts at nMax, beam at each N).
                if s.method == "beam" || n == spec.nMax {
                    totals.policy += os.reduce(0) { $0 + $1.policyFlops }
                    totals.prm += os.reduce(0) { $0 + $1.prmFlops }
                    totals.tokens += os.reduce(0) { $0 + $1.policyTokens }
                }
            }
            cost.append((s.label, .object(perN)))
        }
        let P = records.map(\.promptTokens)
        let greedyFlops = zip(records, P).reduce(0.0) {
            $0 + policy.generationFlops(prompt: $1.1, generated: $1.0.greedy?.tokens ?? 0)
        }
        let (difficultyPolicy, difficultyPRM) = difficultyFlops()
        let n = Double(max(1, records.count))
        if spec.greedy {
            cost.insert(
                (
                    "greedy",
                    .object([
                        ("generations", JSONValue(1)),
                        ("policyTokens", JSONValue(Double(records.reduce(0) { $0 + ($1.greedy?.tokens ?? 0) }) / n)),
                        ("policyFlops", JSONValue(greedyFlops / n)), ("prmFlops", JSONValue(0)),
                    ])
                ), at: 0)
        }
        if spec.difficultySamples > 0 {
            cost.append(
                (
                    "difficulty",
                    .object([
                        ("generations", JSONValue(spec.difficultySamples)),
                        ("policyFlops", JSONValue(difficultyPolicy / n)), ("prmFlops", JSONValue(difficultyPRM / n)),
                    ])
                ))
        }
        return .object([
            ("problems", JSONValue(records.count)),
            ("accuracy", accuracy(nil)),
            ("byBin", .object(byBin)),
            ("comparisons", .array(comparisons(table, samples: samples, bins: oracle))),
            ("cost", .object(cost)),
            (
                "flops",
                .object([
                    ("searchPolicy", JSONValue(totals.policy)), ("searchPRM", JSONValue(totals.prm)),
                    ("greedy", JSONValue(greedyFlops)), ("difficultyPolicy", JSONValue(difficultyPolicy)),
                    ("difficultyPRM", JSONValue(difficultyPRM)),
                    (
                        "total",
                        JSONValue(totals.policy + totals.prm + greedyFlops + difficultyPolicy + difficultyPRM)
                    ),
                ])
            ),
            ("selector", selectors(table: table, samples: samples, flops: flops)),
            ("metrics", .object(scalars(table, flops: flops).map { ($0.0, JSONValue($0.1)) })),
        ])
    }

    /// Problem-paired differences with 95% bootstrap intervals: each search against best-of-N
    /// with the same rule and N, PRM-vote against majority and against PRM-max, overall and per
    /// oracle bin.
    func comparisons(_ table: [String: [Double]], samples: [[Int]], bins: [String?]) -> [JSONValue] {
        var pairs: [(String, String, Int)] = []
        let agg = spec.searchAggregation.rawValue
        for s in strategies where s.method != "bon" {
            for n in s.ns { pairs.append(("\(s.label).prm_vote.\(agg)", "bon.prm_vote.\(agg)", n)) }
        }
        if prm != nil {
            for n in spec.budgets {
                pairs.append(("bon.prm_vote.\(agg)", "bon.majority", n))
                pairs.append(("bon.prm_vote.\(agg)", "bon.prm_max.\(agg)", n))
            }
        }
        var out: [JSONValue] = []
        for (a, b, n) in pairs {
            guard let x = table["\(a).N\(n)"], let y = table["\(b).N\(n)"], x.count == y.count else { continue }
            let d = zip(x, y).map { $0 - $1 }
            var f: [(String, JSONValue)] = [("a", .string(a)), ("b", .string(b)), ("n", JSONValue(n))]
            for bin in [nil] + TTSAnalysis.bins.map(Optional.some) {
                let i = TTSAnalysis.interval(d, bin.map { b in bins.map { $0 == b } }, samples)
                f.append(
                    (
                        bin ?? "all",
                        .object([
                            ("diff", JSONValue(i.mean)), ("lo", JSONValue(i.lo)), ("hi", JSONValue(i.hi)),
                            ("problems", JSONValue(i.n)),
                        ])
                    ))
            }
            out.append(.object(f))
        }
        return out
    }

    /// The summary's scalars: greedy, each strategy's majority and PRM rules at the search
    /// aggregation, and bon's pass@N, per N.
    func scalars(_ table: [String: [Double]], flops: [String: Double]) -> [(String, Double)] {
        func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }
        var out: [(String, Double)] = []
        if let g = table["greedy"] { out.append(("tts.greedy", mean(g))) }
        let agg = spec.searchAggregation.rawValue
        // Inference FLOPs per problem (policy + PRM), for the summary's accuracy-against-compute chart.
        if spec.greedy {
            out.append(
                (
                    "tts.flops.greedy",
                    records.reduce(0.0) {
                        $0 + policy.generationFlops(prompt: $1.promptTokens, generated: $1.greedy?.tokens ?? 0)
                    }
                        / Double(max(1, records.count))
                ))
        }
        for (key, f) in flops.sorted(by: { $0.key < $1.key }) { out.append(("tts.flops.\(key)", f)) }
        for s in strategies {
            for key in ["majority", "prm_vote.\(agg)", "prm_max.\(agg)"] + (s.method == "bon" ? ["pass"] : []) {
                for n in s.ns {
                    if let v = table["\(s.label).\(key).N\(n)"] { out.append(("tts.\(s.label).\(key).N\(n)", mean(v))) }
                }
            }
        }
        return out
    }

    /// The log's summary line, read from `results()`'s metrics.
    func headline(_ results: JSONValue) -> String {
        func pct(_ k: String) -> String {
            guard let v = results["metrics"]?[k]?.doubleValue, v.isFinite else { return "—" }
            return formatNumber(100 * v, significant: 3) + "%"
        }
        let n = spec.nMax, agg = spec.searchAggregation.rawValue
        return
            "\(records.count) problems: greedy \(pct("tts.greedy")), bon majority@\(n) \(pct("tts.bon.majority.N\(n)")), "
            + "bon prm_vote@\(n) \(pct("tts.bon.prm_vote.\(agg).N\(n)")), pass@\(n) \(pct("tts.bon.pass.N\(n)"))"
    }
}
