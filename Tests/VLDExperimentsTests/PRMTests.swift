// PRMTests.swift: the prm kind: its manifest and errors, a pipeline policy -> PRM whose labels
// (kept in labels.json) equal the checker's and whose checkpoint holds a value head that loads,
// mc_soft labelling that counts its rollouts, a stopped PRM trial that resumes to the numbers of
// an uninterrupted one, and a policy checkpoint refused as a PRM with a message that says why.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel
import VLDTasks
import VLDTensor

private let chainTask =
    #""task": {"type": "chain", "format": "cot", "cotSteps": "trace", "modulus": 5, "minK": 1, "maxK": 2, "statements": 3, "evalProblems": 4, "evalK": [1]}"#
private let model = #""model": {"arch": "llama", "dModel": 32, "layers": 1, "heads": 2, "context": 48}"#

private func pipeline(labels: [String] = ["oracle"], prmSteps: Int = 40, rollouts: Int = 2) -> String {
    let grid = labels.map { "\"\($0)\"" }.joined(separator: ", ")
    return #"{"name": "p", "seed": 3, "resources": {"threads": 1}, "stages": {"#
        + #""policy": {\#(chainTask), \#(model), "train": {"steps": 300, "batch": 16, "lr": 0.01, "evalEvery": 300}}, "#
        + #""prm": {"kind": "prm", "policy": "@policy", "init": "@policy", \#(chainTask), \#(model), "#
        + #""train": {"steps": \#(prmSteps), "batch": 8, "lr": 0.003, "evalEvery": 20}, "#
        + #""prm": {"problems": 24, "samples": 2, "rollouts": \#(rollouts), "heldOutProblems": 10}, "#
        + #""grid": {"prm.labels": [\#(grid)]}}}}"#
}

@Test func aPRMManifestResolvesWithItsPolicyAndLabels() throws {
    let e = try Experiment.parse(Data(pipeline(labels: ["oracle", "mc_soft"]).utf8), cores: 2)
    #expect(e.stages.map(\.name) == ["policy", "prm"])
    let prm = try #require(e.trials[2].manifest.body as? PRMBody)
    #expect(prm.policy == .stage("policy", trial: nil))
    #expect(prm.trainer.initFrom == .stage("policy", trial: nil))
    #expect(prm.prm.labels == .mcSoft && prm.prm.rollouts == 2 && prm.prm.samples == 2)
    guard case let .object(fields) = e.trials[2].manifest.json else { return }
    #expect(fields.map(\.0).suffix(6) == ["policy", "task", "model", "train", "init", "prm"])
    #expect(e.trials[1].manifest.json["prm"]?["rollouts"] == nil, "oracle labels take no rollouts")
    #expect(e.trials[2].manifest.json["prm"]?["rollouts"] == .number(2))
}

