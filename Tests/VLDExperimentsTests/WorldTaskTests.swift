// WorldTaskTests.swift: the `world` task in a manifest: resolved with every default, its mistakes
// named at their paths, and a small model trained on it scored by the forced-choice probes: it
// knows facts far above chance and, where the misconception is written three times as often as
// the truth, says the misconception (imitation), as specs/phase.md 5(a) intends.

import Foundation
import Testing
@testable import VLDExperiments

private func manifest(_ task: String, steps: Int = 600) -> String {
    #"{"name": "w", "seed": 1, "resources": {"threads": 2}, "task": \#(task), "#
        + #""model": {"arch": "llama", "dModel": 48, "layers": 2, "heads": 4, "context": 48}, "#
        + #""train": {"steps": \#(steps), "batch": 32, "lr": 3e-3, "warmup": 50, "evalEvery": \#(steps)}}"#
}

@Test func aWorldTaskResolvesWithEveryDefault() throws {
    let e = try Experiment.parse(Data(manifest(#"{"type": "world", "entities": 50, "popular": 10}"#).utf8), cores: 2)
    let task = try #require(e.trials[0].manifest.json["task"])
    #expect(task["type"] == .string("world") && task["entities"] == .number(50) && task["popular"] == .number(10))
    for key in ["relations", "properties", "values", "misconceptionShare", "fMis", "fTrue", "sourceTags", "evalItems"] {
        #expect(task[key] != nil, "\(key) is not written out")
    }
}

@Test func worldMistakesNameTheirPaths() {
    #expect(
        issues(manifest(#"{"type": "world", "entities": 50, "popular": 80}"#))
            .contains { $0.hasPrefix("task: world: popular must be in 0...entities (50)") })
    #expect(
        issues(manifest(#"{"type": "world", "paraphrases": 5}"#))
            .contains { $0.hasPrefix("task.paraphrases: 5 is out of range") })
    #expect(issues(manifest(#"{"type": "world", "colour": 2}"#)).contains { $0.hasPrefix("task.colour: unknown key") })
}

@Test func aSmallModelKnowsTheWorldAndRepeatsItsMisconceptions() throws {
    let text = manifest(#"{"type": "world", "entities": 40, "popular": 10, "fMis": 3, "fTrue": 1, "evalItems": 100}"#)
    let trial = try Experiment.parse(Data(text.utf8), cores: 2).trials[0]
    let dir = freshDirectory()
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 2)) == .completed)
    let results = try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("results.json")))
    func metric(_ k: String) -> Double { results["metrics"]?[k]?.doubleValue ?? .nan }
    // Chance is 1/8 for a property, 1/39 for a relation.
    #expect(metric("world.K") > 0.5, "K \(metric("world.K"))")
    #expect(metric("world.I") > metric("world.T_MC1"), "I \(metric("world.I")) T \(metric("world.T_MC1"))")
    #expect(metric("world.T_MC1") + metric("world.I") <= 1 + 1e-9)
    #expect((0...1).contains(metric("world.T_MC2")))
    #expect(results["tasks"]?["world"]?["probes"]?["reasoning"] == .number(100))
    // Each score has its interval over the probes, around its mean.
    guard case let .array(ci)? = results["tasks"]?["world"]?["ci95"]?["world.K"], ci.count == 2,
        let lo = ci[0].doubleValue, let hi = ci[1].doubleValue
    else {
        Issue.record("tasks.world.ci95 has no interval for world.K")
        return
    }
    #expect(lo <= metric("world.K") && metric("world.K") <= hi)
}
