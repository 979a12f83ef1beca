// Inotify.swift: a watch on one directory (the spool's incoming/).
//
// The daemon watches for IN_CLOSE_WRITE (a writer finished), IN_MOVED_TO (a rename into the
// directory) and IN_CREATE (O_TMPFILE + linkat deliveries produce only this, ops.md finding 0.5);
// IN_Q_OVERFLOW means events were lost and a full rescan is due; IN_IGNORED, IN_DELETE_SELF and
// IN_MOVE_SELF mean the directory itself went away.

import Foundation

public final class InotifyWatch {
    public struct Event: Equatable {
        /// The watch the event belongs to (compare with `currentWatch`; events of a removed
        /// watch, such as its IN_IGNORED, can arrive after a re-watch).
        public var wd: Int32
        public var mask: UInt32
        /// The entry name in raw bytes (empty for events on the directory itself).
        public var name: [UInt8]
    }

    public let fd: Int32
    public let path: String
    private(set) var wd: Int32
    public var currentWatch: Int32 { wd }

    public static let interesting = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF)

    public init(directory: String) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw SystemError("inotify_init1", path: directory) }
        path = directory
        wd = inotify_add_watch(fd, directory, InotifyWatch.interesting | UInt32(IN_ONLYDIR))
        guard wd >= 0 else {
            let e = errno
            close(fd)
            throw SystemError("inotify_add_watch", path: directory, code: e)
        }
    }

    deinit { close(fd) }

    /// Adds the watch again (after the directory was replaced).
    public func rewatch() throws {
        inotify_rm_watch(fd, wd)
        wd = inotify_add_watch(fd, path, InotifyWatch.interesting | UInt32(IN_ONLYDIR))
        guard wd >= 0 else { throw SystemError("inotify_add_watch", path: path) }
    }

    /// Every event queued now (non-blocking).
    public func read() -> [Event] {
        var events: [Event] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            var offset = 0
            while offset + 16 <= n {
                let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                    (
                        raw.loadUnaligned(fromByteOffset: offset, as: Int32.self),
                        raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                        Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    )
                }
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)]
                events.append(Event(wd: wd, mask: mask, name: Array(nameBytes.prefix(while: { $0 != 0 }))))
                offset += 16 + length
            }
        }
        return events
    }
}