@Test func prmManifestMistakesNameTheirPaths() {
    let base = #"{"name": "p", "kind": "prm", \#(model)"#
    #expect(
        issues(base + ", \(chainTask)}").contains { $0.hasPrefix("policy: missing; expected the policy's checkpoint") })
    #expect(
        issues(base + #", "policy": "/p", "task": {"type": "bios", "people": 8}}"#)
            .contains { $0.hasPrefix("task: expected one chain task in the cot format") })
    #expect(
        issues(base + #", "policy": "/p", "task": {"type": "chain", "format": "direct"}, "prm": {"labels": "oracle"}}"#)
            .contains { $0.hasPrefix(#"task.format: "direct" solutions have no steps"#) })
    #expect(
        issues(base + #", "policy": "/p", \#(chainTask), "prm": {"labels": "gold"}}"#)
            .contains {
                $0.hasPrefix(#"prm.labels: "gold" is not accepted; expected one of oracle, mc_soft, mc_hard, orm"#)
            })
    #expect(
        issues(
            base + #", "policy": "/p", \#(chainTask), "train": {"batch": 64}, "prm": {"problems": 4, "samples": 2}}"#
        )
        .contains { $0.hasPrefix("train.batch: 64 exceeds the 8 labelled solutions") })
}

@Test func aPRMLearnsFromItsPolicysLabelledSolutionsAndItsCheckpointHoldsTheHead() throws {
    let text = pipeline(labels: ["oracle", "mc_soft"])
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    #expect(outcome.completed == 3)
    let layout = ExperimentDirectory(out: out, name: "p")
    let task = try ChainTask(
        config: try #require((e.trials[1].manifest.body as? PRMBody)?.trainer.makeMixture().tasks[0] as? ChainTask)
            .config)
    for (t, kind) in [(1, StepLabelKind.oracle), (2, .mcSoft)] {
        let dir = layout.published(e.trials[t])
        let results = try JSONValue.parse(Data(contentsOf: dir.results))
        #expect(results["prm"]?["labels"] == .string(kind.rawValue))
        #expect(results["prm"]?["trainSolutions"] == .number(48))
        let held = try #require(results["prm"]?["heldOut"])
        #expect((held["candidates"]?.doubleValue ?? 0) == 20)
        #expect(held["auc"] != nil && held["f1"] != nil && held["ece"] != nil && held["reliability"] != nil)
        #expect((results["flops"]?["labelling"]?.doubleValue ?? 0) > 0)
        // The weights it started from, and what training them cost (for the study's end-to-end account).
        let policyResults = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[0]).results))
        #expect(results["init"]?["trainFlops"] == policyResults["flops"]?["train"])
        #expect((results["metrics"]?["prm.firstErrorAccuracy"]?.doubleValue).map { (0...1).contains($0) } == true)
        // The head is in the checkpoint under its documented names, and loads.
        let head = try RewardHead.load(from: dir.checkpoint, dModel: 32)
        #expect(head.weight.count == 32)
        #expect(
            try Checkpoint.tensorTable(of: dir.checkpoint).isEmpty == false
                && FileManager.default.fileExists(
                    atPath: dir.checkpoint.appendingPathComponent("value_head.safetensors").path)
        )
        // labels.json: the oracle labels are the checker's on the same words; mc labels are shares of R = 2.
        let labels = try JSONValue.parse(Data(contentsOf: dir.url.appendingPathComponent("labels.json")))
        guard case let .array(items)? = labels["train"], case let .array(heldOut)? = labels["heldOut"] else {
            Issue.record("labels.json has no train or heldOut list")
            continue
        }
        #expect(items.count == 48 && heldOut.count == 20)
        var checked = 0
        for item in items {
            guard case let .number(p)? = item["problem"], case let .string(words)? = item["solution"],
                case let .array(got)? = item["labels"]
            else { continue }
            let problem = try ProblemSet.prmTraining(24).problem(Int(p), task: task, seed: 3)
            var cost = StepLabeling()
            let w = words.split(separator: " ").map(String.init)
            let values = got.compactMap(\.doubleValue)
            checked += 1
            if kind == .oracle {
                #expect(values == problem.label(w, kind: .oracle, cost: &cost).labels)
            } else {
                #expect(values.dropLast().allSatisfy { [0, 0.5, 1].contains($0) })
                #expect(values.last == (ChainChecker.check(problem, candidate: w).answerCorrect ? 1 : 0))
            }
        }
        #expect(checked == 48)
        if kind == .mcSoft {
            #expect((results["prm"]?["rollouts"]?.doubleValue ?? 0) > 0)
        } else {
            #expect(results["prm"]?["rollouts"] == .number(0))
        }
    }
    // A policy's checkpoint is not a PRM.
    let policy = layout.published(e.trials[0]).checkpoint
    let refused = #expect(throws: CheckpointError.self) { try RewardHead.load(from: policy, dModel: 32) }
    #expect(refused?.message.contains("has no value head") == true)
}

@Test func aStoppedPRMTrialResumesToTheNumbersOfAnUninterruptedOne() throws {
    let text = pipeline(labels: ["oracle"], prmSteps: 40)
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let whole = freshDirectory()
    _ = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: whole, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    // The same pipeline, the PRM stopped after 25 of its 40 steps (its checkpoint is at 20), then run again.
    let split = freshDirectory()
    let policy = ExperimentDirectory(out: split, name: "p").published(e.trials[0])
    _ = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: split, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    #expect(FileManager.default.fileExists(atPath: policy.results.path))
    let prmDir = TrialDirectory(freshDirectory())
    var polls = 0
    let context = RunContext(
        threads: 1,
        shouldStop: {
            polls += 1; return polls > 25
        },
        checkpoint: { _ in policy.checkpoint })
    #expect(try Kinds.run(e.trials[1], in: prmDir, context: context) == .stopped(step: 25))
    let resumed = RunContext(threads: 1, checkpoint: { _ in policy.checkpoint })
    #expect(try Kinds.run(e.trials[1], in: prmDir, context: resumed) == .completed)
    var a = try withoutTiming(ExperimentDirectory(out: whole, name: "p").published(e.trials[1]).results)
    var b = try withoutTiming(prmDir.results)
    a.set(path: ["prm", "labellingSeconds"], to: .null)
    b.set(path: ["prm", "labellingSeconds"], to: .null)
    #expect(a["metrics"] == b["metrics"])
    #expect(a["prm"] == b["prm"])
    #expect(
        try RewardHead.load(from: prmDir.checkpoint, dModel: 32)
            == RewardHead.load(
                from: ExperimentDirectory(out: whole, name: "p").published(e.trials[1]).checkpoint, dModel: 32))
}
