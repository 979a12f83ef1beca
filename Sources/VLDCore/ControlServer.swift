// ControlServer.swift: the control socket vldctl talks to.
//
// A unix stream socket (mode 0660) speaking JSON lines: one request object per connection
// (`{"op": "list", ...}`), answered by one response object (`{"ok": true, ...}` or
// `{"ok": false, "error": "...", "issues": [...]}`); `logs` may be asked again with an offset
// to follow a job. The peer is identified with SO_PEERCRED, never by anything it says:
//   - root, the daemon's user and members of the submit group may submit, list, show, read logs
//     and results, and ask for a rescan;
//   - cancel, hold, release and retry are allowed on one's own jobs (root and the daemon's user:
//     on any job);
//   - anyone else is refused with the reason.
// Each connection is served on its own thread with its own database connection (WAL lets them
// read while the loop writes; writes wait on the busy timeout, never fail with SQLITE_BUSY).
//
// No user can keep others out: the peer is known at accept time, so connections are counted per
// uid (at most `perUserConnections` each, `maxConnections` for all ordinary users together) and
// root and the daemon's user have slots of their own; a user outside the group is refused before
// anything is read; and a request must arrive whole within `request_timeout_seconds` and its
// answer be read within the same time again, however slowly the peer sends or reads.

import CLinux
import Foundation
import VLDExperiments
import VLDModel
import VLDStore

public final class ControlServer: @unchecked Sendable {
    let path: String
    let fd: Int32
    unowned let daemon: Daemon
    private let stopPipe: (read: Int32, write: Int32)
    private let active = NSLock()
    /// Requests being served, per peer uid.
    private var connections: [UInt32: Int] = [:]
    private var thread: Thread?
    /// Ordinary users (members of the submit group) together.
    static let maxConnections = 64
    /// One ordinary user.
    static let perUserConnections = 8
    /// Root and the daemon's user, who must always get through (administration, `vldctl` as the
    /// service user), have this many of their own.
    static let privilegedConnections = 16

    init(path: String, daemon: Daemon) throws {
        self.path = path
        self.daemon = daemon
        fd = try ControlServer.listen(path: path, group: daemon.policy.groupID)
        var fds: [Int32] = [-1, -1]
        guard clinux_pipe2(&fds, O_CLOEXEC) == 0 else { throw SystemError("pipe2", path: path) }
        stopPipe = (fds[0], fds[1])
    }

