// DistillTests.swift: the distill kind: its manifest, a pipeline teacher -> students run by
// `vldctl run`'s runner, the student distilled with KD matching its teacher better than a CE-only
// student of the same budget, and a teacher that cannot serve refused with the reason.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel

private let task = #""task": {"type": "bios", "people": 16, "exposures": 10}"#

/// teacher: 2 blocks, d 32, trained longer; students: 1 block, d 16, the same budget: CE-only,
/// kd_forward (T 1, lambda 1) and jsd(beta 0), which is the same loss (forward KL) by another kernel
/// path. (kd_forward with T 2, lambda 0.9 ended above the CE student's KL at this budget: 60 steps
/// at lr 0.01 are too few for the softened target to pay off, so the test uses T 1.)
private func distillPipeline(teacherSteps: Int = 150, studentSteps: Int = 60) -> String {
    #"{"name": "d", "seed": 2, "resources": {"threads": 1}, "stages": {"#
        + #""teacher": {\#(task), "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 48}, "train": {"steps": \#(teacherSteps), "batch": 8, "lr": 0.01, "evalEvery": \#(teacherSteps)}}, "#
        + #""student": {"kind": "distill", "teacher": "@teacher", \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "#
        + #""train": {"steps": \#(studentSteps), "batch": 8, "lr": 0.01, "evalEvery": \#(studentSteps)}, "#
        + #""grid": {"distill": [{"loss": "ce"}, {"loss": "kd_forward", "temperature": 1, "lambda": 1}, {"loss": "jsd", "beta": 0}]}}}}"#
}

@Test func aDistillManifestResolvesWithItsLossAndTeacher() throws {
    let e = try Experiment.parse(Data(distillPipeline().utf8), cores: 2)
    #expect(e.stages.map(\.name) == ["teacher", "student"])
    let student = e.trials[2].manifest
    #expect(student.kind == "distill")
    let body = try #require(student.body as? DistillBody)
    #expect(body.teacher == .stage("teacher", trial: nil))
    #expect(body.distill.loss == .kdForward(temperature: 1, lambda: 1))
    guard case let .object(fields) = student.json else { return }
    #expect(
        fields.map(\.0) == [
            "name", "kind", "seed", "priority", "resources", "teacher", "task", "model", "train", "distill",
        ])
    #expect(
        student.json["distill"]
            == .object([("loss", .string("kd_forward")), ("temperature", .number(1)), ("lambda", .number(1))]))
    #expect(e.trials[1].condition == "student loss=ce")
}

@Test func distillManifestMistakesNameTheirPaths() {
    let base =
        #"{"name": "d", "kind": "distill", \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
    #expect(issues(base + "}").contains { $0.hasPrefix("teacher: missing; expected the teacher's checkpoint") })
    #expect(
        issues(base + #", "teacher": "/t", "distill": {"loss": "kl"}}"#)
            .contains { $0.hasPrefix(#"distill.loss: "kl" is not accepted; expected one of ce, kd_forward"#) })
    #expect(
        issues(base + #", "teacher": "/t", "distill": {"loss": "seqkd"}}"#)
            .contains { $0.hasPrefix(#"distill.loss: "seqkd" is not available in vld"#) })
    #expect(
        issues(base + #", "teacher": "/t", "distill": {"loss": "jsd", "temperature": 2}}"#)
            .contains { $0.hasPrefix("distill.temperature: unknown key") })
    #expect(
        issues(base + #", "teacher": "/t", "distill": {"loss": "kd_reverse", "lambda": 2}}"#)
            .contains { $0.hasPrefix("distill.lambda: ") })
}

@Test func aStudentDistilledFromItsTeacherMatchesItBetterThanACEOnlyStudent() throws {
    let text = distillPipeline()
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let out = freshDirectory()
    var lines: [String] = []
    let outcome = try ExperimentRunner.run(
        e, source: Data(text.utf8), out: out, threads: 1, log: { lines.append($0) }, progress: { _ in },
        shouldStop: { false })
    #expect(outcome.completed == 4)
    let layout = ExperimentDirectory(out: out, name: "d")
    let ce = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[1]).results))
    let kd = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[2]).results))
    func kl(_ r: JSONValue) -> Double { r["metrics"]?["distill.klTeacherStudent"]?.doubleValue ?? .nan }
    let jsd = try JSONValue.parse(Data(contentsOf: layout.published(e.trials[3]).results))
    // Same data, steps and initialization: only the loss differs.
    #expect(kl(kd) < 0.9 * kl(ce), "KL(teacher || student): kd \(kl(kd)), ce \(kl(ce))")
    #expect(kl(jsd) == kl(kd) && jsd["training"]?["evalLoss"] == kd["training"]?["evalLoss"])
    #expect(kd["teacher"]?["checkpoint"] == .string("@teacher"))
    #expect(kd["teacher"]?["model"]?["dModel"] == .number(32))
    #expect(kd["flops"]?["teacher"]?.doubleValue ?? 0 > kd["flops"]?["train"]?.doubleValue ?? .infinity)
    #expect(kd["distill"]?["loss"] == .string("kd_forward"))
    #expect(lines.contains { $0.contains("teacher @teacher: gpt2 d=32 L=2") })
    // The summary carries the teacher's metrics next to the students'.
    let summary = try String(contentsOf: layout.summaryCSV, encoding: .utf8)
    #expect(summary.contains("distill.klTeacherStudent") && summary.contains("teacherFlops"))
}

@Test func aTeacherWithAnotherVocabularyIsRefused() throws {
    // The teacher learns a different task mixture: its tokenizer differs.
    let text =
        #"{"name": "v", "seed": 2, "resources": {"threads": 1}, "stages": {"#
        + #""teacher": {"task": {"type": "random-tokens", "symbols": 12}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 2, "batch": 4}}, "#
        + #""student": {"kind": "distill", "teacher": "@teacher", \#(task), "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 2, "batch": 4}}}}"#
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    let error = #expect(throws: TrialError.self) {
        try ExperimentRunner.run(
            e, source: Data(text.utf8), out: freshDirectory(), threads: 1, log: { _ in }, progress: { _ in },
            shouldStop: { false })
    }
    #expect(
        error?.message.contains("its tokenizer differs from the student's tasks") == true,
        "\(String(describing: error))")
}
