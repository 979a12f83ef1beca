// DurableWrite.swift: the project's one way to replace a file so that a reader (or a crash) never
// sees it half-written: write a temporary sibling (O_NOFOLLOW, so a link planted at that name is
// not followed), fsync it, rename it over the target, fsync the directory so the rename survives
// a power cut. Trial outputs, summaries, the daemon's job and marker files all go through it.

import Foundation

/// fsync(2) on a directory, so that a rename in it survives a power cut.
public func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    close(fd)
}

/// Writes `data` to `path` atomically and durably, with `mode`. A failure leaves the old file (or
/// none) in place and removes the temporary one; it throws a retryable `TrialError` naming the
/// operation, the path and the system's reason (a full disk may have room next time).
public func writeFileAtomically(_ data: Data, to path: String, mode: mode_t = 0o644) throws {
    try writeFileAtomically(to: path, mode: mode) { file in try file.write(data) }
}

/// Writes a file too large to hold in memory (a teacher cache) the same way: `fill` streams the
/// contents through `file`, then the temporary file is synced and renamed over `path`. A throw
/// from `fill` removes the temporary file and leaves `path` as it was.
public func writeFileAtomically(to path: String, mode: mode_t = 0o644, _ fill: (AtomicFile) throws -> Void) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let tmp = (dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
    func failure(_ operation: String, _ file: String, _ code: Int32) -> TrialError {
        TrialError("\(operation) \(file): \(String(cString: strerror(code)))", retryable: true)
    }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
    guard fd >= 0 else { throw failure("create", tmp, errno) }
    let file = AtomicFile(fd: fd, path: tmp)
    do {
        try fill(file)
        guard fsync(fd) == 0 else { throw failure("write", tmp, errno) }
    } catch {
        close(fd)
        unlink(tmp)
        throw error
    }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let e = errno
        unlink(tmp)
        throw failure("rename into", path, e)
    }
    syncDirectory(dir.isEmpty ? "." : dir)
}

/// The temporary file of `writeFileAtomically(to:mode:_:)`: appends bytes, retrying short writes.
public struct AtomicFile {
    let fd: Int32
    let path: String

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }

    public func write(_ raw: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw TrialError("write \(path): \(String(cString: strerror(errno)))", retryable: true)
            }
            offset += n
        }
    }
}

/// `text` (UTF-8) to `url`, through `writeFileAtomically`.
public func writeAtomically(_ text: String, to url: URL) throws {
    try writeFileAtomically(Data(text.utf8), to: url.path)
}
