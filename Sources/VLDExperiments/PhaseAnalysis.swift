// PhaseAnalysis.swift: a phase trial's results, computed from its outcomes.jsonl alone (one line
// per checkpoint: item-level probe outcomes, per-layer measures, where it came from). Per family:
// the ladder points (checkpoints grouped by the order key, seeds as replicates) with bootstrap
// intervals, local gamma per step with its interval and phase, N_c and its bootstrap
// distribution, the quadratic vertex; over the panel of every checkpoint: Pearson, partial and
// within-family r, and the paper's width normalization beside its null controls.

import Foundation
import VLDTasks

struct PhaseAnalysis {
    /// (step, K, R, T_MC1, T_MC2, I) at one evaluation of a checkpoint's training.
    typealias Trace = (step: Int, k: Double, r: Double, t1: Double, t2: Double, i: Double)

    struct LayerMeasure {
        var v: Int
        var centered: Double, uncentered: Double, null95: Double
        var aucKnowledge: Double?, aucMisconception: Double?, aucReasoning: Double?
    }

    struct Checkpoint {
        var family: String
        var index: Int
        var ref: String
        var seed: Int?
        var dModel: Int, layers: Int, params: Int
        var step: Int?, tokens: Double?, evalLoss: Double?
        var outcomes: ProbeOutcomes
        var reasoningAll: [Double]
        var truthRef: [Double]
        var layerMeasures: [LayerMeasure]
        /// The world scores at each evaluation of its training.
        var traces: [Trace]
        var scores: Scores
        /// A distilled student's loss settings (its manifest's `distill`) and KL to its teacher.
        var distill: JSONValue? = nil
        var klToTeacher: Double? = nil

        /// G (with source tags): T_MC1 after `<src=ref>` minus without.
        var gap: Double? { truthRef.isEmpty ? nil : Stats.mean(truthRef) - Stats.mean(outcomes.truthMC1) }

        /// The G probe variant: the misconception AUROC of the mass-mean truth probe at the
        /// layer whose held-out-fact AUROC is best, minus the model's pairwise truth accuracy
        /// (both have chance 1/2). Nil when the probe does not separate even held-out true and
        /// false facts (best AUROC below 0.6): a probe at chance knows nothing, and its 0.5 minus
        /// an imitating model's accuracy would read as a large gap.
        var probeGap: Double? {
            guard
                let best = layerMeasures.filter({ $0.aucKnowledge != nil }).max(by: {
                    $0.aucKnowledge! < $1.aucKnowledge!
                }), best.aucKnowledge! >= 0.6, let m = best.aucMisconception
            else { return nil }
            return m - Stats.mean(outcomes.truthPair)
        }
    }

    struct Point {
        var order: Double
        var members: [Int]
        var params: Double, dModel: Double
        var scores: Scores
        var intervals: [String: (Double, Double)]
        var evalLoss: Double?
        /// Means over the point's checkpoints (nil where none has it).
        var g: Double?, gProbe: Double?, klToTeacher: Double?, tokens: Double?
    }

    struct Step {
        var from: Int, to: Int
        var gamma: Double?
        var interval: (Double, Double)?
        var undefinedShare: Double
        var phase: Phase
    }

    struct Family {
        var name: String
        var points: [Point]
        var steps: [Step]
        var critical: Int?
        /// Bootstrap replicates per outcome: the ladder point index of N_c, or -1 for none.
        var criticalDistribution: [Int: Int]
        var quadratic: (a: Double, b: Double, c: Double, vertex: Double?)?
    }

    let spec: PhaseSpec
    let orderBy: LadderOrder
    var checkpoints: [Checkpoint] = []
    var families: [Family] = []
    /// Over every checkpoint: r(R, T) with its item-bootstrap interval, partial r given log N and
    /// log d, r within families, and the width normalization with its nulls.
    var panelR = Double.nan
    var panelInterval: (Double, Double)?
    var partialR = Double.nan
    var withinFamilyR = Double.nan
    var width: PhaseStats.WidthNormalization?
    /// A steer trial's results, shown beside the ladders (PhaseBody.steering).
    var steering: JSONValue?

