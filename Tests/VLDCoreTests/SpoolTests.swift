// SpoolTests.swift: the consumer algorithm on real files, links, FIFOs and devices in a fresh
// state tree, with a real queue database.

import Foundation
import Testing
import VLDStore
@testable import VLDCore

/// A state tree in a fresh temporary directory with a consumer over it.
final class SpoolFixture {
    let root: URL
    let tree: StateTree
    let queue: JobQueue
    let consumer: SpoolConsumer

    init(config: DaemonConfig = DaemonConfig(), log: Logger = .silent) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("vldspool-\(UUID().uuidString)")
        tree = StateTree(root: root.path)
        try tree.create()
        queue = try JobQueue(path: tree.database)
        let policy = SubmitPolicy(daemonUID: getuid(), groupID: getgid(), groupName: "test")
        consumer = SpoolConsumer(tree: tree, queue: queue, config: config, policy: policy, log: log)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func drop(_ name: String, _ text: String) {
        _ = FileManager.default.createFile(atPath: tree.incoming + "/" + name, contents: Data(text.utf8))
    }

    func listing(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// The errors of the one reason file in rejected/.
    func reasons() throws -> [String] {
        let files = listing(tree.rejected).filter { $0.hasSuffix(".reason.json") }
        guard files.count == 1 else { return ["\(files.count) reason files"] }
        let data = try Data(contentsOf: URL(fileURLWithPath: tree.rejected + "/" + files[0]))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return object?["errors"] as? [String] ?? []
    }
}

let tinyManifest =
    #"{"name": "tiny", "task": {"type": "igsm", "maxOps": 2, "maxEdges": 8, "maxWords": 128, "evalProblems": 4, "evalOps": [1, 2]}, "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 128}, "train": {"steps": 10, "batch": 4}}"#
let gridManifest =
    #"// comments are allowed in manifests\#n{"name": "grid", "task": {"type": "igsm", "maxOps": 2, "maxEdges": 8, "maxWords": 128, "evalProblems": 4, "evalOps": [1, 2]}, "model": {"dModel": 32, "layers": 2, "heads": 2, "context": 128}, "train": {"steps": 10, "batch": 4}, "grid": {"model.schedule": ["base", "cyc(1)"], "seed": [1, 2]}}"#

struct SpoolTests {
    @Test func acceptsAValidManifestIntoTheQueueAndAccepted() throws {
        let f = try SpoolFixture()
        f.drop("exp.json", gridManifest)
        let decisions = f.consumer.rescan()
        #expect(decisions.count == 1)
        guard case .accepted(let manifest, let jobs, false) = decisions[0].decision else {
            Issue.record("\(decisions[0].decision)")
            return
        }
        #expect(jobs.count == 4)
        #expect(f.listing(f.tree.incoming).isEmpty)
        #expect(f.listing(f.tree.accepted) == ["\(manifest).json"])
        let names = try f.queue.jobs().map(\.name).sorted()
        #expect(
            names == [
                "grid/000-schedule=base-seed1", "grid/001-schedule=base-seed2",
                "grid/002-schedule=cyc-1--seed1", "grid/003-schedule=cyc-1--seed2",
            ])
        let record = try #require(try f.queue.manifest(manifest))
        #expect(
            record.sha256 == SHA256.hex(Array(gridManifest.utf8)) && record.trialCount == 4
                && record.submitterUID == getuid())
        // The job's params are the resolved trial: defaults written out, the grid value applied.
        let params = try #require(try f.queue.jobs().first { $0.name.hasSuffix("cyc-1--seed2") }?.params)
        let compact = params.filter { !$0.isWhitespace }
        #expect(compact.contains(#""schedule":"cyc(1)""#) && compact.contains(#""seed":2"#), "\(params)")
    }

    @Test func ignoresDotfilesPartsAndOtherNames() throws {
        let f = try SpoolFixture()
        for name in [".hidden.json", "x.json.part", "x.tmp", "notes.txt", "x.json~"] { f.drop(name, tinyManifest) }
        #expect(f.consumer.rescan().allSatisfy { $0.decision == .ignored })
        #expect(try f.queue.jobs().isEmpty)
        #expect(f.listing(f.tree.incoming).count == 5)
    }

    @Test func aCrashBetweenCommitAndMoveCreatesNoDuplicate() throws {
        let f = try SpoolFixture()
        f.drop("a.json", tinyManifest)
        f.consumer.afterCommit = { false }
        guard case .skipped = f.consumer.consider(Array("a.json".utf8)) else { Issue.record("not skipped"); return }
        #expect(f.listing(f.tree.incoming) == ["a.json"])
        #expect(try f.queue.jobs().count == 1)
        f.consumer.afterCommit = nil
        let again = f.consumer.consider(Array("a.json".utf8))
        guard case .accepted(let manifest, _, true) = again else { Issue.record("\(again)"); return }
        #expect(try f.queue.jobs().count == 1)
        #expect(f.listing(f.tree.accepted) == ["\(manifest).json"])
        #expect(f.listing(f.tree.incoming).isEmpty)
    }

    @Test func aYoungUnparsableFileIsDeferredAndAnOldOneRejected() throws {
        var config = DaemonConfig()
        config.ingestGraceSeconds = 3600
        let f = try SpoolFixture(config: config)
        f.drop("half.json", String(tinyManifest.prefix(40)))
        guard case .deferred = f.consumer.consider(Array("half.json".utf8)) else {
            Issue.record("not deferred"); return
        }
        #expect(f.listing(f.tree.incoming) == ["half.json"])
        // The writer finishes: the same name is now accepted.
        f.drop("half.json", tinyManifest)
        guard case .accepted = f.consumer.consider(Array("half.json".utf8)) else {
            Issue.record("not accepted"); return
        }

        config.ingestGraceSeconds = 0
        f.consumer.update(config: config)
        f.drop("broken.json", "{\"name\": ")
        guard case .rejected(let why) = f.consumer.consider(Array("broken.json".utf8)) else {
            Issue.record("not rejected"); return
        }
        #expect(why.first?.hasPrefix("not valid JSON") == true)
    }

    /// A writer that puts a manifest straight into incoming/ in small pieces, with the daemon
    /// looking after each one: every state of the file is left to wait, whatever byte it stops
    /// at (inside a literal, a comment, a `\u` escape, a multi-byte character), and the finished
    /// file is queued once.
    @Test func aFileStillBeingWrittenIsLeftToWaitWhereverItStops() throws {
        var config = DaemonConfig()
        config.ingestGraceSeconds = 3600
        let f = try SpoolFixture(config: config)
        let text =
            "// drafted by José: the op count is 2 🙂\n"
            + tinyManifest.replacingOccurrences(
                of: #""name": "tiny","#,
                with: #""name": "tiny", "seed": 1, "priority": -1, "resources": {"threads": 1},"#
            )
            .replacingOccurrences(of: #""maxOps": 2,"#, with: #""maxOps": 2, // two ops, café\#n"#)
        let bytes = Array(text.utf8)
        let path = f.tree.incoming + "/slow.json"
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644)
        defer { close(fd) }
        var written = 0
        var decisions: [String] = []
        while written < bytes.count {
            let n = min(3, bytes.count - written)
            #expect(bytes[written..<(written + n)].withUnsafeBytes { write(fd, $0.baseAddress, n) } == n)
            written += n
            let decision = f.consumer.consider(Array("slow.json".utf8))
            if written < bytes.count, case .deferred = decision { continue }
            decisions.append("\(written): \(decision)")
        }
        #expect(decisions.count == 1 && decisions[0].hasPrefix("\(bytes.count): accepted"), "\(decisions.prefix(3))")
        #expect(f.listing(f.tree.rejected).isEmpty)
        #expect(try f.queue.jobs().count == 1)
    }

    /// inotify reports a name more than once (CREATE, CLOSE_WRITE, MOVED_TO): the second report
    /// of a name already moved to rejected/ is not an error.
    @Test func aNameAlreadyRejectedIsSkippedQuietly() throws {
        let lines = LockedLines()
        let f = try SpoolFixture(log: Logger(minimum: .info) { lines.append($0) })
        _ = FileManager.default.createFile(
            atPath: f.tree.incoming + "/bad\u{7}name.json", contents: Data(tinyManifest.utf8))
        f.drop("bad.json", "{")
        var config = DaemonConfig()
        config.ingestGraceSeconds = 0
        f.consumer.update(config: config)
        for name in ["bad\u{7}name.json", "bad.json"] {
            guard case .rejected = f.consumer.consider(Array(name.utf8)) else {
                Issue.record("\(name) not rejected"); continue
            }
            guard case .skipped = f.consumer.consider(Array(name.utf8)) else {
                Issue.record("\(name) not skipped"); continue
            }
        }
        #expect(f.listing(f.tree.rejected).count == 4)
        #expect(lines.all.filter { $0.hasPrefix("<3>") || $0.hasPrefix("<4>") }.isEmpty, "\(lines.all)")
        #expect(lines.all.filter { $0.hasPrefix("<5>spool: rejected") }.count == 2)
    }

    /// rejected/ keeps entries for rejected_keep_days and at most rejected_max_mib, oldest
    /// going first, an entry and its reason file together.
    @Test func rejectedEntriesAreKeptWithinTheirAgeAndSize() throws {
        var config = DaemonConfig()
        config.ingestGraceSeconds = 0
        config.rejectedMaxMiB = 1
        let f = try SpoolFixture(config: config)
        func diskBytes() -> Int {
            f.listing(f.tree.rejected).reduce(0) { total, name in
                var st = stat()
                return total + (lstat(f.tree.rejected + "/" + name, &st) == 0 ? Int(st.st_blocks) * 512 : 0)
            }
        }
        for i in 0..<3 {
            // 600 KiB that is not JSON (written for real, so it takes disk space).
            f.drop("junk\(i).json", String(repeating: "x", count: 600 << 10))
            guard case .rejected = f.consumer.consider(Array("junk\(i).json".utf8)) else {
                Issue.record("junk\(i) not rejected"); continue
            }
            #expect(diskBytes() <= 1 << 20, "\(f.listing(f.tree.rejected))")
            let kept = f.listing(f.tree.rejected)
            #expect(kept.count == 2 && kept.allSatisfy { $0.hasPrefix("junk\(i).json.") }, "\(kept)")
        }
        // Small entries stay until they are older than rejected_keep_days.
        config.rejectedMaxMiB = 256
        config.rejectedKeepDays = 1
        f.consumer.update(config: config)
        f.drop("old.json", "{")
        f.drop("new.json", "[")
        for name in ["old.json", "new.json"] { _ = f.consumer.consider(Array(name.utf8)) }
        #expect(f.listing(f.tree.rejected).count == 6)
        let twoDaysAgo = timespec(tv_sec: time(nil) - 2 * 86_400, tv_nsec: 0)
        for name in f.listing(f.tree.rejected) where !name.hasPrefix("new.json") {
            var times = [twoDaysAgo, twoDaysAgo]
            #expect(utimensat(AT_FDCWD, f.tree.rejected + "/" + name, &times, 0) == 0)
        }
        f.consumer.pruneRejected(reload: true)
        let left = f.listing(f.tree.rejected)
        #expect(left.count == 2 && left.allSatisfy { $0.hasPrefix("new.json.") }, "\(left)")

        // A directory moved into incoming/ is rejected, counted with what it holds and deleted
        // whole (links in it are removed, not followed).
        config.rejectedMaxMiB = 1
        f.consumer.update(config: config)
        let outside = f.root.appendingPathComponent("keep.txt").path
        _ = FileManager.default.createFile(atPath: outside, contents: Data("keep".utf8))
        let dir = f.tree.incoming + "/dir.json"
        #expect(mkdir(dir, 0o755) == 0 && mkdir(dir + "/sub", 0o755) == 0)
        _ = FileManager.default.createFile(atPath: dir + "/sub/big", contents: Data(repeating: 0x61, count: 1200 << 10))
        #expect(symlink(outside, dir + "/link") == 0)
        guard case .rejected = f.consumer.consider(Array("dir.json".utf8)) else {
            Issue.record("the directory was not rejected"); return
        }
        #expect(f.listing(f.tree.rejected).allSatisfy { !$0.hasPrefix("dir.json.") }, "\(f.listing(f.tree.rejected))")
        #expect(FileManager.default.fileExists(atPath: outside))
    }

    /// With rejected/ removed by hand, the next rejection creates it again and lands there.
    @Test func aMissingRejectedDirectoryIsCreatedAgain() throws {
        var config = DaemonConfig()
        config.ingestGraceSeconds = 0
        let f = try SpoolFixture(config: config)
        #expect(rmdir(f.tree.rejected) == 0)
        f.drop("bad.json", "{")
        guard case .rejected = f.consumer.consider(Array("bad.json".utf8)) else { Issue.record("not rejected"); return }
        #expect(f.listing(f.tree.rejected).count == 2)
        #expect(f.listing(f.tree.incoming).isEmpty)
    }

    @Test func invalidManifestsAreRejectedWithEveryErrorAndItsPath() throws {
        let f = try SpoolFixture()
        f.drop(
            "bad.json",
            #"{"name": "bad", "task": {"type": "igsm"}, "model": {"schedule": "cyk(2)"}, "train": {"steps": 0}, "extra": 1}"#
        )
        guard case .rejected = f.consumer.consider(Array("bad.json".utf8)) else { Issue.record("not rejected"); return }
        let reasons = try f.reasons()
        #expect(reasons.contains { $0.hasPrefix("model.schedule: ") && $0.contains("cyk(2)") })
        #expect(reasons.contains { $0.hasPrefix("train.steps: ") })
        #expect(reasons.contains { $0.hasPrefix("extra: ") })
        let moved = f.listing(f.tree.rejected).filter { !$0.hasSuffix(".reason.json") }
        #expect(moved.count == 1 && moved[0].hasPrefix("bad.json."))
        #expect(try f.queue.jobs().isEmpty)
    }

    static let hostile: [String: String] = [
        "nested.json": String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000),
        "dup.json": #"{"name": "a", "name": "b"}"#,
        "traversal.json": tinyManifest.replacingOccurrences(of: #""tiny""#, with: #""../../etc""#),
        "threads.json": tinyManifest.replacingOccurrences(
            of: #""name": "tiny","#, with: #""name": "t", "resources": {"threads": 500},"#),
        "steps.json": tinyManifest.replacingOccurrences(of: #""steps": 10"#, with: #""steps": 99999999"#),
    ]

    @Test(arguments: [
        ("nested.json", "nesting deeper than 64 levels"), ("dup.json", "duplicate key \"name\""),
        ("traversal.json", "name: \"../../etc\" is not a valid name"), ("threads.json", "maxThreads"),
        ("steps.json", "train.steps"),
    ])
    func hostileContentIsRejectedWithAReason(name: String, expected: String) throws {
        var config = DaemonConfig()
        config.ingestGraceSeconds = 3600  // even young files: these errors are not a file cut short
        let f = try SpoolFixture(config: config)
        f.drop(name, Self.hostile[name]!)
        guard case .rejected = f.consumer.consider(Array(name.utf8)) else { Issue.record("not rejected"); return }
        let reasons = try f.reasons()
        #expect(reasons.contains { $0.contains(expected) }, "\(reasons)")
    }

    @Test func hostileEntriesAreRejectedWithoutBeingOpened() throws {
        let f = try SpoolFixture()
        let inbox = f.tree.incoming
        let secret = f.root.appendingPathComponent("secret.json").path
        _ = FileManager.default.createFile(atPath: secret, contents: Data(tinyManifest.utf8))
        #expect(symlink(secret, inbox + "/link.json") == 0)
        #expect(link(secret, inbox + "/hard.json") == 0)
        #expect(mkfifo(inbox + "/fifo.json", 0o644) == 0)
        #expect(mkdir(inbox + "/dir.json", 0o755) == 0)
        let huge = open(inbox + "/huge.json", O_CREAT | O_WRONLY, 0o644)
        #expect(ftruncate(huge, 2 << 30) == 0)
        close(huge)
        var expected: [String: String] = [
            "link.json": "symbolic link", "hard.json": "2 hard links", "fifo.json": "a FIFO",
            "dir.json": "a directory", "huge.json": "the limit max_manifest_bytes",
        ]
        if getuid() == 0 {  // mknod needs root; without it the other entries are still checked
            #expect(mknod(inbox + "/dev.json", S_IFCHR | 0o600, dev_t(0x103) /* 1:3, /dev/null */) == 0)
            expected["dev.json"] = "a device node"
        }
        // Names that are not UTF-8 or hold a newline.
        let bad: [UInt8] = [0x66, 0xff, 0xfe] + Array(".json".utf8)
        let badPath = pathBytes(inbox, bad)
        _ = badPath.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { creat($0.baseAddress!, 0o644) }
        }
        _ = FileManager.default.createFile(atPath: inbox + "/new\nline.json", contents: Data(tinyManifest.utf8))

        let decisions = f.consumer.rescan()
        #expect(decisions.count == expected.count + 2)
        for (name, decision) in decisions {
            let display = String(decoding: name, as: UTF8.self)
            guard case .rejected(let why) = decision else { Issue.record("\(display): \(decision)"); continue }
            if let want = expected[display] {
                #expect(why.joined().contains(want), "\(display): \(why)")
            } else if name == bad {
                #expect(why == ["the file name is not valid UTF-8"])
            } else {
                #expect(why == ["the file name contains control characters"])
            }
        }
        #expect(f.listing(inbox).isEmpty)
        #expect(try f.queue.jobs().isEmpty)
        // The symlink's target was neither read nor moved.
        #expect(FileManager.default.fileExists(atPath: secret))
        // Every reason file is valid JSON and names a printable file.
        for name in f.listing(f.tree.rejected) where name.hasSuffix(".reason.json") {
            #expect(!name.contains("\n"))
            let data = try Data(contentsOf: URL(fileURLWithPath: f.tree.rejected + "/" + name))
            #expect((try? JSONSerialization.jsonObject(with: data)) != nil)
        }
    }

    @Test(.enabled(if: getuid() == 0, "chown needs root (CI runs as root)"))
    func filesOfUsersOutsideTheSubmitGroupAreRejected() throws {
        let f = try SpoolFixture()
        f.drop("other.json", tinyManifest)
        #expect(chown(f.tree.incoming + "/other.json", 65534, 65534) == 0)
        guard case .rejected(let why) = f.consumer.consider(Array("other.json".utf8)) else {
            Issue.record("not rejected"); return
        }
        #expect(why.first?.contains("uid 65534") == true && why.first?.contains("may not submit") == true)
    }

    @Test func theStateTreeHasTheModesOfTheSpec() throws {
        let f = try SpoolFixture()
        for (path, mode) in f.tree.directories {
            var st = stat()
            #expect(lstat(path, &st) == 0)
            #expect(st.st_mode & 0o7777 == mode, "\(path)")
        }
        #expect(chmod(f.tree.incoming, 0o777) == 0)
        #expect(try f.tree.create() == ["mode of \(f.tree.incoming) 777 -> 1730"])
    }
}

