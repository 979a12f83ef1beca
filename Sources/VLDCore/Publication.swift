// Publication.swift: how a worker puts a finished trial into the outbox, and how it recognises
// its own earlier publication.
//
// The outbox is opened once without following links and every step is relative to that
// descriptor, so nothing at outbox/<id>-<name> is followed: not a symbolic link to a directory
// that happens to hold a results.json, not a directory someone else created there. The trial
// directory is renamed into place (renameat2 RENAME_NOREPLACE: an existing entry is never
// replaced), and its inode is written to runs/<id>/published.json first; a worker started again
// for the same job (its daemon died before recording the success) finds the entry and accepts it
// only if it is that same directory, owned by the daemon's user.

import CLinux
import Foundation
import VLDExperiments

/// Why a trial could not be published, and whether trying again could help.
struct PublishError: Error, CustomStringConvertible {
    let message: String
    let retryable: Bool
    var description: String { message }
}

enum Publication {
    enum Target {
        /// Nothing is at outbox/<name> yet; the descriptor is the outbox directory.
        case free(Int32)
        /// This job published before (same inode as recorded); the path of its directory.
        case alreadyPublished(String)
    }

    static func markerPath(_ runDirectory: String) -> String { runDirectory + "/published.json" }

    /// Opens the outbox and looks at `job.outboxName` in it.
    static func open(tree: StateTree, job: WorkerJob, runDirectory: String) -> Result<Target, PublishError> {
        let fd = Glibc.open(tree.outbox, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            return .failure(
                PublishError(
                    message: "cannot open the outbox \(tree.outbox): \(String(cString: strerror(errno)))"
                        + " (it must be a directory, not a symbolic link)",
                    retryable: errno != ELOOP && errno != ENOTDIR))
        }
        var st = stat()
        if fstatat(fd, job.outboxName, &st, AT_SYMLINK_NOFOLLOW) != 0 {
            guard errno == ENOENT else {
                let e = errno
                close(fd)
                return .failure(
                    PublishError(
                        message: "cannot look at \(tree.outbox)/\(job.outboxName): \(String(cString: strerror(e)))",
                        retryable: true))
            }
            return .success(.free(fd))
        }
        defer { close(fd) }
        let path = tree.outbox + "/" + job.outboxName
        if st.st_mode & S_IFMT == S_IFDIR, st.st_uid == geteuid(), let mine = recorded(runDirectory),
            mine == (UInt64(st.st_dev), UInt64(st.st_ino)), hasResults(fd, job.outboxName)
        {
            return .success(.alreadyPublished(path))
        }
        let what: String
        switch st.st_mode & S_IFMT {
        case S_IFLNK: what = "a symbolic link"
        case S_IFDIR: what = "a directory this job did not publish"
        default: what = "not a directory"
        }
        return .failure(
            PublishError(
                message: "\(path) already exists and is \(what); nothing is published over it "
                    + "(move it away, then vldctl retry \(job.job))", retryable: false))
    }

    /// Gives `work` the submit group and the outbox's modes, records its inode and renames it to
    /// outbox/<name> relative to `outbox`. Returns the published path.
    static func publish(_ work: String, outbox: Int32, tree: StateTree, job: WorkerJob, runDirectory: String) throws
        -> String
    {
        if let group = job.groupID {
            do { try shareWithGroup(work, group: group) } catch let e as SystemError {
                throw PublishError(message: "cannot publish \(work): \(e.message)", retryable: e.code != EPERM)
            }
        }
        var st = stat()
        guard lstat(work, &st) == 0 else {
            throw PublishError(message: "cannot publish \(work): it is gone", retryable: true)
        }
        let marker = JSONValue.object([
            ("dev", .string(String(st.st_dev))), ("ino", .string(String(st.st_ino))),
            ("outboxName", .string(job.outboxName)),
        ])
        try writeFileAtomically(Data((marker.serialized() + "\n").utf8), to: markerPath(runDirectory), mode: 0o640)
        guard clinux_renameat_noreplace(AT_FDCWD, work, outbox, job.outboxName) == 0 else {
            let e = errno
            let path = tree.outbox + "/" + job.outboxName
            if e == EEXIST || e == ENOTEMPTY {
                throw PublishError(
                    message: "\(path) appeared while the job ran; nothing is published over it "
                        + "(move it away, then vldctl retry \(job.job))", retryable: false)
            }
            throw PublishError(
                message: "cannot publish \(work) as \(path): \(String(cString: strerror(e)))", retryable: true)
        }
        _ = fsync(outbox)
        syncDirectory(runDirectory)
        return tree.outbox + "/" + job.outboxName
    }

    /// The (dev, ino) of this job's published directory, from its marker.
    private static func recorded(_ runDirectory: String) -> (UInt64, UInt64)? {
        guard let data = FileManager.default.contents(atPath: markerPath(runDirectory)),
            let marker = try? JSONValue.parse(data),
            case let .string(dev)? = marker["dev"], case let .string(ino)? = marker["ino"],
            let d = UInt64(dev), let i = UInt64(ino)
        else { return nil }
        return (d, i)
    }

    /// True if `name` in `dir` holds a regular commit marker (results.json), links not followed.
    private static func hasResults(_ dir: Int32, _ name: String) -> Bool {
        let sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard sub >= 0 else { return false }
        defer { close(sub) }
        var st = stat()
        return fstatat(sub, TrialDirectory.commitMarker, &st, AT_SYMLINK_NOFOLLOW) == 0
            && st.st_mode & S_IFMT == S_IFREG
    }
}