    init(records: [JSONValue], body: PhaseBody) throws {
        spec = body.phase
        orderBy = body.orderBy
        checkpoints = records.map(PhaseAnalysis.checkpoint)
        if spec.reasoning == "all" {
            for c in checkpoints.indices { checkpoints[c].outcomes.reasoning = checkpoints[c].reasoningAll.map { $0 } }
        }
        guard !checkpoints.isEmpty else { throw TrialError("a phase trial measured no checkpoint") }
        for c in checkpoints.indices { checkpoints[c].scores = score(checkpoints[c]) }
        for f in body.ladders {
            let members = checkpoints.indices.filter { checkpoints[$0].family == f.name }
            families.append(try family(f.name, members))
        }
        panel()
    }

    func score(_ c: Checkpoint) -> Scores {
        PhaseStats.pointScores([[c.outcomes]], truth: spec.truth)[0]
    }

    func orderValue(_ c: Checkpoint) -> Double {
        switch orderBy {
        case .dModel: return Double(c.dModel)
        case .layers: return Double(c.layers)
        case .params: return Double(c.params)
        case .step: return Double(c.step ?? 0)
        case .tokens: return c.tokens ?? 0
        }
    }

    func family(_ name: String, _ members: [Int]) throws -> Family {
        let values = Set(members.map { orderValue(checkpoints[$0]) }).sorted()
        guard values.count >= 3 else {
            throw TrialError(
                "ladders.\(name): \(values.count) distinct \(orderBy.rawValue) value\(values.count == 1 ? "" : "s") among its checkpoints; a ladder needs at least 3 points"
            )
        }
        let groups = values.map { v in
            members.filter { orderValue(checkpoints[$0]) == v }.sorted {
                (checkpoints[$0].seed ?? 0) < (checkpoints[$1].seed ?? 0)
            }
        }
        let ladder = groups.map { $0.map { checkpoints[$0].outcomes } }
        let scores = PhaseStats.pointScores(ladder, truth: spec.truth)
        let reps = PhaseStats.bootstrap(ladder, truth: spec.truth, resamples: spec.resamples, seed: 0xFA5E)
        var points: [Point] = []
        for (j, g) in groups.enumerated() {
            let ci: [String: (Double, Double)] = [
                "K": Stats.interval95(reps.map { $0[j].k }), "R": Stats.interval95(reps.map { $0[j].r }),
                "T": Stats.interval95(reps.map { $0[j].t }), "I": Stats.interval95(reps.map { $0[j].i }),
            ].compactMapValues { $0 }
            let losses = g.compactMap { checkpoints[$0].evalLoss }
            func mean(_ v: (Checkpoint) -> Double?) -> Double? {
                let x = g.compactMap { v(checkpoints[$0]) }.filter(\.isFinite)
                return x.isEmpty ? nil : Stats.mean(x)
            }
            points.append(
                Point(
                    order: values[j], members: g, params: Stats.mean(g.map { Double(checkpoints[$0].params) }),
                    dModel: Stats.mean(g.map { Double(checkpoints[$0].dModel) }), scores: scores[j], intervals: ci,
                    evalLoss: losses.isEmpty ? nil : Stats.mean(losses), g: mean(\.gap), gProbe: mean(\.probeGap),
                    klToTeacher: mean(\.klToTeacher), tokens: mean(\.tokens)))
        }
        var steps: [Step] = []
        for j in 0..<(groups.count - 1) {
            let g = PhaseStats.gamma(scores[j], scores[j + 1], epsilon: spec.epsilon)
            let repGammas = reps.map { PhaseStats.gamma($0[j], $0[j + 1], epsilon: spec.epsilon) }
            let ci = Stats.interval95(repGammas.map { $0 ?? .nan })
            steps.append(
                Step(
                    from: j, to: j + 1, gamma: g, interval: ci,
                    undefinedShare: Double(repGammas.filter { $0 == nil }.count) / Double(max(1, reps.count)),
                    phase: PhaseStats.classify(g, interval: ci, band: spec.band)))
        }
        var distribution: [Int: Int] = [:]
        for rep in reps {
            let phases = (0..<(rep.count - 1)).map {
                PhaseStats.classifyPoint(PhaseStats.gamma(rep[$0], rep[$0 + 1], epsilon: spec.epsilon), band: spec.band)
            }
            distribution[PhaseStats.criticalPoint(phases) ?? -1, default: 0] += 1
        }
        let all = members.map { checkpoints[$0] }
        let quadratic = PhaseStats.quadraticVertex(
            logN: all.map { log10(Double($0.params)) }, t: all.map { $0.scores.t })
        return Family(
            name: name, points: points, steps: steps, critical: PhaseStats.criticalPoint(steps.map(\.phase)),
            criticalDistribution: distribution, quadratic: quadratic)
    }

