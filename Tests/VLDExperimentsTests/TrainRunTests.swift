// TrainRunTests.swift: the train kind's resume paths, run in-process on a tiny model.

import Foundation
import Testing
@testable import VLDExperiments

func tinyTrial(steps: Int = 8) throws -> Trial {
    let text =
        #"{"name": "r", "seed": 5, "task": {"type": "bios", "people": 12}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "#
        + #""train": {"steps": \#(steps), "batch": 4, "evalEvery": 4}}"#
    return try Experiment.parse(Data(text.utf8), cores: 2).trials[0]
}

func freshDirectory() -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("vld-train-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

func withoutTiming(_ url: URL) throws -> JSONValue {
    var v = try JSONValue.parse(Data(contentsOf: url))
    v.remove(key: "timing")
    return v
}

@Test func aTrialKilledAfterItsLastCheckpointFinishesOnRerun() throws {
    let trial = try tinyTrial()
    let dir = freshDirectory()
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 2)) == .completed)
    let results = dir.appendingPathComponent("results.json")
    let first = try withoutTiming(results)
    // As if killed between the final checkpoint and results.json.
    try FileManager.default.removeItem(at: results)
    try FileManager.default.removeItem(at: dir.appendingPathComponent("report.html"))
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 2)) == .completed)
    #expect(try withoutTiming(results) == first)
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("report.html").path))
}

@Test func resumingWithAnotherThreadCountIsRefused() throws {
    let trial = try tinyTrial(steps: 40)
    let dir = freshDirectory()
    var calls = 0
    let stopEarly = RunContext(
        threads: 1,
        shouldStop: {
            calls += 1; return calls > 10
        })
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: stopEarly) == .stopped(step: 10))
    let mismatch = #expect(throws: TrialError.self) {
        try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 2))
    }
    #expect(mismatch?.message.contains("was started with 1 threads; resume it with --threads 1") == true)
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 1)) == .completed)
}

@Test func aDifferentManifestInTheSameDirectoryIsRefused() throws {
    let dir = freshDirectory()
    _ = try TrainRunner.run(try tinyTrial(steps: 4), in: TrialDirectory(dir), context: RunContext(threads: 1))
    #expect(throws: TrialError.self) {
        try TrainRunner.run(try tinyTrial(steps: 8), in: TrialDirectory(dir), context: RunContext(threads: 1))
    }
}

/// The chain task end to end in seconds (pure recall in the compact syntax: "x 4 ; u 1 ; c 4 ; ? u"):
/// a 2-block model learns to answer a lookup with a constant of the problem (far above chance,
/// 1 in 5, and at least near the floor of guessing among the constants) and stays near chance on
/// k = 2, which it never saw; the report and results carry accuracy per k and the floor.
/// Binding names to their statements (accuracy well above the floor) also happens at this size,
/// but abruptly after a plateau whose length varied from 3000 to more than 10,000 steps between
/// runs of this configuration with 1 and 2 threads, so it is shown by the pilots
/// (docs/results/pilots/chain), not asserted here.
@Test func aTinyModelLearnsChainLookupsAndNotLongerChains() throws {
    let text =
        #"{"name": "chain", "seed": 1, "task": {"type": "chain", "format": "direct", "modulus": 5, "minK": 1, "maxK": 1, "#
        + #""statements": 3, "queries": 2, "derivedShare": 0, "evalProblems": 200, "evalK": [1, 2]}, "#
        + #""model": {"arch": "llama", "dModel": 64, "layers": 2, "heads": 4, "context": 24}, "#
        + #""train": {"steps": 1500, "batch": 32, "lr": 3e-3, "warmup": 100, "evalEvery": 1500}}"#
    let trial = try Experiment.parse(Data(text.utf8), cores: 2).trials[0]
    let dir = freshDirectory()
    #expect(try TrainRunner.run(trial, in: TrialDirectory(dir), context: RunContext(threads: 2)) == .completed)
    let results = try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("results.json")))
    let chain = results["tasks"]?["chain"]
    guard case let .number(k1)? = chain?["accuracy"]?["1"], case let .number(k2)? = chain?["accuracy"]?["2"],
        case let .number(floor)? = chain?["constantGuess"]?["1"]
    else {
        Issue.record("no chain accuracy in \(results.serialized())")
        return
    }
    #expect(floor > 0.4 && floor < 0.55, "guessing floor \(floor)")
    #expect(k1 >= 0.35 && k1 >= floor - 0.08, "k = 1: \(k1), guessing among the constants: \(floor)")
    #expect(k2 <= 0.4, "k = 2: \(k2)")
    let report = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
    #expect(report.contains("Chain reasoning") && report.contains("guessing a constant"))
}

/// `vld-bench --data`: one row per distinct trial, with each task's generator, the packer and the
/// trial's training measured on this machine (no speed is asserted; the fields a user reads are).
@Test func dataBenchmarkReportsEveryTaskAndTheTrainingItFeeds() throws {
    let text = #"""
        {"name": "b", "task": [{"type": "chain", "format": "direct", "modulus": 5, "statements": 3, "maxK": 2, "queries": 2},
                                {"type": "igsm", "maxOps": 2, "maxEdges": 8, "render": "symbolic", "weight": 0.5}],
         "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 300}, "train": {"steps": 5, "batch": 2},
         "grid": {"model.schedule": ["base", "cyc(1)"]}}
        """#
    let experiment = try Experiment.parse(Data(text.utf8), limits: Limits(), cores: 2)
    let rows = try DataBenchmark.run(experiment, threads: 1, minSeconds: 0)
    #expect(rows.count == 2)
    for row in rows {
        guard case let .array(generators)? = row["generators"] else {
            Issue.record("no generators in \(row)"); continue
        }
        #expect(
            generators.compactMap { if case let .string(s)? = $0["task"] { return s } else { return nil } } == [
                "chain", "igsm",
            ])
        for key in ["pack_positions_per_s", "train_positions_per_s", "data_over_train"] {
            guard case let .number(x)? = row[key] else { Issue.record("\(key) missing"); continue }
            #expect(x > 0 && x.isFinite)
        }
    }
}
