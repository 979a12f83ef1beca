// SteeringTests.swift: steering (issue 14, part 5, "Tests"): each direction builder on planted
// Gaussian clusters, the hook's semantics per position mode (the first generated token included,
// packed decoding rows included), projection, the scales, vectors saved and loaded back, and the
// steer kind end to end with its bad input named at the field.

import Foundation
import Testing
import VLDModel
import VLDTasks
import VLDTensor
@testable import VLDExperiments

/// Positive and negative clusters around a shared offset, apart along axis 3 (pairs share noise
/// on the other axes, as contrastive statements share their prompt).
private func clusters(_ n: Int = 200, width: Int = 8, seed: UInt64 = 3) -> ([[Double]], [[Double]]) {
    var rng = SeededRNG(seed: seed)
    var pos: [[Double]] = [], neg: [[Double]] = []
    for _ in 0..<n {
        let shared = (0..<width).map { j in 5 + (j == 0 ? 20 : 0) + 2 * rng.nextNormal() }
        var p = shared, q = shared
        p[3] += 1 + 0.3 * rng.nextNormal()
        q[3] -= 1 + 0.3 * rng.nextNormal()
        for j in 0..<width where j != 3 {
            p[j] += 0.2 * rng.nextNormal()
            q[j] += 0.2 * rng.nextNormal()
        }
        pos.append(p)
        neg.append(q)
    }
    return (pos, neg)
}

@Test(arguments: SteerMethod.allCases)
func eachDirectionBuilderFindsThePlantedAxis(_ method: SteerMethod) {
    let (pos, neg) = clusters()
    let v = Steering.direction(method, positive: pos, negative: neg)
    let axis = (0..<8).map { $0 == 3 ? 1.0 : 0 }
    #expect(Stats.cosine(v, axis) > 0.9, "\(method): cos \(Stats.cosine(v, axis))")
    // Its sign points from the negatives to the positives, whatever the builder.
    let swapped = Steering.direction(method, positive: neg, negative: pos)
    #expect(Stats.cosine(swapped, axis) < -0.9, "\(method) swapped")
}

@Test func theScalesOfAlpha() {
    let (pos, neg) = clusters()
    let v = Steering.direction(.diffMeans, positive: pos, negative: neg)
    let fit = pos + neg
    let unit = Steering.unitOfAlpha(v, scale: .unit, fit: fit)
    #expect(abs(Steering.norm(unit) - 1) < 1e-12)
    #expect(Steering.unitOfAlpha(v, scale: .raw, fit: fit) == v)
    // sigma: the spread of the projections on the direction (about 1 here: +-1 apart).
    let sigma = Steering.norm(Steering.unitOfAlpha(v, scale: .sigma, fit: fit))
    let p = fit.map { h in zip(h, unit).reduce(0) { $0 + $1.0 * $1.1 } }
    let m = Stats.mean(p)
    #expect(abs(sigma - (p.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(p.count - 1)).squareRoot()) < 1e-9)
    // residNorm: the mean norm of the activations (large: the shared offset).
    let resid = Steering.norm(Steering.unitOfAlpha(v, scale: .residNorm, fit: fit))
    #expect(abs(resid - Stats.mean(fit.map(Steering.norm))) < 1e-9 && resid > 20)
}

/// Runs a hook on a hand-built site and returns which rows it changed.
private func steeredRows(
    _ positions: SteerPositions, mode: SteerMode = .add, tokenPositions: [Int32], T: Int, cacheRows: [Int32]?,
    promptLengths: [Int]
) -> [Bool] {
    let C = 4, rows = tokenPositions.count
    var buffer = [Float](repeating: 1, count: rows * C)
    let hook = Steering.hook(
        site: .residPost, layer: 1, vector: [0, 2, 0, 0], mode: mode, positions: positions,
        promptLengths: { promptLengths[$0] })
    buffer.withUnsafeMutableBufferPointer { h in
        let hidden = h.baseAddress!
        tokenPositions.withUnsafeBufferPointer { tp in
            let positions = tp.baseAddress!
            func run(_ r: UnsafePointer<Int32>?) {
                hook(
                    ActivationSite(
                        kind: .residPost, position: 1, hidden: hidden, B: rows / T, T: T, C: C,
                        tokenPositions: positions, cacheRows: r))
                // Another site or layer is left alone.
                hook(
                    ActivationSite(
                        kind: .mlpOut, position: 1, hidden: hidden, B: rows / T, T: T, C: C,
                        tokenPositions: positions, cacheRows: r))
            }
            if let cacheRows { cacheRows.withUnsafeBufferPointer { run($0.baseAddress) } } else { run(nil) }
        }
    }
    return (0..<rows).map { buffer[$0 * C + 1] != 1 }
}

