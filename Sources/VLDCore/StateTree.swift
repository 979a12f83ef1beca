// StateTree.swift: the daemon's directories (specs/ops.md 6.1) and the system calls it makes on
// them.
//
//   <state>/spool/tmp/        1730  producers stage NAME.json.part here, then rename into incoming/
//   <state>/spool/incoming/   1730  the watched drop directory: the group can create, not list
//   <state>/spool/accepted/   0750  <manifest-id>.json, the audit copy of every accepted manifest
//   <state>/spool/rejected/   2750  <name>.<utc> and <name>.<utc>.reason.json
//   <state>/db/               0700  vldd.sqlite3 (+ -wal, -shm)
//   <state>/runs/<job-id>/    0750  a worker's directory: job.json, stdout.log, the trial in work/
//   <state>/outbox/           2750  <job-id>-<name>/ published by one rename; summaries likewise
//
// Everything is one tree so every move is a same-filesystem rename (ops.md finding 0.6). The
// installed package creates the tree with tmpfiles.d; a checkout's vldd creates it here with the
// same modes. The daemon runs with umask 027.

import Foundation
import CLinux

public struct StateTree: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    public var spool: String { root + "/spool" }
    public var spoolTmp: String { spool + "/tmp" }
    public var incoming: String { spool + "/incoming" }
    public var accepted: String { spool + "/accepted" }
    public var rejected: String { spool + "/rejected" }
    public var dbDirectory: String { root + "/db" }
    public var database: String { dbDirectory + "/vldd.sqlite3" }
    public var runs: String { root + "/runs" }
    public var outbox: String { root + "/outbox" }
    public func run(_ job: Int) -> String { runs + "/\(job)" }
    /// Files the jobs compute once and share (distill's teacher caches), made when first needed;
    /// safe to delete while no job runs (they are rebuilt).
    public var cache: String { runs + "/cache" }

    /// Every directory with its mode, parents first.
    public var directories: [(path: String, mode: mode_t)] {
        [
            (root, 0o750), (spool, 0o750), (spoolTmp, 0o1730), (incoming, 0o1730), (accepted, 0o750),
            (rejected, 0o2750), (dbDirectory, 0o700), (runs, 0o750), (outbox, 0o2750),
        ]
    }

    /// Creates missing directories with their modes; an existing one keeps its owner but gets its
    /// mode back if it drifted (a checkout after `chmod -R`, say). With `group`, every directory
    /// but db/ is given that group (the submit group: it reads the outbox and rejected/, drops
    /// into incoming/), whatever the daemon's primary group. Returns what it changed.
    @discardableResult
    public func create(group: gid_t? = nil) throws -> [String] {
        var changes: [String] = []
        let parent = (root as NSString).deletingLastPathComponent
        if !parent.isEmpty && !FileManager.default.fileExists(atPath: parent) {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        }
        for (path, mode) in directories {
            var st = stat()
            if lstat(path, &st) != 0 {
                guard errno == ENOENT else { throw SystemError("stat", path: path) }
                guard mkdir(path, mode) == 0 || errno == EEXIST else { throw SystemError("mkdir", path: path) }
                if let group, path != dbDirectory, lchown(path, uid_t.max, group) != 0 {
                    throw SystemError(
                        message: "cannot give \(path) to group \(group): \(String(cString: strerror(errno)))",
                        code: errno)
                }
                guard chmod(path, mode) == 0 else { throw SystemError("chmod", path: path) }
                changes.append("created \(path)")
                continue
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw SystemError(
                    message: "\(path) exists and is not a directory (a symlink or file there is not followed)")
            }
            if let group, path != dbDirectory, st.st_gid != group {
                guard lchown(path, uid_t.max, group) == 0 else {
                    let e = errno
                    throw SystemError(
                        message: "cannot give \(path) to group \(group): \(String(cString: strerror(e)))"
                            + (e == EPERM ? " (the daemon's user must be a member of submit_group)" : ""), code: e)
                }
                changes.append("group of \(path) \(st.st_gid) -> \(group)")
                // chown may clear the set-group-ID bit; the mode is checked again below.
                guard lstat(path, &st) == 0 else { throw SystemError("stat", path: path) }
            }
            if st.st_mode & 0o7777 != mode {
                guard chmod(path, mode) == 0 else { throw SystemError("chmod", path: path) }
                changes.append("mode of \(path) \(String(st.st_mode & 0o7777, radix: 8)) -> \(String(mode, radix: 8))")
            }
        }
        return changes
    }
}

/// A failed system call with the operation and path.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public let code: Int32

    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.code = code
        message = "\(operation) \(path): \(String(cString: strerror(code)))"
    }

    public init(message: String, code: Int32 = 0) {
        self.message = message
        self.code = code
    }

    public var description: String { message }
}

/// Retries a system call interrupted by a signal.
@discardableResult
func retryingEINTR(_ body: () -> Int32) -> Int32 {
    while true {
        let rc = body()
        if rc == -1 && errno == EINTR { continue }
        return rc
    }
}

/// Gives a directory tree about to be published the submit group and the outbox's modes (ops.md
/// 6.1: directories 2750, files 0640), whatever the group and umask it was written with: a
/// trial is built in runs/ under the daemon's primary group, and a rename keeps that. Symbolic
/// links are neither followed nor changed (lchown semantics; the worker writes none).
func shareWithGroup(_ path: String, group: gid_t) throws {
    var st = stat()
    guard lstat(path, &st) == 0 else { throw SystemError("stat", path: path) }
    let type = st.st_mode & S_IFMT
    if type == S_IFLNK { return }
    if st.st_gid != group && lchown(path, uid_t.max, group) != 0 {
        let e = errno
        throw SystemError(
            message: "cannot give \(path) to group \(group): \(String(cString: strerror(e)))"
                + (e == EPERM ? " (the daemon's user must be a member of submit_group)" : ""), code: e)
    }
    let mode: mode_t = type == S_IFDIR ? 0o2750 : 0o640
    if st.st_mode & 0o7777 != mode && chmod(path, mode) != 0 { throw SystemError("chmod", path: path) }
    if type == S_IFDIR {
        for name in listDirectory(path) {
            try shareWithGroup(path + "/" + String(decoding: name, as: UTF8.self), group: group)
        }
    }
}
