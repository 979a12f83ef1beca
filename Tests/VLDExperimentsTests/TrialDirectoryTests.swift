// TrialDirectoryTests.swift: the trial layout's commit marker and the one durable-write helper.

import Foundation
import Testing
@testable import VLDExperiments

private func scratch() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vld-trialdir-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

struct TrialDirectoryTests {
    @Test func aTrialIsCompleteOnlyWithARegularResultsFile() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = TrialDirectory(root.appendingPathComponent("000-all-seed1"))
        #expect(!dir.isComplete && dir.readResults() == nil && dir.readMetrics().isEmpty)
        try FileManager.default.createDirectory(at: dir.url, withIntermediateDirectories: false)
        let elsewhere = root.appendingPathComponent("results-elsewhere.json")
        try writeAtomically("{\"metrics\": {}}\n", to: elsewhere)
        try FileManager.default.createSymbolicLink(at: dir.results, withDestinationURL: elsewhere)
        #expect(!dir.isComplete, "a link named results.json is not a commit marker")
        try FileManager.default.removeItem(at: dir.results)
        try writeAtomically("{\"step\": 1}\nnot json\n{\"step\": 2}\n", to: dir.metrics)
        try writeAtomically("{\"metrics\": {\"evalLoss\": 1.5}}\n", to: dir.results)
        #expect(dir.isComplete)
        #expect(dir.readResults()?["metrics"]?["evalLoss"] == .number(1.5))
        #expect(dir.readMetrics().map { $0["step"] } == [.number(1), .number(2)], "an unreadable line is skipped")
    }

    @Test func publishingIsOneRenameOfTheWorkDirectory() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let layout = ExperimentDirectory(out: root, name: "exp")
        #expect(
            layout.source.lastPathComponent == "experiment.json"
                && layout.summaryCSV.lastPathComponent == Summary.csvFile)
        let work = TrialDirectory(layout.partial.appendingPathComponent("000-all-seed1"))
        try FileManager.default.createDirectory(at: work.url, withIntermediateDirectories: true)
        try writeAtomically("{}\n", to: work.results)
        let final = TrialDirectory(layout.root.appendingPathComponent("000-all-seed1"))
        try work.publish(as: final)
        #expect(final.isComplete && !FileManager.default.fileExists(atPath: work.path))
    }

    @Test func durableWritesReplaceWholeAndLeaveNoTemporaryFile() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("state.json")
        try writeFileAtomically(Data("old\n".utf8), to: file.path)
        try writeFileAtomically(Data("new\n".utf8), to: file.path, mode: 0o640)
        #expect(try String(contentsOf: file, encoding: .utf8) == "new\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path) == ["state.json"])
        var st = stat()
        #expect(stat(file.path, &st) == 0 && st.st_mode & 0o777 == 0o640)
    }

    @Test func aLinkAtTheTemporaryNameIsNotFollowed() throws {
        let root = try scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let victim = root.appendingPathComponent("victim")
        try writeAtomically("keep\n", to: victim)
        let target = root.appendingPathComponent("out.json")
        try FileManager.default.createSymbolicLink(
            atPath: root.appendingPathComponent(".out.json.tmp-\(getpid())").path,
            withDestinationPath: victim.path)
        #expect(throws: TrialError.self) { try writeAtomically("x\n", to: target) }
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep\n")
        #expect(!FileManager.default.fileExists(atPath: target.path))
    }

    @Test func aWriteIntoAMissingDirectoryIsARetryableErrorNamingThePath() throws {
        let path = "/nonexistent-\(UUID().uuidString)/results.json"
        do {
            try writeFileAtomically(Data("x".utf8), to: path)
            Issue.record("the write should have failed")
        } catch let e as TrialError {
            #expect(e.retryable && e.message.contains("/nonexistent-") && e.message.contains("No such file"))
        }
    }
}
