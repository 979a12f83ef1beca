// StagesTests.swift: pipelines: parsing and validating `stages`, and `vldctl run`'s runner taking
// them in dependency order with `init` reading an earlier stage's checkpoint.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel
import VLDTensor

/// A tiny train stage body (bios, one block) with extra fields.
private func stage(_ extra: String = "", dModel: Int = 16, lr: Double = 0.001) -> String {
    #"{"task": {"type": "bios", "people": 12}, "model": {"dModel": \#(dModel), "layers": 1, "heads": 2, "context": 48}, "#
        + #""train": {"steps": 6, "batch": 4, "lr": \#(lr), "evalEvery": 3}\#(extra)}"#
}

private func pipeline(_ stages: String, header: String = #""name": "p", "seed": 7, "resources": {"threads": 1}"#)
    -> String
{
    "{\(header), \"stages\": {\(stages)}}"
}

@Test func stagesRunInDependencyOrderAndInheritTheHeader() throws {
    // Written student-first: the reference puts the teacher before it.
    let text = pipeline(
        #""tune": \#(stage(#", "init": "@pre/1", "grid": {"train.lr": [0.001, 0.0003]}"#)), "#
            + #""pre": \#(stage(#", "grid": {"seed": [1, 2]}"#)), "#
            + #""eval": \#(stage(#", "needs": ["tune"], "seed": 9"#))"#)
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    #expect(e.stages.map(\.name) == ["pre", "tune", "eval"])
    #expect(e.stages.map(\.needs) == [[], ["pre"], ["tune"]])
    #expect(e.stages.map(\.trials) == [0..<2, 2..<4, 4..<5])
    #expect(e.trials.map(\.index) == [0, 1, 2, 3, 4])
    #expect(e.trials.map(\.stage) == ["pre", "pre", "tune", "tune", "eval"])
    #expect(e.trials.map(\.stageTrial) == [0, 1, 0, 1, 0])
    #expect(e.trials.map(\.manifest.seed) == [1, 2, 7, 7, 9])
    #expect(e.trials.allSatisfy { $0.manifest.name == "p" && $0.manifest.threads == 1 })
    #expect(e.trials.map(\.condition) == ["pre", "pre", "tune lr=0.001", "tune lr=0.0003", "eval"])
    #expect(e.trials[2].directoryName == "002-tune_lr=0.001-seed7")
    #expect(e.trial(for: .stage("pre", trial: 1))?.index == 1)
    #expect(e.prerequisites(of: e.trials[4]).map(\.index) == [2, 3])
    #expect((e.trials[2].manifest.body as? TrainBody)?.initFrom == .stage("pre", trial: 1))
    // The resolved trial names the checkpoint it starts from.
    #expect(e.trials[2].manifest.json["init"] == .string("@pre/1"))
    #expect(e.trials[0].manifest.json["init"] == nil)
}

@Test func pipelineMistakesAreReportedAtTheirPaths() {
    let cases: [(String, String)] = [
        (
            pipeline(#""a": \#(stage(#", "needs": ["b"]"#))"#),
            #"stages.a.needs[0]: "b" is not a stage of this manifest"#
        ),
        (pipeline(#""a": \#(stage(#", "needs": ["a"]"#))"#), "stages.a.needs[0]: a stage cannot need itself"),
        (
            pipeline(#""a": \#(stage(#", "needs": ["b"]"#)), "b": \#(stage(#", "init": "@a""#))"#),
            "stages.a.needs: a -> b -> a is a cycle"
        ),
        (pipeline(#""a": \#(stage(#", "init": "@nope""#))"#), "stages.a.init: @nope names no stage of this manifest"),
        (pipeline(#""a": \#(stage(#", "init": "@a""#))"#), "stages.a.init: @a refers to its own stage"),
        (
            pipeline(#""a": \#(stage(#", "grid": {"seed": [1, 2]}"#)), "b": \#(stage(#", "init": "@a""#))"#),
            "stages.b.init: stage a has 2 trials; name one as @a/<trial> with <trial> from 0 to 1"
        ),
        (
            pipeline(#""a": \#(stage()), "b": \#(stage(#", "init": "@a/3""#))"#),
            "stages.b.init: stage a has 1 trial; @a/3 names trial 3"
        ),
        (
            pipeline(#""a": \#(stage(#", "init": "weights/""#))"#),
            #"stages.a.init: "weights/" is not a checkpoint reference"#
        ),
        (pipeline(#""a b": \#(stage())"#), #"stages["a b"]: "a b" is not a stage name"#),
        (pipeline(#""a": \#(stage(#", "name": "q""#))"#), "stages.a.name: a stage takes the manifest's name"),
        (
            pipeline(#""a": \#(stage())"#, header: #""name": "p", "task": {"type": "bios"}"#),
            "task: a manifest with stages holds only name, seed, priority, resources and stages"
        ),
        (pipeline(""), "stages: expected an object of 1 to 32 named stages"),
        (pipeline(#""a": \#(stage(#", "kind": "nope""#))"#), #"stages.a.kind: "nope" is not an experiment kind"#),
    ]
    for (text, expected) in cases {
        let found = issues(text)
        #expect(found.contains { $0.hasPrefix(expected) }, "\(text)\n\(found)")
    }
    // "@stage" outside a pipeline, and a stray top-level key named safely.
    #expect(
        issues(#"{"name": "n", \#(String(stage(#", "init": "@pre""#).dropFirst()))"#)
            == ["init: @pre names a stage, but this manifest has no stages (see vldctl example distill)"])
    #expect(
        issues(pipeline(#""a": \#(stage())"#, header: #""name": "p", "k\u001b[1m": 1"#)).first?.hasPrefix(
            #"["k\e[1m"]: a manifest with stages holds only"#) == true,
        "\(issues(pipeline(#""a": \#(stage())"#, header: #""name": "p", "k\u001b[1m": 1"#)))")
    // A stage's grid value that fails is named by its full path.
    let bad = pipeline(#""a": \#(stage(#", "grid": {"model.schedule": ["base", "cyc(x)"]}"#))"#)
    #expect(issues(bad).contains { $0.hasPrefix("stages.a.grid.model.schedule[1]: ") }, "\(issues(bad))")
}

@Test func vldctlRunRunsAPipelineAndInitReadsTheEarlierCheckpoint() throws {
    // lr 0 leaves the weights where init put them: the tuned checkpoint equals the pretrained one.
    let text = pipeline(
        #""pre": \#(stage()), "tune": \#(stage(#", "init": "@pre""#, lr: 0))"#
    )
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    var lines: [String] = []
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { lines.append($0) }, progress: { _ in },
        shouldStop: { false })
    #expect(outcome.completed == 2 && !outcome.stopped)
    let layout = ExperimentDirectory(out: out, name: "p")
    let pre = layout.published(e.trials[0]).checkpoint, tune = layout.published(e.trials[1]).checkpoint
    #expect(lines.contains { $0.contains("initialized the weights from @pre") })
    let pool = ThreadPool(threads: 1)
    let a = try Checkpoint.loadModel(from: pre, pool: pool).params.array()
    let b = try Checkpoint.loadModel(from: tune, pool: pool).params.array()
    #expect(a == b)
    // The summary compares the stages as conditions.
    let summary = try JSONValue.parse(Data(contentsOf: layout.summaryJSON))
    guard case let .array(conditions)? = summary["conditions"] else {
        Issue.record("summary.json has no conditions")
        return
    }
    #expect(conditions.map { $0["condition"] } == [.string("pre"), .string("tune")])
}

@Test func aStageWhoseNeedsAreNotFinishedDoesNotRun() throws {
    let text = pipeline(#""pre": \#(stage()), "tune": \#(stage(#", "init": "@pre""#))"#)
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    var lines: [String] = []
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, only: [1], log: { lines.append($0) },
        progress: { _ in }, shouldStop: { false })
    #expect(outcome.completed == 0)
    #expect(
        lines.contains { $0.contains("[2/2] not run: it needs stage pre (trial 1), which is not finished") }, "\(lines)"
    )
}

@Test func initFromADifferentModelIsRefusedWithBothShapes() throws {
    let text = pipeline(
        #""pre": \#(stage()), "tune": \#(stage(#", "init": "@pre""#, dModel: 32))"#
    )
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    let error = #expect(throws: TrialError.self) {
        try ExperimentRunner.run(
            e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in },
            shouldStop: { false })
    }
    #expect(error?.message.contains("holds a different model (gpt2 d=16 L=1") == true, "\(String(describing: error))")
    #expect(error?.message.contains("this trial builds gpt2 d=32 L=1") == true)
    // A path that holds no checkpoint.
    var trial = e.trials[1]
    var body = trial.manifest.body as! TrainBody
    body.initFrom = .path(out.appendingPathComponent("nothing").path)
    body.model.dModel = 16
    trial.manifest.body = body
    let missing = #expect(throws: TrialError.self) {
        try TrainRunner.run(trial, in: TrialDirectory(freshDirectory()), context: RunContext(threads: 1))
    }
    #expect(missing?.message.contains("no checkpoint there (config.json is missing)") == true)
}

@Test func aManifestThatAppendsStagesContinuesItsOutputAndAnyOtherChangeIsRefused() throws {
    let first = pipeline(#""pre": \#(stage(#", "grid": {"seed": [1, 2]}"#))"#)
    let out = freshDirectory()
    func run(_ text: String) throws -> (ExperimentRunner.Outcome, [String]) {
        var lines: [String] = []
        let outcome = try ExperimentRunner.run(
            try Experiment.parse(Data(text.utf8), cores: 2), source: Data(text.utf8), out: out, threads: 1,
            log: { lines.append($0) }, progress: { _ in }, shouldStop: { false })
        return (outcome, lines)
    }
    #expect(try run(first).0.completed == 2)
    // Appended: a stage that reads the first one; only its trial runs.
    let appended = pipeline(
        #""pre": \#(stage(#", "grid": {"seed": [1, 2]}"#)), "tune": \#(stage(#", "init": "@pre/0""#))"#)
    let (outcome, lines) = try run(appended)
    #expect(outcome.completed == 3)
    #expect(lines.contains { $0.contains("the manifest keeps every trial that ran and now has 3 trials (2 before)") })
    #expect(
        !lines.contains { $0.contains("[1/3] vld") || $0.contains("[2/3] vld") }, "finished trials do not run again")
    // A change to a trial that ran is another experiment.
    let changed = pipeline(#""pre": \#(stage(#", "grid": {"seed": [1, 3]}"#))"#)
    #expect {
        try run(changed)
    } throws: { "\($0)".contains("holds results of a different manifest named p") }
}
