// Slurm.swift: the Slurm commands the daemon runs (sbatch, squeue, scontrol, sacct, scancel) and
// what it reads from their answers. Each command runs as a child process with its output on pipes
// and a time limit (a controller that does not answer must not stall the daemon's loop; the
// child is killed at the limit and the call fails as "unreachable"). The daemon waits for the
// command's own pid, never for any child, so the supervisor's reaping of workers and these
// commands never take each other's exit statuses.
//
// Formats read (Slurm 22.05, Debian 12's slurm-wlm):
//   sbatch --parsable                        "<id>" or "<id>;<cluster>"
//   squeue -h --states=all -j A,B -o %i|%T|%r "<id>|<STATE>|<reason>" per job the controller
//                                             still holds (an unknown id is left out; a list of
//                                             only unknown ids exits 1 "Invalid job id specified")
//   scontrol show job -o <id>                 one line of Key=Value, JobState= and ExitCode=code:signal
//   sacct -n -X -P -j <id> -o JobIDRaw,State,ExitCode   "<id>|<STATE>[ by <uid>]|code:signal"

import CLinux
import Foundation
import VLDJSON

/// Why a Slurm command failed. `unreachable`: the controller did not answer (or the command
/// timed out, or is missing): nothing is known and everything is tried again later.
public struct SlurmError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var unreachable: Bool
    public var description: String { message }
}

/// A Slurm job as its controller or its accounting reports it.
public struct SlurmJobInfo: Equatable, Sendable {
    /// Slurm's state name: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
    public var state: String
    public var reason: String?
    public var exitCode: Int?
    public var signal: Int?

    /// The states after which the job never runs again (a job Slurm requeues itself goes back to
    /// PENDING instead).
    public static let terminalStates: Set<String> = [
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
        "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED",
    ]
    public var isTerminal: Bool { Self.terminalStates.contains(state) }
}

public struct SlurmClient: Sendable {
    /// How long one command may take.
    public var timeoutSeconds: Double

    public init(timeoutSeconds: Double = 10) { self.timeoutSeconds = timeoutSeconds }

    public struct Output: Sendable {
        public var status: Int32?
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
    }

    /// Runs `argv` (looked up on PATH) with stdin from /dev/null; kills it at the time limit.
    public static func run(_ argv: [String], timeout: Double) -> Output {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard clinux_pipe2(&out, O_CLOEXEC) == 0 else {
            return Output(status: nil, stdout: "", stderr: "pipe2", timedOut: false)
        }
        guard clinux_pipe2(&err, O_CLOEXEC) == 0 else {
            close(out[0])
            close(out[1])
            return Output(status: nil, stdout: "", stderr: "pipe2", timedOut: false)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        var attributes = posix_spawnattr_t()
        initChildAttributes(&attributes, ownProcessGroup: false)
        defer { posix_spawnattr_destroy(&attributes) }
        var pid: pid_t = 0
        let rc = withCStrings(argv) { args in
            posix_spawnp(&pid, argv[0], &actions, &attributes, args, Glibc.environ)
        }
        close(out[1])
        close(err[1])
        guard rc == 0 else {
            close(out[0])
            close(err[0])
            return Output(
                status: nil, stdout: "", stderr: "\(argv[0]): \(String(cString: strerror(rc)))", timedOut: false)
        }
        var buffers: [[UInt8]] = [[], []]
        var open = [out[0], err[0]]
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        var timedOut = false
        while open.contains(where: { $0 >= 0 }) {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else {
                timedOut = true
                break
            }
            var fds = open.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if n < 0 && errno != EINTR { break }
            for f in fds where f.revents != 0 {
                let slot = open.firstIndex(of: f.fd)!
                var chunk = [UInt8](repeating: 0, count: 65536)
                let got = chunk.withUnsafeMutableBytes { read(f.fd, $0.baseAddress, $0.count) }
                if got > 0 {
                    // Enough for any answer the daemon reads; the rest is drained and dropped.
                    if buffers[slot].count < 8 << 20 { buffers[slot] += chunk[0..<got] }
                } else if got == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(f.fd)
                    open[slot] = -1
                }
            }
        }
        for fd in open where fd >= 0 { close(fd) }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        return Output(
            status: exited && !timedOut ? (status >> 8) & 0xff : nil,
            stdout: String(decoding: buffers[0], as: UTF8.self), stderr: String(decoding: buffers[1], as: UTF8.self),
            timedOut: timedOut)
    }

