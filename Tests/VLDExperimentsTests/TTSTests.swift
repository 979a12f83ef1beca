// TTSTests.swift: the tts kind: its manifest and the errors a researcher meets (M not dividing N,
// a search without a PRM, a task without steps, a PRM without a head, another tokenizer), a
// pipeline policy -> PRM -> search whose summary accuracies equal a recomputation from its
// records, a stopped trial that resumes to the same records, and the FLOPs of a hand-built record.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel
import VLDTasks
import VLDTensor

private let chainTask =
    #""task": {"type": "chain", "format": "cot", "cotSteps": "trace", "modulus": 5, "minK": 1, "maxK": 2, "statements": 3, "evalProblems": 4, "evalK": [1]}"#
private let model = #""model": {"arch": "llama", "dModel": 32, "layers": 1, "heads": 2, "context": 48}"#

private func pipeline(tts: String = #"{"problems": 6, "nMax": 4, "m": [2], "difficultySamples": 4}"#) -> String {
    #"{"name": "t", "seed": 3, "resources": {"threads": 1}, "stages": {"#
        + #""policy": {\#(chainTask), \#(model), "train": {"steps": 300, "batch": 16, "lr": 0.01, "evalEvery": 300}}, "#
        + #""prm": {"kind": "prm", "policy": "@policy", "init": "@policy", \#(chainTask), \#(model), "#
        + #""train": {"steps": 30, "batch": 8, "lr": 0.003, "evalEvery": 30}, "#
        + #""prm": {"labels": "oracle", "problems": 16, "samples": 2, "heldOutProblems": 4}}, "#
        + #""search": {"kind": "tts", "policy": "@policy", "prm": "@prm", \#(chainTask), "tts": \#(tts)}}}"#
}

@Test func aTTSManifestResolvesWithEveryDefault() throws {
    let e = try Experiment.parse(Data(pipeline().utf8), cores: 2)
    #expect(e.stages.map(\.name) == ["policy", "prm", "search"])
    let body = try #require(e.trials[2].manifest.body as? TTSBody)
    #expect(body.policy == .stage("policy", trial: nil) && body.prm == .stage("prm", trial: nil))
    #expect(body.tts.budgets == [1, 2, 4] && body.tts.methods == [.bon, .beam, .dvts])
    #expect(
        e.trials[2].manifest.json["tts"]?["aggregations"]
            == .array(["last", "min", "prod", "mean"].map { JSONValue.string($0) }))
    #expect(e.stages[2].needs == ["policy", "prm"])
}