/// Log lines collected from any thread.
final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

/// A pipeline is queued with each job's stage and needs; a checkpoint path is refused unless
/// it lies under the operator's checkpoint_roots.
@Test func intakeQueuesStagesWithTheirNeedsAndChecksCheckpointPaths() {
    let body =
        #""task": {"type": "bios", "people": 12}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
    let staged = #"{"name": "p", "stages": {"b": {\#(body), "init": "@a"}, "a": {\#(body), "grid": {"seed": [1]}}}}"#
    guard case let .valid(_, _, jobs, _) = ManifestIntake.check(Data(staged.utf8), config: DaemonConfig()) else {
        Issue.record("the pipeline was refused")
        return
    }
    #expect(jobs.map(\.stage) == ["a", "b"])
    #expect(jobs.map(\.needs) == [[], [0]])
    let initPath = #"{"name": "q", \#(body), "init": "/srv/ckpt/run1"}"#
    guard case let .invalid(issues) = ManifestIntake.check(Data(initPath.utf8), config: DaemonConfig()) else {
        Issue.record("a checkpoint path was accepted without checkpoint_roots")
        return
    }
    #expect(issues.map(\.path) == ["init"])
    #expect(issues.first?.message.contains("checkpoint_roots is not set") == true)
    var config = DaemonConfig()
    config.checkpointRoots = ["/srv/ckpt"]
    guard case .valid = ManifestIntake.check(Data(initPath.utf8), config: config) else {
        Issue.record("a checkpoint path under checkpoint_roots was refused")
        return
    }
    #expect(config.allowsCheckpoint("/srv/ckpt/a/../b") && !config.allowsCheckpoint("/srv/ckpt/../etc"))
    #expect(!config.allowsCheckpoint("/srv/ckpt2/x"))
}

