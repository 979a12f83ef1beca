// TeacherCacheTests.swift: distill's `cacheTeacher: "topk(K)"`. With K = V the cache is the
// teacher, so a cached student trains bit for bit as a live one; a second student of the same
// data stream reuses the file and is charged no teacher FLOPs; with K < V a rebuilt row keeps the
// teacher's top-K probabilities and the rest's mass; mistakes are refused at their JSON path.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel
import VLDTasks
import VLDTensor

private let task = #""task": {"type": "bios", "people": 16, "exposures": 10}"#

@Test func aFullTeacherCacheTrainsTheStudentAsTheLiveTeacherAndIsReusedBySiblings() throws {
    let kd = #"{"loss": "kd_forward", "temperature": 2, "lambda": 0.5"#
    let text =
        #"{"name": "c", "seed": 2, "resources": {"threads": 1}, "stages": {"#
        + #""teacher": {\#(task), "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 48}, "train": {"steps": 40, "batch": 8, "lr": 0.01, "evalEvery": 40}}, "#
        + #""student": {"kind": "distill", "teacher": "@teacher", \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "#
        + #""train": {"steps": 12, "batch": 8, "lr": 0.01, "evalEvery": 12}, "#
        + #""grid": {"model.schedule": ["base", "cyc(1)"], "distill": [\#(kd)}, \#(kd), "cacheTeacher": "topk(65536)"}]}}}}"#
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    #expect(e.trials.count == 5)
    let out = freshDirectory()
    var lines: [String] = []
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { lines.append($0) }, progress: { _ in },
        shouldStop: { false })
    #expect(outcome.completed == 5)
    let layout = ExperimentDirectory(out: out, name: "c")
    func results(_ i: Int) throws -> JSONValue {
        try JSONValue.parse(Data(contentsOf: layout.published(e.trials[i]).results))
    }
    let cached = (1...4).filter { (e.trials[$0].manifest.body as? DistillBody)?.distill.cacheTeacher != nil }
    let live = (1...4).filter { !cached.contains($0) }
    #expect(cached.count == 2 && live.count == 2)
    for (l, c) in zip(live, cached) {
        let a = try results(l), b = try results(c)
        #expect(a["metrics"] == b["metrics"], "trial \(l) against \(c)")
        #expect(a["training"]?["evalLoss"] == b["training"]?["evalLoss"])
    }
    // The first cached student built the file; the second (the looped one) read it.
    let first = try results(cached[0]), second = try results(cached[1])
    #expect(first["distill"]?["cache"]?["built"] == .bool(true))
    #expect(second["distill"]?["cache"]?["built"] == .bool(false))
    #expect(first["distill"]?["cache"]?["file"] == second["distill"]?["cache"]?["file"])
    #expect(second["flops"]?["teacher"] == .number(0))
    #expect(first["flops"]?["teacher"] == (try results(live[0]))["flops"]?["teacher"])
    let files = try FileManager.default.contentsOfDirectory(atPath: layout.cache.path).filter {
        $0.hasPrefix("teacher-")
    }
    #expect(files.count == 1, "\(files)")
    #expect(lines.contains { $0.contains("teacher cache: building") })
    #expect(lines.contains { $0.contains("teacher cache: reusing") })
}

