// TeacherCache.swift: `"cacheTeacher": "topk(K)"` of a distill trial. The teacher's K largest
// logits, and the log-sum-exp of all of them, at every scored position of every training batch,
// computed once into one file and then read instead of running the teacher on each step. Every
// trial with the same teacher weights, data stream (tasks, seed, batch, context, steps) and K
// finds the same file: a KD student and its looped sibling of the same seed train on the same
// batches, so the second reuses what the first built.
//
// A cached row gives the loss the teacher's exact probabilities on its top K tokens and the exact
// mass of all the others, spread evenly over them: the teacher's logits are rebuilt as z_i on the
// top K and lse + log(tail / (V - K)) elsewhere. With K = V that is the teacher itself, bit for
// bit. With K < V the tail's shape is lost (its mass is kept); Anshumann et al. 2025, "Sparse Logit
// Sampling: Accelerating Knowledge Distillation in LLMs", show that top-K caches bias the student
// this way, which is why `sampled(K)` exists as a loss and why this is an opt-in.
//
// File (little-endian): "VLDTOPK1"; UInt32 K, V, steps, rows (B x T); per scored position in
// step order: Float32 lse, K Float32 logits, K UInt16 token ids (most likely first); then per step
// UInt64 offset of its first record and UInt64 FNV-1a of its targets (the check that a step's
// batch is the one cached); then UInt64 offset of that table. Written through
// `writeFileAtomically`, so a reader never sees half a cache.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

final class TeacherCache {
    static let magic = Array("VLDTOPK1".utf8)
    let url: URL
    let K: Int, V: Int, steps: Int, rows: Int
    private let data: Data
    private let table: Int
    /// Seconds this process spent building the file (0 when it was there).
    private(set) var buildSeconds = 0.0

    var bytes: Int { data.count }
    var recordBytes: Int { 4 + 6 * K }

    /// The file name for a teacher's weights and a data stream.
    static func fileName(teacherDirectory: URL, data description: String, K: Int) throws -> String {
        var h = FNV1a()
        for file in ["config.json", "model.safetensors"] {
            let d = try Data(contentsOf: teacherDirectory.appendingPathComponent(file))
            d.withUnsafeBytes { h.mix(bytes: $0) }
        }
        Array(description.utf8).withUnsafeBytes { h.mix(bytes: $0) }
        return "teacher-top\(K)-" + String(h.value, radix: 16) + ".bin"
    }

