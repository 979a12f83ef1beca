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
        var st = stat()
        let path = pathBytes(directory, name)
        let ok = path.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) == 0 } }
        guard ok else { return }
        let bytes = Int64(st.st_blocks) * 512
        let isReason = name.ends(with: RejectedArchive.reasonSuffix)
        // The reason file's mtime is the rejection time; the entry itself changed hands (ctime).
        let stamp = isReason ? Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            : Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
        let key = RejectedArchive.key(name)
        var entry = entries[key] ?? Entry(time: stamp, bytes: 0, names: [])
        guard !entry.names.contains(name) else { return }
        entry.names.append(name)
        entry.bytes += bytes
        if isReason { entry.time = stamp } else if !entry.names.contains(where: { $0.ends(with: RejectedArchive.reasonSuffix) }) {
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
        let oldestFirst = entries.sorted { $0.value.time != $1.value.time ? $0.value.time < $1.value.time : $0.key < $1.key }
        for (key, entry) in oldestFirst where entry.time < cutoff || totalBytes > maxBytes {
            for name in entry.names {
                let path = pathBytes(directory, name)
                _ = path.withUnsafeBufferPointer { p in p.withMemoryRebound(to: CChar.self) { unlink($0.baseAddress!) } }
            }
            totalBytes -= entry.bytes
            entries.removeValue(forKey: key)
            removed += 1
        }
        return removed
    }
}
