// CheckpointTests.swift: exact round trips, Hugging Face compatibility, and refusal of damaged
// or unsupported files.

import Foundation
import Testing
import VLDModel
import VLDTensor

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

@Test(arguments: [Arch.gpt2, .llama])
func checkpointRoundTripsExactly(_ arch: Arch) throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 11)
    let model = try Transformer(config: tinyConfig(arch, schedule: .cyc(1)), pool: pool, rng: &rng)
    let dir = temporaryDirectory().appendingPathComponent("ck")
    try Checkpoint.save(model, to: dir)
    let back = try Checkpoint.loadModel(from: dir, pool: pool)
    #expect(back.config == model.config)
    #expect(back.params.array() == model.params.array())
    // Saving over an existing checkpoint replaces it and leaves no temporary directory behind.
    try Checkpoint.save(back, to: dir)
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.deletingLastPathComponent().path)
    #expect(names == ["ck"])
    let config =
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json")))
        as! [String: Any]
    #expect(config["vld_schedule"] as? String == "cyc(1)")
    #expect((config["architectures"] as? [String])?.first == (arch == .gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"))
}

@Test(arguments: ["hf-gpt2", "hf-llama"])
func huggingFaceCheckpointsGiveTheirLogits(_ name: String) throws {
    let expected =
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("expected.json")))
        as! [String: Any]
    let tokens = (expected["tokens"] as! [Int]).map(Int32.init)
    let rows = expected[name] as! [[Double]]
    let model = try Checkpoint.loadModel(from: fixtures.appendingPathComponent(name), pool: ThreadPool(threads: 1))
    try model.forward(inputs: tokens, B: 1, T: tokens.count)
    var worst = 0.0
    for (t, row) in rows.enumerated() {
        for (v, x) in model.logits(row: t).enumerated() {
            worst = max(worst, abs(Double(x) - row[v]) / (1e-4 + 1e-4 * abs(row[v])))
        }
    }
    #expect(worst <= 1, "logits differ from transformers by up to \(worst) x tolerance (1e-4 abs + 1e-4 rel)")
}

func corrupt(_ dir: URL, _ edit: (inout Data) -> Void) throws {
    let file = dir.appendingPathComponent("model.safetensors")
    var data = try Data(contentsOf: file)
    edit(&data)
    try data.write(to: file)
}

func loadError(_ dir: URL) -> String? {
    do { _ = try Checkpoint.loadModel(from: dir, pool: ThreadPool(threads: 1)); return nil } catch { return "\(error)" }
}

@Test func damagedCheckpointsAreReportedNotLoaded() throws {
    var rng = SeededRNG(seed: 1)
    let model = try Transformer(config: tinyConfig(.gpt2), pool: ThreadPool(threads: 1), rng: &rng)
    let root = temporaryDirectory()
    func fresh(_ n: String) throws -> URL {
        let d = root.appendingPathComponent(n)
        try Checkpoint.save(model, to: d)
        return d
    }
    let flipped = try fresh("flip")
    try corrupt(flipped) { $0[$0.count - 100] ^= 0x01 }
    #expect(loadError(flipped)?.contains("checksum") == true)

    let truncated = try fresh("trunc")
    try corrupt(truncated) { $0 = $0.prefix($0.count - 64) }
    #expect(loadError(truncated)?.contains("truncated") == true)

    let tiny = try fresh("tiny")
    try corrupt(tiny) { $0 = $0.prefix(5) }
    #expect(loadError(tiny)?.contains("truncated") == true)

    let header = try fresh("header")
    try corrupt(header) { $0[12] = 0x7B }
    #expect(loadError(header) != nil)
}

@Test func unsupportedConfigsAreRefusedNamingTheField() throws {
    let src = fixtures.appendingPathComponent("hf-llama")
    func withConfig(_ edit: (inout [String: Any]) -> Void) throws -> String? {
        let dir = temporaryDirectory()
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        var j =
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json")))
            as! [String: Any]
        edit(&j)
        try JSONSerialization.data(withJSONObject: j).write(to: dir.appendingPathComponent("config.json"))
        return loadError(dir)
    }
    #expect(try withConfig { $0["hidden_act"] = "gelu" }?.contains("hidden_act") == true)
    #expect(try withConfig { $0["attention_bias"] = true }?.contains("attention_bias") == true)
    #expect(
        try withConfig { $0["rope_parameters"] = ["rope_type": "yarn", "factor": 2.0] }?.contains("rope_type") == true)
    #expect(try withConfig { $0["model_type"] = "mistral" }?.contains("model_type") == true)
    #expect(try withConfig { $0["num_key_value_heads"] = 3 }?.contains("kvHeads") == true)
    #expect(try withConfig { $0["vld_schedule"] = "cyk(1)" }?.contains("vld_schedule") == true)
    // A config that disagrees with the tensors names the tensor.
    #expect(try withConfig { $0["intermediate_size"] = 48 }?.contains("mlp.gate_proj.weight") == true)
}