/// job:<id> must name a job of the submitter's own that has succeeded.
@Test func aJobReferenceMustBeTheSubmittersOwnFinishedJob() throws {
    let f = try SpoolFixture()
    let other = try f.queue.ingest(
        NewManifest(
            sourceKey: "k", fileName: "t.json", submitterUID: 4242, sha256: "00", body: #"{"name":"t"}"#, name: "t",
            kind: "train", jobs: [NewJob(trialIndex: 0, name: "t", params: "{}")]))
    let id = other.jobIDs[0]
    let body =
        #""task": {"type": "bios", "people": 12}, "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}"#
    let text = Data(#"{"name": "q", \#(body), "init": "job:\#(id)"}"#.utf8)
    func verdict(_ uid: UInt32) -> [String] {
        guard
            case let .invalid(issues) = ManifestIntake.check(
                text, config: DaemonConfig(), submitter: uid,
                job: {
                    try? f.queue.job($0)
                })
        else { return [] }
        return issues.map(\.description)
    }
    #expect(verdict(1000) == ["init: job:\(id): no job \(id) of yours (a manifest may read only its submitter's jobs)"])
    #expect(verdict(4242) == ["init: job:\(id) is queued; name a job that has succeeded"])
    _ = try f.queue.claimNext(boot: try f.queue.startBoot(uuid: "b", pid: 1, version: "t"), maxThreads: 8)
    try f.queue.finish(id, outcome: .succeeded(outbox: "/o/\(id)"))
    #expect(verdict(4242) == [])
}
