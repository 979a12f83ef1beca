// TTSSelector.swift: the compute-optimal selector (specs/tts.md 8.4; Snell et al. 2024 section
// 5, Liu et al. 2025 Eq. 3), fitted on a tts trial's records.
//
// A strategy θ is (method, selection rule with its aggregation, N). For each budget B (in
// generations: θ fits when its N <= B) and each difficulty bin, the selector picks the θ with the
// best accuracy on the bin's fitting problems (ties: fewer FLOPs, then the earlier strategy). Its
// accuracy is estimated by 2-fold cross-validation over the problems (even and odd indices): fit on
// one half, apply on the other with each problem's bin, and the other way round, so no problem is
// judged by a choice fitted on itself (Snell et al.'s protocol). Two selectors: one on the bins
// the PRM predicts (its mean last score on the difficulty samples; what a deployment can use), one
// on the oracle's (the policy's pass@1 on them; Snell et al.'s bins, an upper bound on binning);
// the difficulty samples are the selector's extra cost, reported with and without it.
//
// Compared at each budget, on the same problems: the best single θ (fitted the same way, without
// bins), best-of-N majority and PRM-vote at N = B, and Liu et al.'s rule translated to these
// sizes (best-of-N PRM-vote on easy problems, beam search on medium and hard ones: their Figure
// 8's finding for small policies). The table a researcher deploys is fitted on all problems.

extension TTSAnalysis {
    struct Theta: Equatable {
        var label: String, rule: String, n: Int
        var key: String { "\(label).\(rule).N\(n)" }
        var description: String { "\(label) \(rule) N=\(n)" }
    }

    /// Every strategy with its per-problem correctness, in report order.
    func thetas(_ table: [String: [Double]]) -> [Theta] {
        var out: [Theta] = []
        for s in strategies {
            for n in s.ns {
                for rule in rules.map(\.key) where table["\(s.label).\(rule).N\(n)"] != nil {
                    out.append(Theta(label: s.label, rule: rule, n: n))
                }
            }
        }
        return out
    }

    /// Mean policy + PRM FLOPs per problem of each (strategy label, N).
    func meanFlops() -> [String: Double] {
        var out: [String: Double] = [:]
        for s in strategies {
            for n in s.ns {
                let os = records.compactMap { outcome($0, method: s.method, n: n, m: s.m) }
                guard !os.isEmpty else { continue }
                out["\(s.label).N\(n)"] = os.reduce(0) { $0 + $1.policyFlops + $1.prmFlops } / Double(os.count)
            }
        }
        return out
    }

    /// The best θ with N <= budget on the problems in `fit`.
    func best(
        _ thetas: [Theta], table: [String: [Double]], fit: [Int], budget: Int, flops: [String: Double]
    ) -> Theta? {
        var bestTheta: Theta?
        var bestScore = -1.0, bestCost = Double.infinity
        for t in thetas where t.n <= budget {
            guard let v = table[t.key], !fit.isEmpty else { continue }
            let score = fit.reduce(0) { $0 + v[$1] } / Double(fit.count)
            let cost = flops["\(t.label).N\(t.n)"] ?? .infinity
            if score > bestScore || (score == bestScore && cost < bestCost) {
                bestTheta = t
                bestScore = score
                bestCost = cost
            }
        }
        return bestTheta
    }

    /// The selector with the PRM's predicted bins (what a deployment can use) and with the oracle's
    /// (the bins Snell et al. report; an upper bound on what binning gives).
    func selectors(table: [String: [Double]], samples: [[Int]], flops: [String: Double]) -> JSONValue {
        var f: [(String, JSONValue)] = []
        let predicted = records.map(predictedBin)
        if predicted.contains(where: { $0 != nil }) {
            f.append(
                (
                    "predicted",
                    selector(table: table, samples: samples, bins: predicted, name: "predicted", flops: flops)
                ))
        }
        let oracle = records.map(oracleBin)
        if oracle.contains(where: { $0 != nil }) {
            f.append(("oracle", selector(table: table, samples: samples, bins: oracle, name: "oracle", flops: flops)))
        }
        return .object(f)
    }