    /// Binds and listens; refuses to replace the socket of a daemon that is still answering.
    /// The socket gets mode 0660 and the submit group, so members can connect whatever the
    /// daemon's primary group.
    static func listen(path: String, group: gid_t) throws -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else {
                throw SystemError(message: "\(path) exists and is not a socket; remove it or set socket = in vldd.conf")
            }
            if let probe = try? ControlClient.connect(path: path) {
                close(probe)
                throw SystemError(message: "another vldd is already listening on \(path)")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path: path) }
        var address = try unixAddress(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw SystemError("bind", path: path, code: e)
        }
        if lchown(path, uid_t.max, group) != 0 {
            let e = errno
            close(fd)
            throw SystemError("chgrp \(group)", path: path, code: e)
        }
        chmod(path, 0o660)
        guard Glibc.listen(fd, 128) == 0 else {
            let e = errno
            close(fd)
            throw SystemError("listen", path: path, code: e)
        }
        return fd
    }

    func start() {
        let t = Thread { [self] in acceptLoop() }
        t.name = "control-socket"
        thread = t
        t.start()
    }

    func stop() {
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        close(fd)
        unlink(path)
    }

    private func acceptLoop() {
        while true {
            var fds = [
                pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
            ]
            let n = poll(&fds, 2, -1)
            if n < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 || fds[0].revents & Int16(POLLNVAL) != 0 { return }
            let client = clinux_accept_cloexec(fd)
            guard client >= 0 else { continue }
            var peerPID: Int32 = 0, peerUID: UInt32 = 0, peerGID: UInt32 = 0
            guard clinux_peercred(client, &peerPID, &peerUID, &peerGID) == 0 else {
                close(client)
                continue
            }
            let (pid, uid) = (peerPID, peerUID)
            if let refusal = admit(uid) {
                // Answered without waiting for the request; the client reads this as its answer.
                ControlClient.sendLine(
                    client, ["ok": false, "error": .string(refusal)], deadline: Date().addingTimeInterval(0.2))
                close(client)
                continue
            }
            Thread.detachNewThread { [self] in
                serve(client, pid: pid, uid: uid)
                close(client)
                active.lock()
                connections[uid, default: 1] -= 1
                if connections[uid] == 0 { connections.removeValue(forKey: uid) }
                active.unlock()
            }
        }
    }

    /// Counts a new connection of `uid`, or says why it is refused.
    private func admit(_ uid: UInt32) -> String? {
        let privileged = uid == 0 || uid == daemon.policy.daemonUID
        active.lock()
        defer { active.unlock() }
        let mine = connections[uid, default: 0]
        if privileged {
            guard mine < ControlServer.privilegedConnections else {
                return "uid \(uid) has \(mine) requests in progress; try again"
            }
        } else {
            let ordinary = connections.filter { $0.key != 0 && $0.key != daemon.policy.daemonUID }.values.reduce(0, +)
            guard mine < ControlServer.perUserConnections else {
                return
                    "uid \(uid) has \(mine) requests in progress, the most one user may have; try again when they end"
            }
            guard ordinary < ControlServer.maxConnections else {
                return "the daemon is serving \(ordinary) requests; try again"
            }
        }
        connections[uid] = mine + 1
        return nil
    }

    private func serve(_ client: Int32, pid: Int32, uid: UInt32) {
        let config = daemon.currentConfig
        let deadline = Date().addingTimeInterval(config.requestTimeoutSeconds)
        func answer(_ response: JSONValue) {
            ControlClient.sendLine(client, response, deadline: Date().addingTimeInterval(config.requestTimeoutSeconds))
        }
        if !daemon.policy.permits(uid: uid) {
            // Refused before reading anything: a non-member cannot make the daemon wait either.
            answer([
                "ok": false,
                "error": .string(
                    "uid \(uid) may not use vldd: not root, the daemon's user or a member of group \(daemon.policy.groupName) (ask an administrator: usermod -aG \(daemon.policy.groupName) \(userName(uid)))"
                ),
            ])
            return
        }
        let limit = config.limits.maxManifestBytes * 6 + 65536
        guard let line = ControlClient.readLine(client, limit: limit, deadline: deadline) else {
            answer([
                "ok": false,
                "error": .string(
                    "expected one JSON request line of at most \(limit) bytes within \(config.requestTimeoutSeconds) s"),
            ])
            return
        }
        let response: JSONValue
        var op = "?"
        do {
            let request = try ControlRequest(line)
            op = request.op
            let queue = try JobQueue(path: daemon.tree.database)
            response = try ControlAPI(daemon: daemon, queue: queue, uid: uid).handle(request)
        } catch let error as StoreError {
            response = ["ok": false, "error": .string(error.description)]
        } catch {
            response = ["ok": false, "error": .string("\(error)")]
        }
        answer(response)
        daemon.log.debug("control: request", ["op": op, "uid": uid, "pid": pid, "ok": response["ok"]?.boolValue])
    }
}

/// The login name of `uid` (or the number), cached: a listing of thousands of jobs must not
/// read the password database once per row.
func userName(_ uid: UInt32) -> String {
    userNames.lock.lock()
    defer { userNames.lock.unlock() }
    if let cached = userNames.names[uid], Date().timeIntervalSince(cached.at) < 60 { return cached.name }
    var name = "\(uid)"
    var pw = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 4096)
    if getpwuid_r(uid, &pw, &buffer, buffer.count, &result) == 0, result != nil { name = String(cString: pw.pw_name) }
    userNames.names[uid] = (name, Date())
    return name
}

private final class UserNameCache: @unchecked Sendable {
    let lock = NSLock()
    var names: [UInt32: (name: String, at: Date)] = [:]
}

private let userNames = UserNameCache()

func unixAddress(_ path: String) throws -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else {
        throw SystemError(
            message: "the socket path \(path) is \(bytes.count) bytes; unix sockets allow \(capacity - 1)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
        raw[bytes.count] = 0
    }
    return address
}