    /// Runs a command; a missing command, a timeout, or an answer that says the controller cannot
    /// be reached is `unreachable`; any other non-zero exit is an error with Slurm's message.
    func call(_ argv: [String]) throws -> String {
        let r = Self.run(argv, timeout: timeoutSeconds)
        if r.timedOut {
            throw SlurmError(
                message: "\(argv[0]) did not answer within \(String(format: "%g", timeoutSeconds)) s", unreachable: true
            )
        }
        guard r.status == 0 else {
            let said = r.stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.joined(separator: "; ")
            let message = "\(argv[0]) failed\(r.status.map { " (exit \($0))" } ?? ""): \(said.prefix(400))"
            throw SlurmError(message: message, unreachable: r.status == nil || Self.unreachable(said))
        }
        return r.stdout
    }

    /// Slurm's words for "the controller (or its accounting) did not answer".
    static func unreachable(_ stderr: String) -> Bool {
        let s = stderr.lowercased()
        return [
            "unable to contact slurm controller", "socket timed out", "connection refused",
            "communication connection failure",
            "slurm_persist_conn_open", "unable to connect", "zero bytes were transmitted",
            "munge", "slurmctld not responding", "slurm_receive_msg",
        ].contains { s.contains($0) }
    }

    // MARK: commands

    /// Submits `script` with `arguments` (sbatch options); returns the Slurm job id.
    public func submit(script: String, arguments: [String]) throws -> String {
        let out = try call(["sbatch", "--parsable"] + arguments + [script])
        let id = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard !id.isEmpty, id.allSatisfy({ $0.isNumber || $0 == "_" || $0 == "+" }) else {
            throw SlurmError(
                message: "sbatch answered \(DisplayText.quoted(String(out.prefix(200)))), not a job id",
                unreachable: false)
        }
        return id
    }

    /// The states of the jobs the controller still holds, by id (jobs it has forgotten are absent).
    public func states(_ ids: [String]) throws -> [String: SlurmJobInfo] {
        guard !ids.isEmpty else { return [:] }
        var result: [String: SlurmJobInfo] = [:]
        // Long lists in chunks: one command line stays short.
        for start in stride(from: 0, to: ids.count, by: 200) {
            let chunk = ids[start..<min(ids.count, start + 200)]
            let text: String
            do {
                text = try call(["squeue", "-h", "--states=all", "-j", chunk.joined(separator: ","), "-o", "%i|%T|%r"])
            } catch let e as SlurmError where !e.unreachable && e.message.contains("Invalid job id") {
                continue
            }
            for line in text.split(separator: "\n") {
                let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                guard f.count >= 2 else { continue }
                let reason = f.count > 2 && f[2] != "None" && !f[2].isEmpty ? f[2] : nil
                result[f[0]] = SlurmJobInfo(state: f[1], reason: reason)
            }
        }
        return result
    }

    /// One job with its exit status: from the controller while it holds the job, else from
    /// accounting; nil when neither knows it.
    public func detail(_ id: String) throws -> SlurmJobInfo? {
        do {
            let line = try call(["scontrol", "show", "job", "-o", id])
            var fields: [String: String] = [:]
            for token in line.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
                guard let eq = token.firstIndex(of: "=") else { continue }
                fields[String(token[..<eq])] = String(token[token.index(after: eq)...])
            }
            if let state = fields["JobState"] {
                let (code, signal) = Self.exitStatus(fields["ExitCode"] ?? "")
                return SlurmJobInfo(
                    state: state, reason: fields["Reason"].flatMap { $0 == "None" ? nil : $0 }, exitCode: code,
                    signal: signal)
            }
        } catch let e as SlurmError where !e.unreachable {
            // "Invalid job id specified": the controller forgot it; accounting may still know it.
        }
        let text: String
        do {
            text = try call(["sacct", "-n", "-X", "-P", "-j", id, "-o", "JobIDRaw,State,ExitCode"])
        } catch let e as SlurmError where !e.unreachable {
            return nil  // no accounting on this cluster
        }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3, f[0] == id else { continue }
            let state = f[1].split(separator: " ").first.map(String.init) ?? f[1]
            let (code, signal) = Self.exitStatus(f[2])
            return SlurmJobInfo(state: state, reason: nil, exitCode: code, signal: signal)
        }
        return nil
    }

    /// "code:signal" as Slurm writes exit statuses.
    static func exitStatus(_ text: String) -> (code: Int?, signal: Int?) {
        let parts = text.split(separator: ":").map { Int($0) }
        guard parts.count == 2, let code = parts[0], let signal = parts[1] else { return (nil, nil) }
        return (signal == 0 ? code : nil, signal == 0 ? nil : signal)
    }

    /// Asks Slurm to end the job (SIGTERM to its steps and batch shell, SIGKILL after KillWait).
    public func cancel(_ id: String) throws {
        _ = try call(["scancel", id])
    }

    /// Jobs of this user named `name` that the controller holds and that have not ended.
    public func find(name: String) throws -> [String] {
        try call(["squeue", "-h", "--me", "--name", name, "-o", "%i"]).split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}
