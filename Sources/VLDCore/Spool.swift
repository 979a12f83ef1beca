// Spool.swift: the consumer of spool/incoming (specs/ops.md 1.4).
//
// For each candidate name:
//   1. names: dotfiles and anything not ending in .json (so *.part, *.tmp, *~) are never read;
//      a .json name with control characters, invalid UTF-8 or over 200 bytes is rejected;
//   2. lstat without following links: only a regular file with one link, at most
//      max_manifest_bytes, owned by a permitted submitter, is opened (a FIFO, device, socket,
//      directory, symlink or hard link is rejected without being opened);
//   3. open with O_NOFOLLOW|O_NONBLOCK and check that fstat names the same inode;
//   4. read and validate; a file whose JSON is cut short (the error is at its end) and that is
//      younger than ingest_grace is left for later (it may still be being written); older, or
//      with any other error, it is rejected;
//   5. commit the manifest and its jobs in one transaction, keyed by sha256(dev, ino, size,
//      mtime, name), so a redelivery of the same file after a crash creates nothing new;
//   6. move it to accepted/<manifest-id>.json (renameat2 NOREPLACE) and fsync both directories.
// Rejected entries move to rejected/<name>.<utc> with <name>.<utc>.reason.json beside them.

import CLinux
import Foundation
import VLDExperiments
import VLDStore

public enum SpoolDecision: Equatable, CustomStringConvertible {
    case ignored
    case deferred(String)
    case accepted(manifestID: Int, jobIDs: [Int], duplicate: Bool)
    case rejected([String])
    /// The entry vanished or could not be moved; nothing was recorded.
    case skipped(String)

    public var description: String {
        switch self {
        case .ignored: return "ignored"
        case .deferred(let why): return "deferred: \(why)"
        case .accepted(let m, let jobs, let dup):
            return "accepted manifest \(m) jobs \(jobs)\(dup ? " (already queued)" : "")"
        case .rejected(let why): return "rejected: \(why.joined(separator: "; "))"
        case .skipped(let why): return "skipped: \(why)"
        }
    }
}

/// Who may submit: root, the daemon's own user, and members of the submit group.
public struct SubmitPolicy: Sendable {
    public let daemonUID: uid_t
    public let groupID: gid_t
    public let groupName: String

    public init(daemonUID: uid_t, groupID: gid_t, groupName: String) {
        self.daemonUID = daemonUID
        self.groupID = groupID
        self.groupName = groupName
    }

    /// The policy for `config.submitGroup` (empty: the daemon's primary group).
    public static func resolve(_ config: DaemonConfig) throws -> SubmitPolicy {
        if config.submitGroup.isEmpty {
            let gid = getgid()
            return SubmitPolicy(daemonUID: getuid(), groupID: gid, groupName: groupName(gid) ?? "\(gid)")
        }
        guard let group = getgrnam(config.submitGroup) else {
            throw SystemError(
                message: "submit_group \(config.submitGroup) does not exist (create it, or leave submit_group unset)")
        }
        return SubmitPolicy(daemonUID: getuid(), groupID: group.pointee.gr_gid, groupName: config.submitGroup)
    }

    /// True if `uid` may submit: root, the daemon's user, or a user whose groups include the
    /// submit group (primary or supplementary, as getgrouplist(3) reports them).
    public func permits(uid: uid_t) -> Bool {
        if uid == 0 || uid == daemonUID { return true }
        guard let pw = getpwuid(uid) else { return false }
        let name = String(cString: pw.pointee.pw_name)
        let primary = pw.pointee.pw_gid
        if primary == groupID { return true }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary, &groups, &count) == -1 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primary, &groups, &count) != -1 else { return false }
        }
        return groups.prefix(Int(count)).contains(groupID)
    }

    static func groupName(_ gid: gid_t) -> String? {
        guard let g = getgrgid(gid) else { return nil }
        return String(cString: g.pointee.gr_name)
    }
}

