// ScheduleTests.swift: layer schedules as specs/vld.md 6.1 defines them, and the accounting.

import Testing
import VLDModel

@Test func workedExamplesOfTheSpec() throws {
    func s(_ t: String, _ L: Int = 4) throws -> [Int] { try LayerSchedule(parsing: t).indices(layers: L) }
    #expect(try s("base") == [0, 1, 2, 3])
    #expect(try s("cyc(2)") == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
    #expect(try s("seq(1)") == [0, 0, 1, 1, 2, 2, 3, 3])
    #expect(try s("inv(2)") == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3])
    #expect(try s("part(2,3,1)") == [0, 1, 2, 3, 2, 3])
    #expect(try s("part(2,3,1,append)") == [0, 1, 2, 3, 2, 3])
    #expect(try s("part(1,2,2,inplace)") == [0, 1, 2, 1, 2, 1, 2, 3])
    #expect(try s("mcyc(1)") == [0, 1, 2, 1, 2, 3])
    #expect(try s("alt") == [0, 1, 1, 2, 2, 3])
    #expect(try s("[0, 1,1, 0]", 2) == [0, 1, 1, 0])
    #expect(try s("0,1,1,0", 2) == [0, 1, 1, 0])
    #expect(try s("cyc(0)") == [0, 1, 2, 3])
}

@Test(arguments: [
    "cyk(2)", "cyc(-1)", "cyc()", "seq(a)", "part(3,2,1)", "[0,x]", "", "base(1)", "part(1,2,1,sideways)",
])
func invalidSchedulesListTheAcceptedForms(_ text: String) {
    do {
        _ = try LayerSchedule(parsing: text)
        Issue.record("\(text) parsed")
    } catch let e as ScheduleError {
        #expect(e.message.contains("is not a schedule"))
        #expect(e.message.contains("base, seq(k), cyc(k), inv(k), mcyc(k)"))
    } catch { Issue.record("unexpected \(error)") }
}

@Test func outOfRangeIndicesAreRefusedWithTheRange() throws {
    #expect(throws: ScheduleError(message: "layer index 4 is out of range: the model has layers 0..3")) {
        try LayerSchedule(parsing: "[0,4]").indices(layers: 4)
    }
    #expect(throws: ScheduleError.self) { try LayerSchedule.part(a: 1, b: 5, k: 1, inplace: false).indices(layers: 4) }
    #expect(throws: ScheduleError.self) { try LayerSchedule.mcyc(1).indices(layers: 2) }
}

@Test func schedulesRoundTripThroughJSON() throws {
    for text in ["base", "cyc(2)", "inv(1)", "part(1,2,3,inplace)", "[0,1,1]"] {
        let s = try LayerSchedule(parsing: text)
        let data = try JSONEncoder().encode(s)
        #expect(try JSONDecoder().decode(LayerSchedule.self, from: data) == s)
    }
    #expect(try JSONDecoder().decode(LayerSchedule.self, from: Data("[2,0]".utf8)) == .explicit([2, 0]))
}

@Test func accountingMatchesHandCounts() {
    // tiny benchmark config: d=64, L=2, V=128, 80 positions, tied gpt2.
    let tiny = ModelConfig(arch: .gpt2, dModel: 64, layers: 2, heads: 2, context: 80, vocab: 128)
    #expect(tiny.blockMatrixParams == 12 * 64 * 64)
    #expect(tiny.totalParams == 128 * 64 + 80 * 64 + 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64)
    #expect(tiny.nonEmbeddingParams == 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64)
    // Reuse adds applications and FLOPs, never parameters.
    var looped = tiny
    looped.schedule = .cyc(1)
    #expect(looped.totalParams == tiny.totalParams)
    #expect(looped.applications == 4 && looped.vldDepth == 2 && tiny.vldDepth == 0)
    #expect(looped.appliedMatrixParams == 4 * 12 * 64 * 64 + 128 * 64)
    // The convention of torch_gpt_bench.py: 6 N_applied BT + 12 D d T BT.
    let flops = looped.trainFlopsPerStep(batch: 32, seqLen: 64)
    let dense: Double = 6 * Double(4 * 49152 + 8192) * 2048
    let attention: Double = 12 * 4 * 64 * 64 * 2048
    #expect(flops == dense + attention)
    // specs/tts.md 8.5: F_block = 24 d^2 + 4 t d for d_ff = 4d, plus 2 d V for the head.
    let perToken: Double = 2 * (24 * 64 * 64 + 4 * 10 * 64) + 2 * 64 * 128
    #expect(tiny.forwardFlopsPerToken(attending: 10) == perToken)
    let llama = ModelConfig(arch: .llama, dModel: 128, layers: 4, heads: 4, kvHeads: 2, context: 128, vocab: 256)
    #expect(llama.ffnHidden == 352)  // round_up(8*128/3, 32)
    #expect(llama.qkvWidth == 128 + 2 * 64)
    let llamaBlock: Int = 128 * 256 + 128 * 128 + 3 * 128 * 352 + 2 * 128
    let llamaTotal: Int = 2 * 256 * 128 + 4 * llamaBlock + 128
    #expect(llama.totalParams == llamaTotal)
}

@Test func invalidConfigsNameTheField() {
    #expect(throws: ConfigError.self) {
        try ModelConfig(arch: .gpt2, dModel: 10, layers: 1, heads: 3, context: 4, vocab: 5).validate()
    }
    let gqa = ModelConfig(arch: .gpt2, dModel: 8, layers: 1, heads: 2, kvHeads: 1, context: 4, vocab: 5)
    #expect(throws: ConfigError(message: "kvHeads must equal heads for gpt2 (grouped-query attention is llama only)")) {
        try gqa.validate()
    }
}

import Foundation

@Test func hugeRepeatCountsAreRefusedBeforeAnyArithmetic() throws {
    for text in ["cyc(9223372036854775807)", "part(0,1,9223372036854775807)", "seq(5000)", "inv(4611686018427387904)"] {
        #expect(throws: ScheduleError.self, "\(text)") { try LayerSchedule(parsing: text).indices(layers: 2) }
    }
    #expect(try LayerSchedule.cyc(1023).indices(layers: 4).count == 4096)
}

@Test func oversizedConfigsAreRefused() {
    let huge = ModelConfig(arch: .gpt2, dModel: 1 << 40, layers: 1, heads: 1, context: 4, vocab: 5)
    #expect(throws: ConfigError.self) { try huge.validate() }
    let tooMany = ModelConfig(arch: .llama, dModel: 65536, layers: 4096, heads: 1, context: 4, vocab: 5)
    #expect(throws: ConfigError.self) { try tooMany.validate() }
}