@Test func thePositionModesSteerTheTokensTheyName() {
    // A forward pass of 2 sequences x 4 tokens; prompts of 3 and 2 tokens.
    let forward: [Int32] = [0, 1, 2, 3, 0, 1, 2, 3]
    let lengths = [3, 2]
    #expect(
        steeredRows(.all, tokenPositions: forward, T: 4, cacheRows: nil, promptLengths: lengths)
            == .init(repeating: true, count: 8))
    // CAA: from the last prompt token (which produces the first generated token) on.
    #expect(
        steeredRows(.afterPrompt, tokenPositions: forward, T: 4, cacheRows: nil, promptLengths: lengths)
            == [false, false, true, true, false, true, true, true])
    // ActAdd: the prompt's front.
    #expect(
        steeredRows(.front(1), tokenPositions: forward, T: 4, cacheRows: nil, promptLengths: lengths)
            == [true, false, false, false, true, false, false, false])
    // Decoding, packed rows: row 0 is cache row 1 (prompt 2) at position 2, row 1 cache row 0
    // (prompt 3) at position 1: the first is generated (steered), the second still prompt.
    #expect(
        steeredRows(.afterPrompt, tokenPositions: [2, 1], T: 1, cacheRows: [1, 0], promptLengths: lengths)
            == [true, false])
    // The first generated token's own step: position = prompt length.
    #expect(steeredRows(.afterPrompt, tokenPositions: [3], T: 1, cacheRows: [0], promptLengths: lengths) == [true])
}

@Test func projectionRemovesTheDirection() {
    let C = 3
    var h: [Float] = [1, 2, 3, -1, 0.5, 4]
    let tp: [Int32] = [0, 1]
    let v: [Float] = [1, 1, 0]
    let hook = Steering.hook(
        site: .residPre, layer: 0, vector: v, mode: .projectOut, positions: .all, promptLengths: { _ in 1 })
    h.withUnsafeMutableBufferPointer { hp in
        tp.withUnsafeBufferPointer { t in
            hook(
                ActivationSite(
                    kind: .residPre, position: 0, hidden: hp.baseAddress!, B: 1, T: 2, C: C,
                    tokenPositions: t.baseAddress!, cacheRows: nil))
        }
    }
    for r in 0..<2 { #expect(abs(h[r * C] * v[0] + h[r * C + 1] * v[1]) < 1e-6) }
    #expect(h[2] == 3 && h[5] == 4, "the orthogonal part stays")
}

@Test func vectorsAreSavedAndLoadedWithTheirMetadata() throws {
    let url = freshDirectory().appendingPathComponent("vectors.safetensors")
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Steering.save(
        [("m0.T.layer1", [1, -2, 3.5]), ("m0.R.layer1", [0, 0, 1])],
        metadata: ["site": "resid_post", "m0": "crc32:0000abcd"], to: url)
    let (values, metadata) = try Steering.load(url, name: "m0.T.layer1")
    #expect(values == [1, -2, 3.5])
    #expect(metadata["site"] == "resid_post" && metadata["m0"] == "crc32:0000abcd")
    #expect(throws: TrialError.self) { try Steering.load(url, name: "m0.K.layer1") }
}

private let world = #"{"type": "world", "entities": 40, "popular": 10, "statements": 3, "evalItems": 20}"#

private func steerPipeline(_ steer: String, width: Int = 16, models: String = #"["@lm/0"]"#) -> String {
    #"{"name": "s", "seed": 1, "resources": {"threads": 1}, "stages": {"#
        + #""lm": {"task": \#(world), "#
        + #""model": {"arch": "llama", "dModel": \#(width), "layers": 2, "heads": 2, "context": 48}, "#
        + #""train": {"steps": 60, "batch": 16, "lr": 3e-3, "warmup": 10, "evalEvery": 60}}, "#
        + #""steer": {"kind": "steer", "models": \#(models), "task": \#(world), "#
        + #""steer": {"items": 20, "textDocuments": 4, "alphas": [-1, 0, 1]\#(steer)}}}}"#
}

private func run(_ text: String) throws -> (Experiment, URL) {
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    _ = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { _ in }, progress: { _ in }, shouldStop: { false })
    return (e, out)
}