@Test func ttsManifestMistakesNameTheirPaths() {
    let base = #"{"name": "t", "kind": "tts", "policy": "/p", "prm": "/q", \#(chainTask)"#
    #expect(
        issues(base + #", "tts": {"nMax": 8, "m": [3]}}"#)
            .contains { $0.hasPrefix("tts.m: M = 3 does not divide nMax = 8") })
    #expect(issues(base + #", "tts": {"nMax": 12}}"#).contains { $0.hasPrefix("tts.nMax: 12 is not a power of 2") })
    #expect(
        issues(base + #", "tts": {"methods": ["bon", "mcts"]}}"#)
            .contains { $0.hasPrefix(#"tts.methods[1]: "mcts" is not a method; expected one of bon, beam, dvts"#) })
    #expect(
        issues(base + #", "tts": {"aggregations": ["max"]}}"#)
            .contains { $0.hasPrefix(#"tts.aggregations[0]: "max" is not an aggregation"#) })
    #expect(
        issues(#"{"name": "t", "kind": "tts", "policy": "/p", \#(chainTask)}"#)
            .contains { $0.hasPrefix("prm: missing; beam and dvts rank candidates by a PRM's scores") })
    #expect(
        issues(#"{"name": "t", "kind": "tts", "policy": "/p", \#(chainTask), "tts": {"methods": ["bon"]}}"#).isEmpty)
    #expect(
        issues(#"{"name": "t", "kind": "tts", "policy": "/p", "prm": "/q", "task": {"type": "chain"}}"#)
            .contains { $0.hasPrefix(#"task.format: "direct" solutions have no steps"#) })
    #expect(issues(#"{"name": "t", "kind": "tts", \#(chainTask)}"#).contains { $0.hasPrefix("policy: missing") })
}

/// An independent recomputation of the accuracies from records.jsonl: majority with ties to the
/// first answer, PRM-vote as the largest sum of last scores (ties to the first), PRM-max as the
/// first highest last score; bon's N is its first N candidates, DVTS's its first N/M subtrees. (A
/// node's `scores` are those it added; every node adds a step, so its last is the candidate's.)
private func recompute(_ records: [JSONValue], method: String, rule: String, n: Int, m: Int?) -> Double {
    var right = 0
    for r in records {
        guard case let .array(runs)? = r["runs"], let gold = r["gold"]?.doubleValue else { continue }
        let run = runs.first {
            $0["method"]?.stringValue == method && (m == nil || $0["m"]?.doubleValue == Double(m!))
                && (method != "beam" || $0["n"]?.doubleValue == Double(n))
        }
        guard let run, case let .array(nodes)? = run["nodes"], case let .array(outs)? = run["outputs"] else { continue }
        let outputIDs = outs.compactMap(\.doubleValue)
        var chosen = nodes.filter { outputIDs.contains($0["id"]!.doubleValue!) }
        if method == "bon" {
            chosen = Array(chosen.prefix(n))
        } else if method == "dvts" {
            chosen = chosen.filter { $0["subtree"]!.doubleValue! < Double(n / m!) }
        }
        let valid: [(answer: Double, score: Double)] = chosen.compactMap { c in
            guard let a = c["answer"]?.doubleValue else { return nil }
            guard case let .array(s)? = c["scores"] else { return (a, -1) }
            return (a, s.last?.doubleValue ?? -1)
        }
        guard !valid.isEmpty else { continue }
        var pick: Double
        switch rule {
        case "majority":
            var count: [Double: Int] = [:]
            for v in valid { count[v.answer, default: 0] += 1 }
            let top = count.values.max()!
            pick = valid.first { count[$0.answer] == top }!.answer
        case "prm_vote.last":
            var sum: [Double: Double] = [:]
            for v in valid { sum[v.answer, default: 0] += v.score }
            let top = sum.values.max()!
            pick = valid.first { sum[$0.answer] == top }!.answer
        default:
            pick = valid[0].answer
            var best = valid[0].score
            for v in valid.dropFirst() where v.score > best {
                best = v.score
                pick = v.answer
            }
        }
        if pick == gold { right += 1 }
    }
    return Double(right) / Double(records.count)
}

private func readRecords(_ dir: TrialDirectory) throws -> [JSONValue] {
    try String(contentsOf: dir.url.appendingPathComponent("records.jsonl"), encoding: .utf8)
        .split(separator: "\n").map { try JSONValue.parse(String($0)) }
}

@Test func theSummaryAccuraciesEqualARecomputationFromTheRecords() throws {
    let text = pipeline()
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    #expect(outcome.completed == 3)
    let layout = ExperimentDirectory(out: out, name: "t")
    let dir = layout.published(e.trials[2])
    let results = try JSONValue.parse(Data(contentsOf: dir.results))
    let records = try readRecords(dir)
    #expect(records.count == 6 && results["problems"] == .number(6))
    var compared = 0
    for (label, method, m, ns) in [
        ("bon", "bon", nil, [1, 2, 4]), ("beam2", "beam", 2, [2, 4]), ("dvts2", "dvts", 2, [2, 4]),
    ] {
        for rule in ["majority", "prm_vote.last", "prm_max.last"] {
            for n in ns {
                let key = "tts.\(label).\(rule).N\(n)"
                let stored = try #require(results["metrics"]?[key]?.doubleValue, "\(key) is missing")
                #expect(abs(stored - recompute(records, method: method, rule: rule, n: n, m: m)) < 1e-12, "\(key)")
                compared += 1
            }
        }
    }
    #expect(compared == 21)
    // Every record holds what an audit needs: each candidate's words, step scores, answer and fate.
    let node = try #require(
        { () -> JSONValue? in
            if case let .array(runs)? = records[0]["runs"], case let .array(nodes)? = runs[0]["nodes"] {
                return nodes.first
            }
            return nil
        }())
    for field in ["id", "parent", "subtree", "round", "added", "stepEnds", "scores", "answer", "done", "kept"] {
        #expect(node[field] != nil, "a node lacks \(field)")
    }
    // The greedy reference, the difficulty bins and the compute are reported.
    #expect(results["accuracy"]?["greedy"]?["mean"]?.doubleValue != nil)
    #expect(results["byBin"]?["oracle"]?["easy"]?["problems"] != nil)
    #expect((results["cost"]?["beam2"]?["4"]?["prmFlops"]?.doubleValue ?? 0) > 0)
    #expect(FileManager.default.fileExists(atPath: dir.report.path))
    // End to end: the policy's pretraining, the PRM's training, labelling and evaluation, and inference.
    let policy = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[0]).results))
    let prm = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[1]).results))
    let parts = [
        policy["flops"]?["train"], prm["flops"]?["train"], prm["flops"]?["labelling"], prm["flops"]?["prmEvaluation"],
        results["flops"]?["total"],
    ].map { $0?.doubleValue ?? .nan }
    let total = try #require(results["endToEnd"]?["total"]?.doubleValue)
    #expect(abs(total - parts.reduce(0, +)) < 1e-9 * total && parts.allSatisfy { $0 > 0 })
    let summary = try String(contentsOf: layout.report, encoding: .utf8)
    #expect(summary.contains("Test-time scaling"))
}

@Test func aStoppedTTSTrialResumesToTheRecordsOfAnUninterruptedOne() throws {
    let text = pipeline()
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    _ = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    let layout = ExperimentDirectory(out: out, name: "t")
    let refs: (CheckpointRef) throws -> URL = { ref in
        ref == .stage("policy", trial: nil)
            ? layout.published(e.trials[0]).checkpoint : layout.published(e.trials[1]).checkpoint
    }
    let dir = TrialDirectory(freshDirectory())
    var polls = 0
    let stopping = RunContext(
        threads: 1,
        shouldStop: {
            polls += 1; return polls > 4
        }, checkpoint: refs)
    #expect(try Kinds.run(e.trials[2], in: dir, context: stopping) == .stopped(step: 4))
    #expect(try readRecords(dir).count == 4)
    #expect(try Kinds.run(e.trials[2], in: dir, context: RunContext(threads: 1, checkpoint: refs)) == .completed)
    // The same records but for the seconds each problem took.
    func untimed(_ d: TrialDirectory) throws -> [JSONValue] {
        try readRecords(d).map { r in
            var r = r
            r.remove(key: "seconds")
            return r
        }
    }
    #expect(try untimed(dir) == untimed(layout.published(e.trials[2])))
    #expect(try readRecords(dir).allSatisfy { ($0["seconds"]?.doubleValue ?? -1) >= 0 })
    var a = try withoutTiming(dir.results), b = try withoutTiming(layout.published(e.trials[2]).results)
    a.remove(key: "threads")
    b.remove(key: "threads")
    #expect(a["metrics"] == b["metrics"] && a["cost"] == b["cost"])
    // A policy's checkpoint given as the PRM is refused: it has no value head.
    let noHead: (CheckpointRef) throws -> URL = { _ in layout.published(e.trials[0]).checkpoint }
    let refused = #expect(throws: TrialError.self) {
        try Kinds.run(
            e.trials[2], in: TrialDirectory(freshDirectory()), context: RunContext(threads: 1, checkpoint: noHead))
    }
    #expect(refused?.message.contains("has no value head") == true, "\(String(describing: refused))")
}

@Test func aPolicyWithAnotherVocabularyOrSearchesTooBigForMemoryAreRefusedBeforeAnythingRuns() throws {
    // The policy learned chain problems over 4 variables: a smaller vocabulary than the task's.
    let text =
        #"{"name": "v", "seed": 3, "resources": {"threads": 1}, "stages": {"#
        + #""policy": {"task": {"type": "chain", "format": "cot", "variables": 4, "minK": 1, "maxK": 2, "statements": 3}, \#(model), "train": {"steps": 2, "batch": 4}}, "#
        + #""search": {"kind": "tts", "policy": "@policy", \#(chainTask), "tts": {"problems": 2, "methods": ["bon"], "nMax": 2}}}}"#
    #expect(
        issues(text).contains {
            $0.hasPrefix("stages.search.policy: @policy learned another vocabulary (")
                && $0.contains("the policy, the PRM and the task need one tokenizer")
        })
    // A search whose KV caches exceed resources.memoryMiB.
    let big = pipeline(tts: #"{"problems": 2, "nMax": 4096, "m": [4]}"#).replacingOccurrences(
        of: #""resources": {"threads": 1}"#, with: #""resources": {"threads": 1, "memoryMiB": 128}"#)
    #expect(
        issues(big).contains {
            $0.hasPrefix("stages.search.tts.nMax: searches of 4096 candidates need about")
                && $0.contains("resources.memoryMiB is 128: raise it or lower nMax")
        }, "\(issues(big))")
    #expect(issues(pipeline()).isEmpty)
}

/// Specs/tts.md 8.5 on a hand-built record: a prompt of 10 tokens, a root node of 4 tokens (two
/// scored step ends) and a child adding 3 (one more), the policy generating and the PRM scoring
/// only what each node adds after its cached prefix.
@Test func aStrategysFlopsCountEachNodesAddedTokensAfterItsCachedPrefix() throws {
    let cfg = ModelConfig(
        arch: .llama, dModel: 16, layers: 2, heads: 2, kvHeads: 2, ffnHidden: 32, context: 64, vocab: 20,
        schedule: try LayerSchedule(parsing: "base"))
    let record = try JSONValue.parse(
        #"{"problem": 0, "k": 1, "gold": 3, "promptTokens": 10, "runs": [{"method": "beam", "n": 2, "m": 2, "outputs": [1], "nodes": ["#
            + #"{"id": 0, "parent": null, "subtree": 0, "added": "a b | c", "scores": [0.5, 0.4], "answer": null},"#
            + #"{"id": 1, "parent": 0, "subtree": 0, "added": "d answer 3", "scores": [0.9], "answer": 3}]}]}"#
    )
    var spec = TTSSpec()
    spec.methods = [.beam]
    spec.nMax = 2
    spec.m = [2]
    let analysis = TTSAnalysis(records: [record], spec: spec, policy: cfg, prm: cfg)
    let o = try #require(analysis.outcome(analysis.records[0], method: "beam", n: 2, m: 2))
    // By hand: block application = 2 * blockMatrixParams + 4 t d per position t; head 2 d V.
    let W = 2 * Double(cfg.blockMatrixParams), d = 16.0, head = 2 * d * 20
    func trunk(_ t: ClosedRange<Int>) -> Double { t.reduce(0) { $0 + 2 * (W + 4 * Double($1) * d) } }
    let policy = trunk(1...10) + head + trunk(11...14) + 4 * head + trunk(15...17) + 3 * head
    let prm = trunk(1...10) + trunk(11...14) + 2 * 2 * d + trunk(15...17) + 1 * 2 * d
    #expect(abs(o.policyFlops - policy) < 1e-6 * policy)
    #expect(abs(o.prmFlops - prm) < 1e-6 * prm)
    #expect(o.policyTokens == 7)
    #expect(o.candidates == [Candidate(answer: 3, scores: [0.5, 0.4, 0.9])])
}