    mutating func panel() {
        let r = checkpoints.map { $0.scores.r }, t = checkpoints.map { $0.scores.t }
        let defined = checkpoints.indices.filter { r[$0].isFinite && t[$0].isFinite }
        guard defined.count >= 3 else { return }
        let rs = defined.map { r[$0] }, ts = defined.map { t[$0] }
        panelR = Stats.pearson(rs, ts)
        let logN = defined.map { log(Double(checkpoints[$0].params)) }
        let logD = defined.map { log(Double(checkpoints[$0].dModel)) }
        partialR = Stats.partialR(rs, ts, given: [logN, logD])
        let names = families.map(\.name)
        withinFamilyR = Stats.withinGroupR(
            rs, ts, groups: defined.map { c in names.firstIndex(of: checkpoints[c].family) ?? 0 })
        // The panel r over item draws (every checkpoint answers the same probes).
        var rng = TaskRNG(seed: 0x9A4E1, stream: 0, index: 0)
        let first = checkpoints[0].outcomes
        var reps: [Double] = []
        for _ in 0..<spec.resamples {
            let k = (0..<first.knowledge.count).map { _ in rng.int(first.knowledge.count) }
            let ti = (0..<first.truthMC1.count).map { _ in rng.int(first.truthMC1.count) }
            let ri = (0..<first.reasoning.count).map { _ in rng.int(first.reasoning.count) }
            let s = defined.map {
                PhaseStats.scores([checkpoints[$0].outcomes], seeds: [0], k: k, t: ti, r: ri, truth: spec.truth)
            }
            reps.append(Stats.pearson(s.map(\.r), s.map(\.t)))
        }
        panelInterval = Stats.interval95(reps)
        width = PhaseStats.widthNormalization(
            r: rs, t: ts, widths: defined.map { Double(checkpoints[$0].dModel) }, permutations: spec.permutations,
            seed: 0x1D7)
    }

    static func checkpoint(_ j: JSONValue) -> Checkpoint {
        func list(_ key: String) -> [Double] { j["outcomes"]?[key]?.arrayValue?.map { $0.doubleValue ?? .nan } ?? [] }
        let o = ProbeOutcomes(
            knowledge: list("knowledge"), truthMC1: list("truthMC1"), truthMC2: list("truthMC2"),
            imitation: list("imitation"), truthPair: list("truthPair"),
            reasoning: j["outcomes"]?["reasoning"]?.arrayValue?.map { $0.doubleValue } ?? [])
        let layers = (j["layerMeasures"]?.arrayValue ?? []).map { l in
            LayerMeasure(
                v: l["v"]?.intValue ?? 0, centered: l["centered"]?.doubleValue ?? .nan,
                uncentered: l["uncentered"]?.doubleValue ?? .nan, null95: l["centeredNull95"]?.doubleValue ?? .nan,
                aucKnowledge: l["aucKnowledge"]?.doubleValue, aucMisconception: l["aucMisconception"]?.doubleValue,
                aucReasoning: l["aucReasoning"]?.doubleValue)
        }
        let traces = (j["traces"]?.arrayValue ?? []).compactMap { t -> Trace? in
            guard let step = t["step"]?.intValue else { return nil }
            func v(_ k: String) -> Double { t[k]?.doubleValue ?? .nan }
            return (step, v("world.K"), v("world.R"), v("world.T_MC1"), v("world.T_MC2"), v("world.I"))
        }
        return Checkpoint(
            family: j["family"]?.stringValue ?? "", index: j["index"]?.intValue ?? 0, ref: j["ref"]?.stringValue ?? "",
            seed: j["seed"]?.intValue, dModel: j["dModel"]?.intValue ?? 0, layers: j["layers"]?.intValue ?? 0,
            params: j["params"]?.intValue ?? 0, step: j["step"]?.intValue, tokens: j["tokens"]?.doubleValue,
            evalLoss: j["evalLoss"]?.doubleValue, outcomes: o,
            reasoningAll: (j["outcomes"]?["reasoningAll"]?.arrayValue ?? []).map { $0.doubleValue ?? .nan },
            truthRef: (j["outcomes"]?["truthRef"]?.arrayValue ?? []).map { $0.doubleValue ?? .nan },
            layerMeasures: layers, traces: traces, scores: Scores(k: .nan, r: .nan, t: .nan, i: .nan),
            distill: j["distill"], klToTeacher: j["klToTeacher"]?.doubleValue)
    }

