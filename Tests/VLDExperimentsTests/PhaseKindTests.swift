// PhaseKindTests.swift: the `phase` kind end to end on a tiny width ladder trained in the same
// pipeline ("@ladder/*"), its results recomputed from its outcomes.jsonl, a stopped trial resumed,
// and its bad input named at the field (issue 14, parts 4 and "Bad input").

import Foundation
import Testing
import VLDTasks
@testable import VLDExperiments

private let world = #"{"type": "world", "entities": 40, "popular": 10, "statements": 3, "evalItems": 40}"#

private func pipeline(phase: String = "", ladder: String = #"["@ladder/*"]"#, phaseTask: String = world) -> String {
    #"{"name": "p", "seed": 1, "resources": {"threads": 1}, "stages": {"#
        + #""ladder": {"task": \#(world), "#
        + #""model": {"arch": "llama", "dModel": 16, "layers": 2, "heads": 2, "context": 48}, "#
        + #""train": {"steps": 60, "batch": 16, "lr": 3e-3, "warmup": 10, "evalEvery": 30}, "#
        + #""grid": {"seed": [1, 2], "model.dModel": [8, 16, 24]}}, "#
        + #""phase": {"kind": "phase", "ladders": {"w": \#(ladder)}, "orderBy": "dModel", "task": \#(phaseTask), "#
        + #""phase": {"items": 40, "resamples": 200, "permutations": 500, "reasoning": "all"\#(phase)}}}}"#
}

@Test func aPhaseTrialMeasuresEveryLadderPointAndItsResultsFollowFromItsOutcomes() throws {
    let text = pipeline()
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    #expect(e.trials.count == 7)
    // "@ladder/*" is written out as every trial of the stage.
    #expect(
        issues(pipeline(ladder: #"["@later/*"]"#)) == [
            #"stages.phase.ladders.w[0]: "@later/*" names no stage written before this one; "@stage/*" lists every trial of an earlier stage of this manifest"#
        ])
    let refs = e.trials[6].manifest.json["ladders"]?["w"]?.arrayValue?.compactMap(\.stringValue)
    #expect(refs == (0..<6).map { "@ladder/\($0)" })
    let out = freshDirectory()
    var stops = 0
    // Stop the phase trial after its second checkpoint, then resume it.
    var outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in },
        progress: { p in
            if p.trial.stage == "phase" && p.progress.step == 2 { stops += 1 }
        }, shouldStop: { stops == 1 })
    #expect(outcome.completed == 6)
    let layout = ExperimentDirectory(out: out, name: "p")
    let work = layout.work(e.trials[6])
    let partial = try String(contentsOf: work.url.appendingPathComponent("outcomes.jsonl"), encoding: .utf8)
    #expect(partial.split(separator: "\n").count == 2)
    stops = 2
    outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    #expect(outcome.completed == 7)
    let dir = layout.published(e.trials[6])
    let results = try JSONValue.parse(Data(contentsOf: dir.results))
    let lines = try String(contentsOf: dir.url.appendingPathComponent("outcomes.jsonl"), encoding: .utf8)
        .split(separator: "\n").map { try JSONValue.parse(String($0)) }
    #expect(lines.count == 6)
    // Three ladder points (d 8, 16, 24) of two seeds each; two steps with a phase each.
    let family = try #require(results["families"]?["w"])
    let points = try #require(family["points"]?.arrayValue)
    #expect(points.map { $0["dModel"]?.doubleValue } == [8, 16, 24])
    #expect(points.allSatisfy { $0["seeds"] == .number(2) })
    let steps = try #require(family["steps"]?.arrayValue)
    #expect(steps.count == 2)
    for s in steps {
        #expect(["TAX", "BONUS", "TRANSITION", "UNDEFINED"].contains(s["phase"]?.stringValue ?? ""))
    }
    // A point's T is the mean over its seeds of the mean T_MC2 over items, from the outcomes.
    for (j, d) in [8, 16, 24].enumerated() {
        let members = lines.filter { $0["dModel"] == .number(Double(d)) }
        #expect(members.count == 2)
        let t = members.map { m in Stats.mean(m["outcomes"]!["truthMC2"]!.arrayValue!.map { $0.doubleValue! }) }
        #expect(abs(Stats.mean(t) - points[j]["T"]!.doubleValue!) < 1e-12)
    }
    // Each checkpoint: its seed, step and traces from its training, a layer measure per block.
    for line in lines {
        #expect(line["step"] == .number(60) && line["seed"] != .null)
        #expect(line["traces"]?.arrayValue?.count == 2)
        #expect(line["layers"] == .number(2) && line["layerMeasures"]?.arrayValue?.count == 2)
    }
    let width = try #require(results["panel"]?["widthNormalization"])
    #expect(width["permutations"] == .number(500))
    #expect(width["verdict"]?.stringValue?.contains("informative") == true)
    #expect(results["metrics"]?["phase.panelR"] != nil)
    let report = try String(contentsOf: dir.report, encoding: .utf8)
    #expect(report.contains("Phase diagram") && report.contains("permutation null") && !report.contains("<script"))
}

@Test func phaseMistakesNameTheirFields() throws {
    #expect(
        issues(pipeline(ladder: #"["@ladder/0", "@ladder/1"]"#))
            .contains { $0.hasPrefix("stages.phase.ladders.w: a ladder of 2 checkpoints; expected at least 3 points") })
    #expect(
        issues(pipeline(phaseTask: #"{"type": "chain"}"#))
            .contains { $0.hasPrefix("stages.phase.task: a phase trial asks the probes of one world task") })
    // A ladder of another vocabulary (41 entities, not 40): named at validation.
    let other = #"{"type": "world", "entities": 41, "popular": 10, "statements": 3, "evalItems": 40}"#
    #expect(
        issues(pipeline(phaseTask: other)).contains {
            $0.hasPrefix("stages.phase.ladders.w[0]: @ladder/0 learned another vocabulary")
                && $0.hasSuffix("every ladder point learns the world the probes ask about")
        })
    #expect(
        issues(pipeline(phase: #", "truth": "T_MC3""#))
            .contains { $0.hasPrefix("stages.phase.phase.truth: \"T_MC3\" is not accepted") })
}

@Test func aPhaseTrialRefusesACheckpointOfAnotherWorld() throws {
    // The phase trial's world has 50 entities; the ladder learned 40 (the same vocabulary size
    // would not be enough: the words differ, and so would the facts).
    let other =
        #"{"type": "world", "entities": 40, "popular": 10, "statements": 3, "evalItems": 40, "misconceptionShare": 0.4}"#
    let text = pipeline(phaseTask: other)
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    #expect {
        try ExperimentRunner.run(
            e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in },
            shouldStop: { false })
    } throws: { error in
        "\(error)".contains(
            "ladders.w[0]: @ladder/0 was trained on another world (task.misconceptionShare 0.5, not 0.4)")
    }
}
