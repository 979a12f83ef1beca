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
        ("executor = pbs", "c:1: executor must be local or slurm, got \"pbs\""),
        ("slurm_partition = a;b", "c:1: slurm_partition must be a Slurm name (letters, digits, _ - . ,), got \"a;b\""),
        (
            "slurm_time_limit = 4h",
            "c:1: slurm_time_limit must be minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S, got \"4h\""
        ),
        ("slurm_time_limit = 1:2:3:4", "c:1: slurm_time_limit must be minutes"),
        (
            "slurm_extra_args = --qos=x ; rm",
            "c:1: slurm_extra_args holds \";\"; expected sbatch options, each starting with -"
        ),
        ("slurm_vldd = vldd", "c:1: slurm_vldd must be an absolute path, got \"vldd\""),
        ("slurm_extra_args = --qos=x --job-name=y", "c:1: slurm_extra_args holds --job-name=y, which vldd sets itself"),
        ("slurm_poll_seconds = 0", "c:1: slurm_poll_seconds must be in 0.2...3600.0 seconds, got 0"),
    ])
    func errorsNameTheLine(text: String, expected: String) {
        do {
            _ = try DaemonConfig.parse(text, file: "c")
            Issue.record("accepted \(text)")
        } catch {
            #expect("\(error)".hasPrefix(expected), "\(error)")
        }
    }

    @Test func slurmSettingsParse() throws {
        let config = try DaemonConfig.parse(
            """
            executor = slurm
            slurm_partition = gpu-a,cpu
            slurm_account = lab_1
            slurm_time_limit = 2-04:00:00
            slurm_extra_args = --qos=long  --constraint=avx512
            slurm_max_jobs = 12
            slurm_poll_seconds = 0.5
            slurm_vldd = /opt/vld/vldd
            """, file: "c")
        #expect(config.executor == .slurm && config.slurm.partition == "gpu-a,cpu" && config.slurm.account == "lab_1")
        #expect(config.slurm.timeLimit == "2-04:00:00" && config.slurm.maxJobs == 12 && config.slurm.pollSeconds == 0.5)
        #expect(config.slurm.extraArguments == ["--qos=long", "--constraint=avx512"])
        #expect(config.slurm.vldd == "/opt/vld/vldd")
        for limit in ["30", "30:00", "4:00:00", "2-0", "2-4:30", "1-00:00:00", "UNLIMITED"] {
            #expect(SlurmSettings.isTimeLimit(limit), "\(limit)")
        }
        for limit in ["", "-1", "1-", "a", "1:2:3:4", "1-2-3", "1:-2"] {
            #expect(!SlurmSettings.isTimeLimit(limit), "\(limit)")
        }
        // The executor is the running daemon's until it restarts; the Slurm settings reload.
        let next = try DaemonConfig.parse("executor = local", file: "c").reloadable(
            from: DaemonConfig.parse("executor = slurm\nslurm_max_jobs = 3", file: "c"))
        #expect(next.executor == .local && next.slurm.maxJobs == 3)
    }

    @Test func slurmCommandsAreTimedAndTheirAnswersRead() throws {
        // A command past its limit is killed and reported as unreachable, in about the limit.
        let t0 = Date()
        let slow = SlurmClient.run(["sleep", "5"], timeout: 0.3)
        #expect(slow.timedOut && slow.status == nil && Date().timeIntervalSince(t0) < 3)
        let client = SlurmClient(timeoutSeconds: 0.3)
        #expect(throws: SlurmError(message: "sleep did not answer within 0.3 s", kind: .unreachable)) {
            _ = try client.call(["sleep", "5"])
        }
        // A missing command ran not at all; Slurm's answers are sorted into down, "not now" and no.
        func kind(_ stderr: String) -> SlurmError.Kind? {
            do {
                _ = try client.call(["sh", "-c", "echo '\(stderr)' >&2; exit 1"])
                return nil
            } catch { return (error as? SlurmError)?.kind }
        }
        do {
            _ = try client.call(["vld-no-such-command"])
            Issue.record("ran")
        } catch let e as SlurmError { #expect(e.kind == .notRun && e.unreachable) }
        #expect(kind("sbatch: error: Invalid partition name specified") == .refused)
        #expect(kind("error: Unable to contact slurm controller (connect failure)") == .unreachable)
        #expect(kind("sbatch: error: QOSMaxSubmitJobPerUserLimit") == .busy)
        #expect(kind("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying") == .busy)
        do {
            _ = try client.call(["sh", "-c", "echo 'sbatch: error: Invalid partition name specified' >&2; exit 1"])
        } catch let e as SlurmError {
            #expect(e.message == "sh failed (exit 1): sbatch: error: Invalid partition name specified")
        }
        #expect(try client.call(["printf", "a\\nb"]) == "a\nb")
        #expect(SlurmClient.exitStatus("75:0") == (75, nil) && SlurmClient.exitStatus("0:9") == (nil, 9))
        #expect(SlurmClient.exitStatus("x") == (nil, nil))
        // Held jobs are not ended; SPECIAL_EXIT is a hold.
        #expect(SlurmJobInfo(state: "PENDING", reason: "JobHeldAdmin").isHeld)
        #expect(SlurmJobInfo(state: "SPECIAL_EXIT").isHeld && !SlurmJobInfo(state: "SPECIAL_EXIT").isTerminal)
        #expect(!SlurmJobInfo(state: "PENDING", reason: "Resources").isHeld)
        // Options the executor sets itself are refused in slurm_extra_args; others pass.
        for option in [
            "--job-name=x", "-Jx", "-J", "--output=/tmp/o", "--array=1-3", "--no-requeue", "-M", "--clusters=b",
            "--signal=USR1@60", "--mem=4G", "-c4",
        ] {
            #expect(SlurmSettings.reservedOption(option), "\(option)")
        }
        for option in ["--qos=long", "--constraint=avx512", "--hold", "--exclusive", "--gres=gpu:1", "-p"] {
            #expect(!SlurmSettings.reservedOption(option), "\(option)")
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
