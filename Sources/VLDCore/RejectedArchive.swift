// RejectedArchive.swift: spool/rejected/ kept within an age and a size.
//
// Every rejected entry is kept for its submitter to read (the file as dropped, and a
// `.reason.json` beside it), but not forever: a submitter who drops 50 MB files, or a script
// gone wrong, must not fill the disk. Entries older than rejected_keep_days are deleted, then
// the oldest go while the directory holds more than rejected_max_mib. An entry and its reason
// file go together; its age is that of its reason file (written at rejection; a rename keeps the
// dropped file's own mtime). The index is read from the directory when the daemon starts and at
// each periodic rescan (so deletions by hand are noticed) and updated on each rejection, so a
// rejection costs no directory listing.

import CLinux
import Foundation

final class RejectedArchive {
    struct Entry {
        /// When it was rejected (ns since the epoch).
        var time: Int64
        /// Disk space of the entry and its reason file (allocated blocks: a sparse 2 GiB file
        /// takes almost none).
        var bytes: Int64
        /// The names in rejected/ (raw bytes).
        var names: [[UInt8]]
    }

    let directory: String
    private(set) var entries: [String: Entry] = [:]
    private(set) var totalBytes: Int64 = 0

    init(directory: String) {
        self.directory = directory
    }

    static let reasonSuffix = Array(".reason.json".utf8)

    /// The entry a name of rejected/ belongs to (its reason file's name without the suffix).
    static func key(_ name: [UInt8]) -> String {
        let base = name.ends(with: reasonSuffix) ? Array(name.dropLast(reasonSuffix.count)) : name
        return String(decoding: base, as: UTF8.self)
    }

    /// Reads the directory again.
    func reload() {
        entries = [:]
        totalBytes = 0
        for name in listDirectory(directory) where name.first != UInt8(ascii: ".") {
            note(name)
        }
    }

    /// Records a name just written to rejected/ (the entry or its reason file).
    func note(_ name: [UInt8]) {
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { return }
        defer { close(dir) }
        var st = stat()
        guard withCPath(name, { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return }
        // A rejected directory (someone moved one into incoming/) counts with all it holds.
        let bytes = RejectedArchive.diskUsage(dir, name, depth: 0)
        let isReason = name.ends(with: RejectedArchive.reasonSuffix)
        // The reason file's mtime is the rejection time; the entry itself changed hands (ctime).
        let stamp =
            isReason
            ? Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            : Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        let key = RejectedArchive.key(name)
        var entry = entries[key] ?? Entry(time: stamp, bytes: 0, names: [])
        guard !entry.names.contains(name) else { return }
        entry.names.append(name)
        entry.bytes += bytes
        if isReason {
            entry.time = stamp
        } else if !entry.names.contains(where: { $0.ends(with: RejectedArchive.reasonSuffix) }) {
            entry.time = max(entry.time, stamp)
        }
        entries[key] = entry
        totalBytes += bytes
    }

    /// Deletes entries older than `keepDays`, then the oldest while more than `maxBytes` are
    /// kept. Returns how many entries were deleted.
    @discardableResult
    func prune(keepDays: Double, maxBytes: Int64, now: Date = Date()) -> Int {
        let cutoff = Int64((now.timeIntervalSince1970 - keepDays * 86_400) * 1e9)
        var removed = 0
        let oldestFirst = entries.sorted {
            $0.value.time != $1.value.time ? $0.value.time < $1.value.time : $0.key < $1.key
        }
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dir >= 0 else { return 0 }
        defer { close(dir) }
        for (key, entry) in oldestFirst where entry.time < cutoff || totalBytes > maxBytes {
            // An entry that cannot be removed whole stays in the index, and counts.
            var left: [[UInt8]] = []
            for name in entry.names where !RejectedArchive.removeTree(dir, name, depth: 0) { left.append(name) }
            if left.isEmpty {
                totalBytes -= entry.bytes
                entries.removeValue(forKey: key)
                removed += 1
            } else {
                entries[key]?.names = left
            }
        }
        return removed
    }

    /// Nesting below which nothing is followed (a hostile directory tree cannot exhaust the
    /// stack or the descriptors; what lies deeper is neither counted nor removed).
    static let maxDepth = 32

    /// Allocated bytes of `name` in `dir` and, for a directory, of all it holds; links are not
    /// followed.
    static func diskUsage(_ dir: Int32, _ name: [UInt8], depth: Int) -> Int64 {
        var st = stat()
        guard withCPath(name, { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return 0 }
        var bytes = Int64(st.st_blocks) * 512
        if st.st_mode & S_IFMT == S_IFDIR, depth < maxDepth {
            withChildren(dir, name) { fd, children in
                for child in children { bytes += diskUsage(fd, child, depth: depth + 1) }
            }
        }
        return bytes
    }

    /// Removes `name` in `dir` and, for a directory, everything below it, without following a
    /// link. True when it is gone.
    static func removeTree(_ dir: Int32, _ name: [UInt8], depth: Int) -> Bool {
        var st = stat()
        guard withCPath(name, { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) }) == 0 else { return errno == ENOENT }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            return withCPath(name, { unlinkat(dir, $0, 0) }) == 0 || errno == ENOENT
        }
        guard depth < maxDepth else { return false }
        withChildren(dir, name) { fd, children in
            for child in children { _ = removeTree(fd, child, depth: depth + 1) }
        }
        return withCPath(name, { unlinkat(dir, $0, AT_REMOVEDIR) }) == 0 || errno == ENOENT
    }

    /// Calls `body` with a descriptor of directory `name` (opened without following a link) and
    /// its entries' names.
    private static func withChildren(_ dir: Int32, _ name: [UInt8], _ body: (Int32, [[UInt8]]) -> Void) {
        let fd = withCPath(name) { openat(dir, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        guard fd >= 0 else { return }
        guard let stream = fdopendir(fd) else {
            close(fd)
            return
        }
        defer { closedir(stream) }
        var children: [[UInt8]] = []
        while let entry = readdir(stream) {
            let child: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if child != [0x2E] && child != [0x2E, 0x2E] { children.append(child) }
        }
        body(dirfd(stream), children)
    }
}

/// Calls `body` with `name` (raw bytes, not necessarily UTF-8) as a NUL-terminated C string.
func withCPath<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
    (name + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
}