public final class SpoolConsumer {
    public let tree: StateTree
    let queue: JobQueue
    var config: DaemonConfig
    let policy: SubmitPolicy
    let log: Logger
    /// Fault injection for the "crash between commit and move" tests: runs after the database
    /// commit and before the move; returning false leaves the file in incoming/ as a crash would.
    public var afterCommit: (() -> Bool)?
    /// rejected/, kept within rejected_keep_days and rejected_max_mib.
    let rejectedArchive: RejectedArchive

    public init(tree: StateTree, queue: JobQueue, config: DaemonConfig, policy: SubmitPolicy, log: Logger) {
        self.tree = tree
        self.queue = queue
        self.config = config
        self.policy = policy
        self.log = log
        rejectedArchive = RejectedArchive(directory: tree.rejected)
        rejectedArchive.reload()
    }

    /// Applies the retention of rejected/ (after reading the directory again with `reload`).
    public func pruneRejected(reload: Bool) {
        if reload { rejectedArchive.reload() }
        let removed = rejectedArchive.prune(
            keepDays: config.rejectedKeepDays, maxBytes: Int64(config.rejectedMaxMiB) << 20)
        if removed > 0 {
            log.info(
                "spool: deleted old rejected entries",
                [
                    "entries": removed, "kept": rejectedArchive.entries.count,
                    "keptMiB": rejectedArchive.totalBytes >> 20,
                ])
        }
    }

    public func update(config: DaemonConfig) { self.config = config }