    func selector(
        table: [String: [Double]], samples: [[Int]], bins: [String?], name: String, flops: [String: Double]
    ) -> JSONValue {
        let all = thetas(table)
        guard !all.isEmpty, !records.isEmpty else { return .null }
        let folds = [records.indices.filter { $0 % 2 == 0 }, records.indices.filter { $0 % 2 == 1 }]
        let agg = spec.searchAggregation.rawValue
        let difficulty = difficultyFlopsPerProblem()
        func cell(_ v: [Double]) -> JSONValue {
            let i = TTSAnalysis.interval(v, nil, samples)
            return .object([("mean", JSONValue(i.mean)), ("lo", JSONValue(i.lo)), ("hi", JSONValue(i.hi))])
        }
        func lookup(_ key: String) -> [Double]? { table[key] }
        var rows: [JSONValue] = []
        for budget in spec.budgets {
            // Cross-validated selector and best single strategy.
            var cv = [Double](repeating: 0, count: records.count)
            var single = [Double](repeating: 0, count: records.count)
            var cvFlops = 0.0
            for (f, fit) in folds.enumerated() {
                let apply = folds[1 - f]
                let overall = best(all, table: table, fit: fit, budget: budget, flops: flops)
                var perBin: [String: Theta] = [:]
                for b in TTSAnalysis.bins {
                    perBin[b] =
                        best(all, table: table, fit: fit.filter { bins[$0] == b }, budget: budget, flops: flops)
                        ?? overall
                }
                for p in apply {
                    if let t = bins[p].flatMap({ perBin[$0] }) ?? overall {
                        cv[p] = table[t.key]![p]
                        cvFlops += flops["\(t.label).N\(t.n)"] ?? 0
                    }
                    if let t = overall { single[p] = table[t.key]![p] }
                }
            }
            // The deployed table: fitted on every problem.
            let everything = Array(records.indices)
            let overall = best(all, table: table, fit: everything, budget: budget, flops: flops)
            var deployed: [(String, JSONValue)] = []
            for b in TTSAnalysis.bins {
                let fit = everything.filter { bins[$0] == b }
                let t = best(all, table: table, fit: fit, budget: budget, flops: flops) ?? overall
                deployed.append((b, .string(t?.description ?? "—")))
            }
            // Liu et al.'s rule at this budget.
            let beam = strategies.first { $0.method == "beam" && budget >= ($0.m ?? 1) }
            var liu: [Double] = []
            if let vote = lookup("bon.prm_vote.\(agg).N\(budget)") {
                let beamVote = beam.flatMap { lookup("\($0.label).prm_vote.\(agg).N\(budget)") }
                liu = records.indices.map { p in bins[p] == "easy" || beamVote == nil ? vote[p] : beamVote![p] }
            }
            var f: [(String, JSONValue)] = [
                ("budget", JSONValue(budget)), ("table", .object(deployed)),
                ("single", .string(overall?.description ?? "—")),
                ("selectorAccuracy", cell(cv)), ("singleAccuracy", cell(single)),
                (
                    "selectorFlops",
                    .object([
                        ("search", JSONValue(cvFlops / Double(records.count))),
                        ("withDifficulty", JSONValue(cvFlops / Double(records.count) + difficulty)),
                    ])
                ),
                (
                    "selectorGenerations",
                    .object([
                        ("search", JSONValue(budget)), ("withDifficulty", JSONValue(budget + spec.difficultySamples)),
                    ])
                ),
            ]
            if let v = lookup("bon.majority.N\(budget)") { f.append(("majorityAccuracy", cell(v))) }
            if let v = lookup("bon.prm_vote.\(agg).N\(budget)") { f.append(("bonVoteAccuracy", cell(v))) }
            if !liu.isEmpty { f.append(("liuRuleAccuracy", cell(liu))) }
            rows.append(.object(f))
        }
        return .object([
            ("bins", .string(name)),
            ("difficultySamples", JSONValue(spec.difficultySamples)),
            ("difficultyFlopsPerProblem", JSONValue(difficulty)),
            ("budgets", .array(rows)),
        ])
    }

    /// The difficulty samples' policy and PRM FLOPs over all problems: one prefill shared by the
    /// samples (best-of-N candidates of one search), then each sample's tokens.
    func difficultyFlops() -> (policy: Double, prm: Double) {
        var p = 0.0, q = 0.0
        for r in records {
            guard let d = r.difficulty, !d.tokens.isEmpty else { continue }
            let P = r.promptTokens
            p += policy.generationFlops(prompt: P, generated: 0)
            if let prm, !d.prmLast.isEmpty { q += prm.scoringFlops(tokens: P, scored: 0) }
            for t in d.tokens {
                p += policy.generationFlops(cached: P, prompt: 0, generated: t)
                if let prm, !d.prmLast.isEmpty { q += prm.scoringFlops(cached: P, tokens: t, scored: 1) }
            }
        }
        return (p, q)
    }

    func difficultyFlopsPerProblem() -> Double {
        let (p, q) = difficultyFlops()
        return (p + q) / Double(max(1, records.count))
    }
}