@Test func aTopKCacheKeepsTheTeachersTopProbabilitiesAndTheMassOfTheRest() throws {
    let text =
        #"{"name": "k", "seed": 3, \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 3, "batch": 4}}"#
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let body = try #require(e.trials[0].manifest.body as? TrainBody)
    let mixture = try body.makeMixture()
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 5)
    let teacher = try Transformer(config: body.modelConfig(vocab: mixture.tokenizer.vocabSize), pool: pool, rng: &rng)
    let V = teacher.config.vocab, K = 5, B = 4, T = 48
    let url = freshDirectory().appendingPathComponent("t.bin")
    let cache = try #require(
        try TeacherCache.build(
            at: url, teacher: teacher, mixture: mixture, seed: 3, B: B, T: T, steps: 3, K: K, shouldStop: { false },
            log: { _ in }))
    #expect(TeacherCache(url: url, K: K, V: V, steps: 3, rows: B * T) != nil)
    #expect(TeacherCache(url: url, K: K + 1, V: V, steps: 3, rows: B * T) == nil)
    var cursor = 0
    var rebuilt = [Float](repeating: 0, count: B * T * V)
    for step in 0..<3 {
        let batch = try mixture.batch(seed: 3, cursor: cursor, B: B, T: T)
        cursor = batch.nextCursor
        try teacher.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
        try rebuilt.withUnsafeMutableBufferPointer {
            try cache.fill(step: step, targets: batch.targets, into: $0.baseAddress!)
        }
        var checked = 0
        for n in 0..<(B * T) where batch.targets[n] >= 0 {
            let live = (0..<V).map { Double(teacher.logitsBuffer[n * V + $0]) }
            let mine = (0..<V).map { Double(rebuilt[n * V + $0]) }
            func softmax(_ z: [Double]) -> [Double] {
                let m = z.max()!
                let e = z.map { exp($0 - m) }
                let s = e.reduce(0, +)
                return e.map { $0 / s }
            }
            let p: [Double] = softmax(live)
            let q: [Double] = softmax(mine)
            let top: [Int] = Array(p.indices.sorted { p[$0] > p[$1] }.prefix(K))
            for i in top {
                let gap: Double = abs(p[i] - q[i])
                #expect(gap < 1e-5)
            }
            let rest: [Int] = (0..<V).filter { !top.contains($0) }
            let restLive: Double = rest.map { p[$0] }.reduce(0, +)
            let restCached: Double = rest.map { q[$0] }.reduce(0, +)
            #expect(abs(restLive - restCached) < 1e-5)
            // The rest is spread evenly.
            let restLogits = Set(rest.map { mine[$0] })
            #expect(restLogits.count == 1)
            checked += 1
        }
        #expect(checked > 0)
        // Another batch's targets are refused: the cache holds one data stream.
        var wrong = batch.targets
        if let i = wrong.firstIndex(where: { $0 >= 0 }) { wrong[i] = -1 }
        #expect(throws: TrialError.self) {
            try rebuilt.withUnsafeMutableBufferPointer {
                try cache.fill(step: step, targets: wrong, into: $0.baseAddress!)
            }
        }
    }
}

@Test func teacherCacheMistakesNameTheirPath() {
    let base =
        #"{"name": "d", "kind": "distill", "teacher": "/t", \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
    #expect(
        issues(base + #", "distill": {"cacheTeacher": "top(3)"}}"#)
            .contains { $0.hasPrefix(#"distill.cacheTeacher: "top(3)" is not accepted; expected "topk(K)""#) })
    #expect(
        issues(base + #", "distill": {"cacheTeacher": "topk(0)"}}"#).contains { $0.hasPrefix("distill.cacheTeacher:") })
    #expect(
        issues(base + #", "distill": {"loss": "seqkd", "cacheTeacher": "topk(8)"}}"#)
            .contains { $0.hasPrefix("distill.cacheTeacher: a cache holds the teacher on the training data; seqkd") })
    #expect(
        issues(base + #", "distill": {"loss": "kd_reverse", "onPolicy": 0.5, "cacheTeacher": "topk(8)"}}"#)
            .contains { $0.contains("onPolicy trains on generated tokens") })
    #expect(issues(base + #", "distill": {"loss": "topk", "k": 4, "cacheTeacher": "topk(8)"}}"#).isEmpty)
    #expect(
        issues(base + #", "distill": {"loss": "ce", "cacheTeacher": "topk(8)"}}"#)
            .contains { $0.hasPrefix("distill.cacheTeacher: loss ce does not read the teacher in training") })
}