@Test func halfPrecisionTensorsAreRefusedNamingTheDtype() throws {
    let header = #"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#
    var data = Data()
    var n = UInt64(header.utf8.count).littleEndian
    withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
    data.append(Data(header.utf8))
    data.append(Data(count: 4))
    #expect(throws: CheckpointError("f: tensor a has dtype F16; vld loads float32 (F32) checkpoints only")) {
        _ = try Safetensors.decode(data, file: "f")
    }
}

@Test func resumeRefusesFilesFromDifferentCheckpoints() throws {
    let pool = ThreadPool(threads: 1)
    var rng = SeededRNG(seed: 2)
    let model = try Transformer(config: tinyConfig(.llama), pool: pool, rng: &rng)
    let opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig())
    let root = temporaryDirectory()
    let a = root.appendingPathComponent("a"), b = root.appendingPathComponent("b")
    try Checkpoint.save(
        model, to: a, optimizer: opt, state: TrainingState(step: 1, rng: rng, dataCursor: 0, adamW: opt.config))
    model.params.base[0] += 1
    try Checkpoint.save(
        model, to: b, optimizer: opt, state: TrainingState(step: 2, rng: rng, dataCursor: 0, adamW: opt.config))
    try FileManager.default.removeItem(at: a.appendingPathComponent("model.safetensors"))
    try FileManager.default.copyItem(
        at: b.appendingPathComponent("model.safetensors"), to: a.appendingPathComponent("model.safetensors"))
    #expect(throws: CheckpointError.self) { _ = try Checkpoint.loadForResume(from: a, pool: pool) }
}

@Test func hostileShapesAreRefusedWithoutOverflow() throws {
    func file(_ header: String, dataBytes: Int) -> Data {
        var data = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { data.append(contentsOf: $0) }
        data.append(Data(header.utf8))
        data.append(Data(count: dataBytes))
        return data
    }
    let huge = file(#"{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}}"#, dataBytes: 8)
    #expect(throws: CheckpointError.self) { _ = try Safetensors.decode(huge, file: "f") }
    let negative = file(#"{"a":{"dtype":"F32","shape":[-2,-2],"data_offsets":[0,16]}}"#, dataBytes: 16)
    #expect(throws: CheckpointError.self) { _ = try Safetensors.decode(negative, file: "f") }
    let overlap = file(
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
        dataBytes: 12)
    #expect(throws: CheckpointError.self) { _ = try Safetensors.decode(overlap, file: "f") }
}

/// state.json of vld 0.1.0 (written with Foundation's JSONEncoder, RNG words as JSON numbers
/// beyond 2^53) reads exactly, and the current format (words as decimal strings) round-trips.
@Test func trainingStateReadsEarlierFilesExactlyAndRoundTrips() throws {
    let earlier = """
        {
          "adamW" : { "beta1" : 0.9, "beta2" : 0.95, "eps" : 1e-08, "weightDecay" : 0.1 },
          "dataCursor" : 16,
          "files" : { "config.json" : "5f272e1c", "model.safetensors" : "b2c7c7e9", "optimizer.safetensors" : "399dc1f5" },
          "rng" : { "state" : [ 1067052276226736619, 16251873443908987754, 7686820400691755696, 867071173629374052 ] },
          "step" : 4,
          "vldVersion" : "0.1.0"
        }
        """
    let state = try TrainingState(json: Data(earlier.utf8))
    #expect(
        state.rng.state == [
            1_067_052_276_226_736_619, 16_251_873_443_908_987_754, 7_686_820_400_691_755_696,
            867_071_173_629_374_052,
        ])
    #expect(state.step == 4 && state.dataCursor == 16 && state.adamW == AdamWConfig())
    #expect(state.files["model.safetensors"] == "b2c7c7e9")
    let again = try TrainingState(json: Data(state.json.serialized().utf8))
    #expect(again == state)
    var broken = earlier.replacingOccurrences(of: "867071173629374052 ]", with: "867071173629374052, 5 ]")
    #expect(throws: CheckpointError.self) { try TrainingState(json: Data(broken.utf8)) }
    broken = earlier.replacingOccurrences(of: "\"step\" : 4,", with: "")
    let error = #expect(throws: CheckpointError.self) { try TrainingState(json: Data(broken.utf8)) }
    #expect("\(error.map { "\($0)" } ?? "")".contains("step"))
}
