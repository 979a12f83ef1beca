// ControlClient.swift: vldctl's side of the control socket (one JSON line each way).

import Foundation
import VLDJSON

public struct ControlUnavailable: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "cannot reach vldd at \(path): \(reason)" }
}

public enum ControlClient {
    /// Connects to the daemon's socket; throws ControlUnavailable when nothing listens there.
    public static func connect(path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlUnavailable(path: path, reason: String(cString: strerror(errno))) }
        var address = try unixAddress(path)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ControlUnavailable(path: path, reason: reason)
        }
        return fd
    }

    /// Sends one request and returns the response object.
    public static func request(path: String, _ object: JSONValue, timeout: Int = 120) throws -> JSONValue {
        let fd = try connect(path: path)
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        // The daemon may answer (a refusal) and close before reading the request: the answer is
        // still there to read even when sending failed.
        let sent = sendLine(fd, object)
        shutdown(fd, Int32(SHUT_WR))
        guard let line = readLine(fd, limit: 256 << 20) else {
            throw ControlUnavailable(
                path: path, reason: sent ? "no answer (the daemon may be stopping)" : "the daemon closed the connection"
            )
        }
        guard let response = try? JSONValue.parse(line), case .object = response else {
            throw ControlUnavailable(path: path, reason: "the answer is not a JSON object")
        }
        return response
    }

    /// Writes one JSON line. With a `deadline`, a peer that does not read gets until then for the
    /// whole line (not per write), after which false is returned.
    @discardableResult
    static func sendLine(_ fd: Int32, _ object: JSONValue, deadline: Date? = nil) -> Bool {
        let bytes = Array(object.serialized(pretty: false).utf8) + [0x0A]
        var offset = 0
        while offset < bytes.count {
            if let deadline, !waitUntil(fd, Int16(POLLOUT), deadline) { return false }
            let flags = Int32(MSG_NOSIGNAL) | (deadline == nil ? 0 : Int32(MSG_DONTWAIT))
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, flags) }
            // EAGAIN means "not yet" only for the non-blocking sends of a deadline; on a blocking
            // socket it is SO_SNDTIMEO running out.
            if n < 0 && (errno == EINTR || (errno == EAGAIN && deadline != nil)) { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Reads up to the first newline (or the end); nil on error, timeout or over `limit` bytes.
    /// With a `deadline`, the whole line must arrive by then: a peer that sends a byte now and
    /// then cannot hold the connection longer.
    static func readLine(_ fd: Int32, limit: Int, deadline: Date? = nil) -> Data? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let deadline, !waitUntil(fd, Int16(POLLIN), deadline) { return nil }
            let n = buffer.withUnsafeMutableBytes {
                recv(fd, $0.baseAddress, $0.count, deadline == nil ? 0 : Int32(MSG_DONTWAIT))
            }
            // Without a deadline, EAGAIN is the client's SO_RCVTIMEO running out: give up.
            if n < 0 && (errno == EINTR || (errno == EAGAIN && deadline != nil)) { continue }
            if n < 0 { return nil }
            if n == 0 { return data.isEmpty ? nil : data }
            if let newline = buffer[0..<n].firstIndex(of: 0x0A) {
                data.append(contentsOf: buffer[0..<newline])
                return data
            }
            data.append(contentsOf: buffer[0..<n])
            if data.count > limit { return nil }
        }
    }

    /// poll(2) for `events` on `fd` until `deadline`; false when the time is up.
    private static func waitUntil(_ fd: Int32, _ events: Int16, _ deadline: Date) -> Bool {
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&p, 1, Int32(min(left * 1000 + 1, 60_000)))
            if rc > 0 { return true }
            if rc < 0 && errno != EINTR { return false }
        }
    }
}