@Test func aSteerTrialSweepsLayersAndAlphasWithItsControlsAndSavesItsVectors() throws {
    let (e, out) = try run(steerPipeline(""))
    let dir = ExperimentDirectory(out: out, name: "s").published(e.trials[1])
    let results = try JSONValue.parse(Data(contentsOf: dir.results))
    let model = try #require(results["models"]?.arrayValue?.first)
    // T, R, K and the two controls, 2 layers, 3 alphas.
    #expect(model["sweep"]?.arrayValue?.count == 5 * 2 * 3)
    #expect(model["steered"]?["site"] == .string("resid_post") && model["steered"]?["positions"] == .string("all"))
    #expect(model["best"]?["test"]?["kl"] != nil && model["best"]?["T-random"] != nil)
    #expect(model["C"]?["T"]?["R"] != nil && model["slopes"]?["antiSteerable"] != nil)
    // The controls add vectors of the truth direction's norm at every layer and alpha.
    let sweep = model["sweep"]?.arrayValue ?? []
    for row in sweep where row["direction"] == .string("T") {
        for control in ["T-random", "T-shuffled"] {
            let twin = sweep.first {
                $0["direction"] == .string(control) && $0["layer"] == row["layer"] && $0["alpha"] == row["alpha"]
            }
            let a = try #require(row["vectorNorm"]?.doubleValue), b = try #require(twin?["vectorNorm"]?.doubleValue)
            #expect(abs(a - b) <= 1e-4 * max(1, a), "\(control) layer \(row["layer"]!) alpha \(row["alpha"]!)")
        }
    }
    // Alpha 0 is the unsteered model: no change, no KL.
    for row in model["sweep"]?.arrayValue ?? [] where row["alpha"] == .number(0) {
        #expect(row["deltaT"] == .number(0) && row["kl"] == .number(0))
    }
    let vectors = dir.url.appendingPathComponent("vectors.safetensors")
    let (v, metadata) = try Steering.load(vectors, name: "m0.T.layer1")
    #expect(v.count == 16 && metadata["site"] == "resid_post" && metadata["m0"]?.hasPrefix("crc32:") == true)

    // Applied back to another model of the same width: the sweep uses the saved directions.
    let (e2, out2) = try run(steerPipeline(#", "vectors": "\#(vectors.path)""#))
    let again = try JSONValue.parse(
        Data(contentsOf: ExperimentDirectory(out: out2, name: "s").published(e2.trials[1]).results))
    #expect(again["models"]?.arrayValue?.first?["steered"]?["vectorsFrom"] == .string(vectors.path))
    // A model of another width is refused, naming the field.
    #expect {
        try run(steerPipeline(#", "vectors": "\#(vectors.path)""#, width: 24))
    } throws: { "\($0)".contains("steer.vectors: m0.T.layer0 in \(vectors.path) has width 16;") }
}

@Test func steerMistakesNameTheirFields() throws {
    #expect(
        issues(steerPipeline(#", "positions": "middle""#))
            .contains { $0.hasPrefix("stages.steer.steer.positions: \"middle\" is not accepted") })
    #expect(
        issues(steerPipeline(#", "mode": "projectOut""#))
            .contains { $0.hasPrefix("stages.steer.steer.alphas: projectOut removes the direction") })
    #expect(issues(steerPipeline("", models: "[]")).contains { $0.hasPrefix("stages.steer.models: is empty") })
    #expect(
        issues(steerPipeline(#", "vectors": "relative.safetensors""#))
            .contains { $0.hasPrefix("stages.steer.steer.vectors: \"relative.safetensors\" is not an absolute path") })
    // A layer the model does not have: named at validation when the model is a stage's.
    #expect(
        issues(steerPipeline(#", "layers": [0, 5]"#))
            .contains {
                $0.hasPrefix("stages.steer.steer.layers: layer 5 is outside @lm/0, which has 2 schedule positions")
            })
    // A model of another world's vocabulary, likewise.
    let other = steerPipeline("").replacingOccurrences(
        of: #""steer": {"kind": "steer", "models": ["@lm/0"], "task": {"type": "world", "entities": 40"#,
        with: #""steer": {"kind": "steer", "models": ["@lm/0"], "task": {"type": "world", "entities": 41"#)
    #expect(
        issues(other).contains {
            $0.hasPrefix("stages.steer.models[0]: @lm/0 learned another vocabulary")
                && $0.hasSuffix("a steered model learns the world the probes ask about")
        })
}
