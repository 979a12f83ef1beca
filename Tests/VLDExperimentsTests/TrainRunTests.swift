// TrainRunTests.swift: the train kind's resume paths, run in-process on a tiny model.

import Foundation
import Testing
@testable import VLDExperiments

func tinyTrial(steps: Int = 8) throws -> Trial {
    let text = #"{"name": "r", "seed": 5, "task": {"type": "bios", "people": 12}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "#
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
    #expect(try TrainRunner.run(trial, in: dir, context: RunContext(threads: 2)) == .completed)
    let results = dir.appendingPathComponent("results.json")
    let first = try withoutTiming(results)
    // As if killed between the final checkpoint and results.json.
    try FileManager.default.removeItem(at: results)
    try FileManager.default.removeItem(at: dir.appendingPathComponent("report.html"))
    #expect(try TrainRunner.run(trial, in: dir, context: RunContext(threads: 2)) == .completed)
    #expect(try withoutTiming(results) == first)
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("report.html").path))
}

@Test func resumingWithAnotherThreadCountIsRefused() throws {
    let trial = try tinyTrial(steps: 40)
    let dir = freshDirectory()
    var calls = 0
    let stopEarly = RunContext(threads: 1, shouldStop: { calls += 1; return calls > 10 })
    #expect(try TrainRunner.run(trial, in: dir, context: stopEarly) == .stopped(step: 10))
    let mismatch = #expect(throws: TrialError.self) { try TrainRunner.run(trial, in: dir, context: RunContext(threads: 2)) }
    #expect(mismatch?.message.contains("was started with 1 threads; resume it with --threads 1") == true)
    #expect(try TrainRunner.run(trial, in: dir, context: RunContext(threads: 1)) == .completed)
}

@Test func aDifferentManifestInTheSameDirectoryIsRefused() throws {
    let dir = freshDirectory()
    _ = try TrainRunner.run(try tinyTrial(steps: 4), in: dir, context: RunContext(threads: 1))
    #expect(throws: TrialError.self) { try TrainRunner.run(try tinyTrial(steps: 8), in: dir, context: RunContext(threads: 1)) }
}