    // MARK: results.json

    var headline: String {
        families.map { f in
            "\(f.name): " + f.steps.map { $0.phase.rawValue }.joined(separator: " ")
                + (f.critical.map { " N_c at point \($0 + 1)" } ?? " no N_c")
        }.joined(separator: "; ") + String(format: "; panel r(R, T) = %.2f", panelR)
    }

    func results() -> JSONValue {
        func num(_ x: Double?) -> JSONValue { x.map { $0.isFinite ? JSONValue($0) : .null } ?? .null }
        func pair(_ p: (Double, Double)?) -> JSONValue { p.map { .array([num($0.0), num($0.1)]) } ?? .null }
        let checkpointJSON: [JSONValue] = checkpoints.map { c in
            var f: [(String, JSONValue)] = [
                ("family", .string(c.family)), ("ref", .string(c.ref)), ("seed", c.seed.map { JSONValue($0) } ?? .null),
                ("dModel", JSONValue(c.dModel)), ("layers", JSONValue(c.layers)), ("params", JSONValue(c.params)),
                ("step", c.step.map { JSONValue($0) } ?? .null), ("tokens", num(c.tokens)),
                ("evalLoss", num(c.evalLoss)),
                ("K", num(c.scores.k)), ("R", num(c.scores.r)), ("R_all", num(Stats.mean(c.reasoningAll))),
                ("T_MC1", num(Stats.mean(c.outcomes.truthMC1))), ("T_MC2", num(Stats.mean(c.outcomes.truthMC2))),
                ("T_pair", num(Stats.mean(c.outcomes.truthPair))), ("I", num(c.scores.i)),
            ]
            if let g = c.gap { f.append(("G", num(g))) }
            f.append(("G_probe", num(c.probeGap)))
            if let d = c.distill { f.append(("distill", d)) }
            if let kl = c.klToTeacher { f.append(("klToTeacher", num(kl))) }
            f.append(
                (
                    "layerMeasures",
                    .array(
                        c.layerMeasures.map { l in
                            .object([
                                ("v", JSONValue(l.v)), ("centered", num(l.centered)), ("uncentered", num(l.uncentered)),
                                ("centeredNull95", num(l.null95)), ("aucKnowledge", num(l.aucKnowledge)),
                                ("aucMisconception", num(l.aucMisconception)), ("aucReasoning", num(l.aucReasoning)),
                            ])
                        })
                ))
            return .object(f)
        }
        let familyJSON: [(String, JSONValue)] = families.map { f in
            let points: [JSONValue] = f.points.map { p in
                .object(
                    [
                        ("order", num(p.order)), ("params", num(p.params)), ("dModel", num(p.dModel)),
                        ("seeds", JSONValue(p.members.count)), ("evalLoss", num(p.evalLoss)),
                        ("K", num(p.scores.k)), ("R", num(p.scores.r)), ("T", num(p.scores.t)), ("I", num(p.scores.i)),
                        ("G", num(p.g)), ("G_probe", num(p.gProbe)), ("klToTeacher", num(p.klToTeacher)),
                        ("tokens", num(p.tokens)),
                    ] + ["K", "R", "T", "I"].map { ("ci95." + $0, pair(p.intervals[$0])) })
            }
            let steps: [JSONValue] = f.steps.map { s in
                .object([
                    ("from", JSONValue(s.from)), ("to", JSONValue(s.to)), ("gamma", num(s.gamma)),
                    ("ci95", pair(s.interval)), ("undefinedShare", JSONValue(s.undefinedShare)),
                    ("phase", .string(s.phase.rawValue)),
                ])
            }
            let total = Double(f.criticalDistribution.values.reduce(0, +))
            let dist: [(String, JSONValue)] = f.criticalDistribution.sorted { $0.key < $1.key }.map { k, n in
                (k < 0 ? "none" : "point\(k)", JSONValue(Double(n) / max(total, 1)))
            }
            return (
                f.name,
                .object([
                    ("points", .array(points)), ("steps", .array(steps)),
                    ("N_c", f.critical.map { num(f.points[$0].params) } ?? .null),
                    ("N_cPoint", f.critical.map { JSONValue($0) } ?? .null),
                    ("N_cBootstrap", .object(dist)),
                    (
                        "quadratic",
                        f.quadratic.map { q in
                            .object([
                                ("a", num(q.a)), ("b", num(q.b)), ("c", num(q.c)), ("vertexN", num(q.vertex)),
                                ("shape", .string(q.a > 0 ? "dip then recovery" : "rise then fall")),
                            ])
                        } ?? .null
                    ),
                ])
            )
        }
        var widthJSON = JSONValue.null
        if let w = width {
            // The null's r values as a 40-bin histogram over [-1, 1] (the dashboard's panel).
            var bins = [Int](repeating: 0, count: 40)
            for r in w.nullRs where r.isFinite { bins[min(39, max(0, Int((r + 1) / 2 * 40)))] += 1 }
            widthJSON = .object([
                ("rawR", num(w.rawR)), ("normalizedR", num(w.normalizedR)), ("nullR95", num(w.nullR95)),
                ("constantR", num(w.constantR)), ("partialRGivenLogD", num(w.partialR)),
                ("informative", .bool(w.informative)), ("permutations", JSONValue(w.nullRs.count)),
                ("nullHistogram", .array(bins.map { JSONValue($0) })),
                (
                    "verdict",
                    .string(
                        w.informative
                            ? "informative: the normalized r beats the 95th percentile of its permutation null"
                            : "uninformative: the normalized r does not beat the 95th percentile of its permutation null"
                    )
                ),
            ])
        }
        var metrics: [(String, JSONValue)] = [
            ("phase.panelR", num(panelR)), ("phase.partialR", num(partialR)),
            ("phase.withinFamilyR", num(withinFamilyR)),
        ]
        if let w = width {
            metrics += [
                ("phase.widthNormalizedR", num(w.normalizedR)), ("phase.widthNullR95", num(w.nullR95)),
                ("phase.widthInformative", JSONValue(w.informative ? 1 : 0)),
            ]
        }
        for f in families {
            for s in f.steps { metrics.append(("phase.\(f.name).gamma\(s.from)", num(s.gamma))) }
        }
        return .object(
            [
                ("orderBy", .string(orderBy.rawValue)), ("truth", .string(spec.truth.rawValue)),
                ("epsilon", JSONValue(spec.epsilon)), ("band", JSONValue(spec.band)),
                ("checkpoints", .array(checkpointJSON)), ("families", .object(familyJSON)),
                (
                    "panel",
                    .object([
                        ("r", num(panelR)), ("ci95", pair(panelInterval)), ("partialRGivenLogNLogD", num(partialR)),
                        ("withinFamilyR", num(withinFamilyR)), ("widthNormalization", widthJSON),
                    ])
                ),
                ("metrics", .object(metrics)),
            ]
                + (steering.map { s in
                    [
                        (
                            "steering",
                            .object([("results", s["name"] ?? .null), ("models", PhaseAnalysis.steeringSummary(s))])
                        )
                    ]
                } ?? []))
    }

    /// Per steered model: its size, the best T setting on test beside the random direction, C
    /// and kappa (the full sweep stays in the steer trial's results.json).
    static func steeringSummary(_ s: JSONValue) -> JSONValue {
        .array(
            (s["models"]?.arrayValue ?? []).map { m in
                .object([
                    ("ref", m["ref"] ?? .null), ("dModel", m["dModel"] ?? .null), ("params", m["params"] ?? .null),
                    ("best", m["best"] ?? .null), ("C", m["C"] ?? .null), ("kappa", m["kappa"] ?? .null),
                    ("antiSteerable", m["slopes"]?["antiSteerable"] ?? .null),
                ])
            })
    }
}
