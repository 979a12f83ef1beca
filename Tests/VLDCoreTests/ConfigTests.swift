// ConfigTests.swift: vldd.conf parsing and its error messages.

import Foundation
import Testing
@testable import VLDCore

struct ConfigTests {
    @Test func emptyFileGivesTheDocumentedDefaults() throws {
        let config = try DaemonConfig.parse("# nothing\n\n", file: "vldd.conf")
        #expect(config == DaemonConfig())
        #expect(config.workers == 1 && config.threadsPerJob == 2 && config.limits.maxManifestBytes == 1 << 20)
    }

    @Test func valuesCommentsAndSpacing() throws {
        let config = try DaemonConfig.parse(
            """
            state_dir = /srv/vld   # trailing comment
              workers=3
            max_steps = 5000
            retry_base_seconds = 0.5
            """, file: "c")
        #expect(config.stateDirectory == "/srv/vld" && config.workers == 3 && config.limits.maxSteps == 5000)
        #expect(config.retryBaseSeconds == 0.5)
    }

    @Test(arguments: [
        ("workerz = 2", "c:1: unknown key \"workerz\" (did you mean workers?); known keys: "),
        ("workers = two", "c:1: workers must be an integer, got \"two\""),
        ("workers = 0", "c:1: workers must be in 1...64, got 0"),
        ("workers = 1\nworkers = 2", "c:2: workers is set again (first on line 1)"),
        ("just text", "c:1: expected key = value, got \"just text\""),
        ("rescan_seconds = nan", "c:1: rescan_seconds must be a number of seconds, got \"nan\""),
        ("threads_per_job = 8\nmax_threads = 4", "c:1: threads_per_job (8) exceeds max_threads (4)"),
        ("submit_group = a b", "c:1: submit_group must be a group name, got \"a b\""),
    ])
    func errorsNameTheLine(text: String, expected: String) {
        do {
            _ = try DaemonConfig.parse(text, file: "c")
            Issue.record("accepted \(text)")
        } catch {
            #expect("\(error)".hasPrefix(expected), "\(error)")
        }
    }

    @Test func reloadKeepsThePathsOfTheRunningConfig() throws {
        let running = try DaemonConfig.parse("state_dir = /a\nworkers = 1", file: "c")
        let edited = try DaemonConfig.parse("state_dir = /b\nworkers = 4", file: "c")
        let next = running.reloadable(from: edited)
        #expect(next.stateDirectory == "/a" && next.workers == 4)
    }

    @Test func theShippedConfigParsesAndDocumentsEveryKey() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../etc/vldd/vldd.conf")
        let text = try String(contentsOf: url, encoding: .utf8)
        _ = try DaemonConfig.parse(text, file: url.path)
        for (key, _) in DaemonConfig.keys {
            #expect(text.contains("\(key) ="), "etc/vldd/vldd.conf does not mention \(key)")
        }
    }

    @Test func sha256MatchesKnownDigests() {
        #expect(SHA256.hex(Array("".utf8)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array(repeating: UInt8(ascii: "a"), count: 1_000)
        #expect(SHA256.hex(long) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func logLinesCarryThePriorityAndQuoteValues() {
        let lines = Locked<[String]>([])
        let log = Logger(minimum: .info) { line in lines.update { $0.append(line) } }
        log.info("spool: accepted", ["file": "a b.json", "jobs": 3, "missing": nil])
        log.debug("not shown")
        log.error("bad", ["name": "x\ny"])
        #expect(lines.value == ["<6>spool: accepted file=\"a b.json\" jobs=3", "<3>bad name=\"x\\ny\""])
    }
}

/// A value shared between test threads.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func update(_ body: (inout T) -> Void) { lock.lock(); body(&stored); lock.unlock() }
}