    /// Opens the cache at `url`, or nil when it is missing or was written for another shape.
    init?(url: URL, K: Int, V: Int, steps: Int, rows: Int) {
        guard let d = try? Data(contentsOf: url, options: .alwaysMapped), d.count >= 32 + 8 else { return nil }
        func u32(_ at: Int) -> Int {
            Int(UInt32(littleEndian: d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: at, as: UInt32.self) }))
        }
        let tableAt = Int(
            UInt64(littleEndian: d.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: d.count - 8, as: UInt64.self) }))
        guard Array(d.prefix(8)) == TeacherCache.magic, u32(8) == K, u32(12) == V, u32(16) == steps, u32(20) == rows,
            tableAt >= 24, tableAt + 16 * steps + 8 == d.count
        else { return nil }
        (self.url, self.K, self.V, self.steps, self.rows, data, table) = (url, K, V, steps, rows, d, tableAt)
    }

    static func targetsHash(_ targets: [Int32]) -> UInt64 {
        var h = FNV1a()
        targets.withUnsafeBytes { h.mix(bytes: $0) }
        return h.value
    }

    /// Runs `teacher` on the first `steps` training batches (the data cursor from 0, as the
    /// training loop draws them) and writes the cache to `url`. Returns nil when `shouldStop`
    /// asked to stop part-way (nothing is written).
    static func build(
        at url: URL, teacher: Transformer, mixture: TaskMixture, seed: UInt64, B: Int, T: Int, steps: Int, K: Int,
        shouldStop: () -> Bool, log: (String) -> Void
    ) throws -> TeacherCache? {
        let V = teacher.config.vocab
        guard V <= 65536, (1...V).contains(K) else {
            throw TrialError("a teacher cache holds 1 to V token ids of 16 bits; K = \(K), V = \(V)")
        }
        let start = Date()
        var offsets: [(UInt64, UInt64)] = []
        offsets.reserveCapacity(steps)
        var stopped = false
        do {
            try writeFileAtomically(to: url.path) { file in
                var header = magic
                for x in [K, V, steps, B * T] { withUnsafeBytes(of: UInt32(x).littleEndian) { header += $0 } }
                try file.write(Data(header))
                var offset = UInt64(header.count)
                var cursor = 0
                var record: [UInt8] = []
                for s in 0..<steps {
                    if shouldStop() {
                        stopped = true
                        throw CancellationError()
                    }
                    let batch = try mixture.batch(seed: seed, cursor: cursor, B: B, T: T)
                    cursor = batch.nextCursor
                    try teacher.forward(inputs: batch.inputs, B: B, T: T, segments: batch.segments)
                    let logits = teacher.logitsBuffer
                    offsets.append((offset, targetsHash(batch.targets)))
                    record.removeAll(keepingCapacity: true)
                    for n in 0..<(B * T) where batch.targets[n] >= 0 {
                        let row = logits + n * V
                        var m = -Float.infinity
                        for v in 0..<V { m = max(m, row[v]) }
                        var sum: Float = 0
                        for v in 0..<V { sum += expf(row[v] - m) }
                        let top = topKIndices(row, V, K)
                        withUnsafeBytes(of: (m + logf(sum)).bitPattern.littleEndian) { record += $0 }
                        for i in top { withUnsafeBytes(of: row[i].bitPattern.littleEndian) { record += $0 } }
                        for i in top { withUnsafeBytes(of: UInt16(i).littleEndian) { record += $0 } }
                    }
                    try record.withUnsafeBytes { try file.write($0) }
                    offset += UInt64(record.count)
                    if (s + 1) % max(1, steps / 10) == 0 || s + 1 == steps {
                        let elapsed = Date().timeIntervalSince(start)
                        log(
                            "teacher cache: \(s + 1)/\(steps) steps, \(formatNumber(Double(offset) / 1_048_576, significant: 3)) MiB, "
                                + "eta \(formatDuration(elapsed / Double(s + 1) * Double(steps - s - 1)))")
                    }
                }
                var tail: [UInt8] = []
                for (o, h) in offsets {
                    withUnsafeBytes(of: o.littleEndian) { tail += $0 }
                    withUnsafeBytes(of: h.littleEndian) { tail += $0 }
                }
                withUnsafeBytes(of: offset.littleEndian) { tail += $0 }
                try file.write(Data(tail))
            }
        } catch is CancellationError where stopped {
            return nil
        }
        guard let cache = TeacherCache(url: url, K: K, V: V, steps: steps, rows: B * T) else {
            throw TrialError("teacher cache \(url.path): unreadable right after it was written", retryable: true)
        }
        cache.buildSeconds = Date().timeIntervalSince(start)
        return cache
    }

    /// The cache of `teacher` (its checkpoint in `dir`) for a distill trial's training stream:
    /// found in the run's cache directory (or the trial's own), or built there now. Nil when a stop
    /// was requested while it was being built.
    static func openOrBuild(K k: Int, teacher: Transformer, at dir: URL, body: TrainBody, setup: HookSetup) throws
        -> TeacherCache?
    {
        let K = min(k, teacher.config.vocab)
        let B = body.train.batch, T = body.model.context, steps = body.train.steps
        let stream = JSONValue.object(
            [
                ("task", JSONValue.object(body.resolvedFields)["task"] ?? .null),
                ("seed", .string(String(setup.evaluator.seed))), ("batch", JSONValue(B)), ("context", JSONValue(T)),
                ("steps", JSONValue(steps)), ("vld", .string(VLD.version)),
            ]
        ).serialized()
        let directory = setup.context.cacheDirectory ?? setup.directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(try fileName(teacherDirectory: dir, data: stream, K: K))
        if let found = TeacherCache(url: url, K: K, V: teacher.config.vocab, steps: steps, rows: B * T) {
            setup.log("teacher cache: reusing \(url.path) (top \(K), \(found.bytes) bytes)")
            return found
        }
        setup.log("teacher cache: building \(url.path) (top \(K) of \(teacher.config.vocab), \(steps) steps)")
        return try build(
            at: url, teacher: teacher, mixture: setup.mixture, seed: setup.evaluator.seed, B: B, T: T, steps: steps,
            K: K, shouldStop: setup.context.shouldStop, log: setup.log)
    }

    /// results.json's `distill.cache`: the file, its size beside the dense logits', and whether
    /// this trial built it (only then are the teacher's FLOPs its own).
    func results(built: Bool) -> JSONValue {
        .object([
            ("k", JSONValue(K)), ("file", .string(url.lastPathComponent)), ("bytes", JSONValue(bytes)),
            ("denseBytes", JSONValue(Double(steps) * Double(rows) * Double(V) * 4)), ("built", .bool(built)),
            ("buildSeconds", JSONValue(buildSeconds)),
        ])
    }

    /// The teacher's logits of `step`'s batch, rebuilt into `out` (rows x V) at the scored rows
    /// (`targets` >= 0; the loss reads no other row).
    func fill(step: Int, targets: [Int32], into out: FPtr) throws {
        guard step >= 0 && step < steps, targets.count == rows else {
            throw TrialError(
                "teacher cache \(url.lastPathComponent) holds \(steps) steps of \(rows) positions; asked for step \(step)"
            )
        }
        try data.withUnsafeBytes { raw in
            let entry = table + 16 * step
            var at = Int(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: entry, as: UInt64.self)))
            let hash = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: entry + 8, as: UInt64.self))
            guard hash == TeacherCache.targetsHash(targets) else {
                throw TrialError(
                    "teacher cache \(url.path) does not match step \(step)'s batch (another data stream); remove it to rebuild it"
                )
            }
            func float(_ offset: Int) -> Float {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            }
            for n in 0..<rows where targets[n] >= 0 {
                let lse = float(at)
                let row = out + n * V
                var mass: Float = 0
                for j in 0..<K {
                    mass += expf(float(at + 4 + 4 * j) - lse)
                }
                // The mass outside the top K, spread evenly; 100 nats below the row when there is none.
                let rest = V - K
                let fill = rest > 0 && 1 - mass > 1e-30 ? lse + logf((1 - mass) / Float(rest)) : lse - 100
                row.update(repeating: fill, count: V)
                for j in 0..<K {
                    let id = UInt16(
                        littleEndian: raw.loadUnaligned(fromByteOffset: at + 4 + 4 * K + 2 * j, as: UInt16.self))
                    row[Int(id)] = float(at + 4 + 4 * j)
                }
                at += recordBytes
            }
        }
    }
}