    /// Considers every entry of incoming/, oldest first (mtime, then name).
    @discardableResult
    public func rescan() -> [(name: [UInt8], decision: SpoolDecision)] {
        var entries: [(name: [UInt8], mtime: Int64)] = []
        for name in listDirectory(tree.incoming) {
            var st = stat()
            let path = pathBytes(tree.incoming, name)
            let mtime: Int64 = path.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) == 0 }
                    ? Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) : 0
            }
            entries.append((name, mtime))
        }
        entries.sort { $0.mtime != $1.mtime ? $0.mtime < $1.mtime : $0.name.lexicographicallyPrecedes($1.name) }
        return entries.map { ($0.name, consider($0.name)) }
    }

    /// Runs the consumer algorithm on one name of incoming/ (raw bytes: a name need not be UTF-8).
    @discardableResult
    public func consider(_ name: [UInt8]) -> SpoolDecision {
        let display = String(decoding: name, as: UTF8.self)
        if name.first == UInt8(ascii: ".") || !name.ends(with: Array(".json".utf8)) { return .ignored }
        if String(validating: name, as: UTF8.self) == nil {
            return reject(name, ["the file name is not valid UTF-8"], uid: nil)
        }
        if name.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            return reject(name, ["the file name contains control characters"], uid: nil)
        }
        if name.count > 200 {
            return reject(name, ["the file name is \(name.count) bytes; the limit is 200"], uid: nil)
        }
        let path = pathBytes(tree.incoming, name)
        var st = stat()
        let statOK = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) == 0 }
        }
        guard statOK else { return .skipped("\(display): \(String(cString: strerror(errno)))") }
        let type = st.st_mode & S_IFMT
        guard type == S_IFREG else {
            let what: String
            switch type {
            case S_IFLNK: what = "a symbolic link"
            case S_IFDIR: what = "a directory"
            case S_IFIFO: what = "a FIFO"
            case S_IFSOCK: what = "a socket"
            case S_IFCHR, S_IFBLK: what = "a device node"
            default: what = "not a regular file"
            }
            return reject(name, ["\(what), not a regular file; only regular files are read"], uid: st.st_uid)
        }
        guard st.st_nlink == 1 else {
            return reject(
                name, ["the file has \(st.st_nlink) hard links; a manifest must have exactly one"], uid: st.st_uid)
        }
        guard policy.permits(uid: st.st_uid) else {
            return reject(
                name,
                [
                    "the file's owner (uid \(st.st_uid)) may not submit: not root, the daemon's user or a member of group \(policy.groupName)"
                ],
                uid: st.st_uid)
        }
        guard Int(st.st_size) <= config.limits.maxManifestBytes else {
            return reject(
                name,
                [
                    "the manifest is \(st.st_size) bytes; the limit max_manifest_bytes is \(config.limits.maxManifestBytes)"
                ],
                uid: st.st_uid)
        }
        // Open without following links or blocking, then make sure it is the inode we checked.
        let fd = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) {
                open($0.baseAddress!, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            }
        }
        guard fd >= 0 else { return .skipped("\(display): open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var fst = stat()
        guard fstat(fd, &fst) == 0, fst.st_ino == st.st_ino, fst.st_dev == st.st_dev else {
            return .skipped("\(display) changed while being opened")
        }
        guard let data = readAll(fd, limit: config.limits.maxManifestBytes + 1) else {
            return .skipped("\(display): read: \(String(cString: strerror(errno)))")
        }
        let mtimeNs = Int64(fst.st_mtim.tv_sec) * 1_000_000_000 + Int64(fst.st_mtim.tv_nsec)
        switch ManifestIntake.check(data, config: config, submitter: fst.st_uid, job: { try? self.queue.job($0) }) {
        case .truncated(let why):
            let ageNs = Int64(Date().timeIntervalSince1970 * 1e9) - mtimeNs
            if Double(ageNs) < config.ingestGraceSeconds * 1e9 {
                return .deferred("\(why) (the file is \(ageNs / 1_000_000) ms old; it may still be being written)")
            }
            return reject(name, [why], uid: fst.st_uid)
        case .invalid(let issues):
            return reject(name, issues.map(\.description), uid: fst.st_uid)
        case .valid(let experiment, let kind, let jobs, let json):
            let key = SHA256.hex(Array("\(fst.st_dev):\(fst.st_ino):\(fst.st_size):\(mtimeNs):".utf8) + name)
            let manifest = NewManifest(
                sourceKey: key, fileName: display, submitterUID: fst.st_uid, sha256: SHA256.hex(data),
                body: json, name: experiment, kind: kind, jobs: jobs)
            let result: IngestResult
            do {
                result = try queue.ingest(manifest)
            } catch {
                log.error(
                    "spool: cannot record manifest; leaving it in incoming/", ["file": display, "error": "\(error)"])
                return .skipped("database: \(error)")
            }
            if let hook = afterCommit, !hook() { return .skipped("stopped after the commit (fault injection)") }
            let target = Array("\(result.manifestID).json".utf8)
            if !move(name, from: tree.incoming, to: tree.accepted, as: target) {
                let fallback = Array("\(result.manifestID).\(timestamp()).json".utf8)
                if !move(name, from: tree.incoming, to: tree.accepted, as: fallback) {
                    log.error(
                        "spool: accepted but cannot move out of incoming/",
                        ["file": display, "error": String(cString: strerror(errno))])
                }
            }
            log.info(
                result.created ? "spool: accepted" : "spool: redelivered; already queued",
                [
                    "file": display, "manifest": result.manifestID, "jobs": result.jobIDs.count, "uid": fst.st_uid,
                    "name": experiment,
                ])
            return .accepted(manifestID: result.manifestID, jobIDs: result.jobIDs, duplicate: !result.created)
        }
    }

    // MARK: rejection

    private func reject(_ name: [UInt8], _ reasons: [String], uid: uid_t?) -> SpoolDecision {
        let safe = sanitized(name)
        let stamp = timestamp()
        var target = Array("\(safe).\(stamp)".utf8)
        var n = 1
        var recreated = false
        while !move(name, from: tree.incoming, to: tree.rejected, as: target) {
            if errno == ENOENT {
                var st = stat()
                let source = pathBytes(tree.incoming, name)
                let gone = source.withUnsafeBufferPointer { p in
                    p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) != 0 }
                }
                if gone {
                    // Already moved: a second inotify event (or a rescan) for a name that an
                    // earlier one rejected, or a submitter who took the file back. Nothing to do.
                    log.debug("spool: entry gone before it could be rejected", ["file": safe])
                    return .skipped("\(safe) is no longer in incoming/")
                }
                // rejected/ itself is missing (removed by hand): create the tree again, once.
                if !recreated {
                    recreated = true
                    log.error("spool: rejected/ is missing; creating it again", ["path": tree.rejected])
                    _ = try? tree.create(group: policy.groupID)
                    continue
                }
                errno = ENOENT
            }
            guard errno == EEXIST, n < 100 else {
                log.error(
                    "spool: cannot move a rejected entry", ["file": safe, "error": String(cString: strerror(errno))])
                return .skipped("cannot move to rejected/: \(String(cString: strerror(errno)))")
            }
            target = Array("\(safe).\(stamp)-\(n)".utf8)
            n += 1
        }
        let targetName = String(decoding: target, as: UTF8.self)
        var reason: [(String, JSONValue)] = [
            ("file", .string(String(decoding: name, as: UTF8.self))), ("movedTo", .string("rejected/\(targetName)")),
            ("rejectedAt", .string(ISO8601DateFormatter().string(from: Date()))),
        ]
        if let uid { reason.append(("submitterUID", JSONValue(Int(uid)))) }
        reason.append(("errors", .array(reasons.map { .string($0) })))
        do {
            try writeFileAtomically(
                Data((JSONValue.object(reason).serialized() + "\n").utf8),
                to: tree.rejected + "/\(targetName).reason.json", mode: 0o640)
        } catch {
            log.error("spool: cannot write the reason file", ["file": targetName, "error": "\(error)"])
        }
        log.notice("spool: rejected", ["file": safe, "uid": uid, "reason": reasons.first, "errors": reasons.count])
        rejectedArchive.note(target)
        rejectedArchive.note(Array("\(targetName).reason.json".utf8))
        pruneRejected(reload: false)
        return .rejected(reasons)
    }

    /// A printable version of a hostile name: control bytes and invalid UTF-8 become `_`.
    func sanitized(_ name: [UInt8]) -> String {
        let s = String(decoding: name, as: UTF8.self)
        let cleaned = String(
            String.UnicodeScalarView(
                s.unicodeScalars.map {
                    ($0.value < 0x20 || $0.value == 0x7f || $0 == "\u{FFFD}" || $0 == "/") ? "_" : $0
                }))
        return String(cleaned.prefix(120))
    }

    private func timestamp() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        return f.string(from: Date())
    }

    /// renameat2(NOREPLACE) of incoming/<name> to <dir>/<target>, then fsync of both directories.
    private func move(_ name: [UInt8], from: String, to: String, as target: [UInt8]) -> Bool {
        let src = pathBytes(from, name), dst = pathBytes(to, target)
        let rc = src.withUnsafeBufferPointer { s in
            dst.withUnsafeBufferPointer { d in
                s.withMemoryRebound(to: CChar.self) { sp in
                    d.withMemoryRebound(to: CChar.self) { dp in
                        clinux_renameat_noreplace(AT_FDCWD, sp.baseAddress!, AT_FDCWD, dp.baseAddress!)
                    }
                }
            }
        }
        guard rc == 0 else { return false }
        syncDirectory(to)
        syncDirectory(from)
        return true
    }
}

// MARK: raw file names

/// `dir + "/" + name` as NUL-terminated bytes.
func pathBytes(_ dir: String, _ name: [UInt8]) -> [UInt8] {
    Array(dir.utf8) + [UInt8(ascii: "/")] + name + [0]
}

/// Entry names of `dir` as raw bytes (without . and ..); empty if it cannot be read.
func listDirectory(_ dir: String) -> [[UInt8]] {
    guard let d = opendir(dir) else { return [] }
    defer { closedir(d) }
    var names: [[UInt8]] = []
    while let entry = readdir(d) {
        let name: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            Array(raw.prefix(while: { $0 != 0 }))
        }
        if name == [0x2e] || name == [0x2e, 0x2e] { continue }
        names.append(name)
    }
    return names
}

/// Reads at most `limit` bytes from `fd`.
func readAll(_ fd: Int32, limit: Int) -> Data? {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while data.count < limit {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - data.count)) }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EAGAIN { break }
            return nil
        }
        if n == 0 { break }
        data.append(contentsOf: buffer[0..<n])
    }
    return data
}

extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
