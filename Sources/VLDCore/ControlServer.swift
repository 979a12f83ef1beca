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
    private var connections = 0
    private var thread: Thread?
    static let maxConnections = 64

    init(path: String, daemon: Daemon) throws {
        self.path = path
        self.daemon = daemon
        fd = try ControlServer.listen(path: path)
        var fds: [Int32] = [-1, -1]
        guard clinux_pipe2(&fds, O_CLOEXEC) == 0 else { throw SystemError("pipe2", path: path) }
        stopPipe = (fds[0], fds[1])
    }

    /// Binds and listens; refuses to replace the socket of a daemon that is still answering.
    static func listen(path: String) throws -> Int32 {
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
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw SystemError("bind", path: path, code: e)
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
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if n < 0 && errno == EINTR { continue }
            if fds[1].revents != 0 || fds[0].revents & Int16(POLLNVAL) != 0 { return }
            let client = clinux_accept_cloexec(fd)
            guard client >= 0 else { continue }
            active.lock()
            let busy = connections >= ControlServer.maxConnections
            if !busy { connections += 1 }
            active.unlock()
            if busy {
                ControlClient.sendLine(client, ["ok": false, "error": "the daemon is serving \(ControlServer.maxConnections) requests; try again"])
                close(client)
                continue
            }
            Thread.detachNewThread { [self] in
                serve(client)
                close(client)
                active.lock()
                connections -= 1
                active.unlock()
            }
        }
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var pid: Int32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        guard clinux_peercred(client, &pid, &uid, &gid) == 0 else { return }
        let limit = daemon.currentConfig.limits.maxManifestBytes * 6 + 65536
        guard let line = ControlClient.readLine(client, limit: limit) else {
            ControlClient.sendLine(client, ["ok": false, "error": "expected one JSON request line of at most \(limit) bytes"])
            return
        }
        guard let request = try? JSONSerialization.jsonObject(with: line) as? [String: Any], let op = request["op"] as? String else {
            ControlClient.sendLine(client, ["ok": false, "error": "the request is not a JSON object with an \"op\""])
            return
        }
        let response: [String: Any]
        if !daemon.policy.permits(uid: uid) {
            response = ["ok": false, "error": "uid \(uid) may not use vldd: not root, the daemon's user or a member of group \(daemon.policy.groupName) (ask an administrator: usermod -aG \(daemon.policy.groupName) \(userName(uid)))"]
        } else {
            do {
                let queue = try JobQueue(path: daemon.tree.database)
                response = try ControlAPI(daemon: daemon, queue: queue, uid: uid).handle(op: op, request)
            } catch let error as StoreError {
                response = ["ok": false, "error": error.description]
            } catch {
                response = ["ok": false, "error": "\(error)"]
            }
        }
        ControlClient.sendLine(client, response)
        daemon.log.debug("control: request", ["op": op, "uid": uid, "pid": pid, "ok": response["ok"] as? Bool])
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
        throw SystemError(message: "the socket path \(path) is \(bytes.count) bytes; unix sockets allow \(capacity - 1)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
        raw[bytes.count] = 0
    }
    return address
}
