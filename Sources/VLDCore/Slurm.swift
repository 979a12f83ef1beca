// Slurm.swift: the Slurm commands the daemon runs (sbatch, squeue, scontrol, sacct, scancel) and
// what it reads from their answers. Each command runs as a child process with its output on pipes
// and a time limit (a controller that does not answer must not stall the daemon's loop; the
// child is killed at the limit and the call fails as "unreachable"). The daemon waits for the
// command's own pid, never for any child, so the supervisor's reaping of workers and these
// commands never take each other's exit statuses.
//
// Formats read (Slurm 22.05, Debian 12's slurm-wlm):
//   sbatch --parsable                        "<id>" or "<id>;<cluster>"
//   squeue -h --me --states=all -o %i|%T|%r|%j   "<id>|<STATE>|<reason>|<name>" per job of this
//                                             user the controller still holds (until MinJobAge)
//   scontrol show job -o <id>                 one line of Key=Value, JobState= and ExitCode=code:signal
//   sacct -n -X -P -j <id> -o JobIDRaw,State,ExitCode   "<id>|<STATE>[ by <uid>]|code:signal"

import CLinux
import Foundation
import VLDJSON

/// Why a Slurm command failed.
public struct SlurmError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The controller did not answer, the command timed out or could not be started: nothing
        /// is known, and what was asked may or may not have happened.
        case unreachable
        /// The command could not be started (not installed): nothing happened.
        case notRun
        /// The controller answered "not now" (a submit limit of the user, account or QOS; busy):
        /// asked again later, not a failure of the job.
        case busy
        /// The controller answered no (an unknown partition, a request no node can satisfy...).
        case refused
    }
    public var message: String
    public var kind: Kind
    /// Slurm cannot be asked now (the daemon backs off).
    public var unreachable: Bool { kind == .unreachable || kind == .notRun }
    public var description: String { message }
    public init(message: String, kind: Kind) {
        self.message = message
        self.kind = kind
    }
}

/// A Slurm job as its controller or its accounting reports it.
public struct SlurmJobInfo: Equatable, Sendable {
    /// Slurm's state name: PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...
    public var state: String
    public var reason: String?
    public var exitCode: Int?
    public var signal: Int?
    /// The job's name (from `jobs(named:)`).
    public var name: String?

    /// The states after which the job never runs again (a job Slurm requeues itself goes back to
    /// PENDING instead; SPECIAL_EXIT is requeued and held, so not final).
    public static let terminalStates: Set<String> = [
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
        "OUT_OF_MEMORY", "REVOKED",
    ]
    public var isTerminal: Bool { Self.terminalStates.contains(state) }
    /// Held by a user, an administrator or after a failed launch: it waits until released.
    public var isHeld: Bool {
        state == "SPECIAL_EXIT" || state.hasPrefix("REQUEUE_HOLD")
            || (state == "PENDING" && (reason.map { $0.hasPrefix("JobHeld") || $0.contains("held") } ?? false))
    }
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
        /// posix_spawn failed: the command never ran.
        public var spawnFailed = false
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
                status: nil, stdout: "", stderr: "\(argv[0]): \(String(cString: strerror(rc)))", timedOut: false,
                spawnFailed: true)
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
            if n < 0 && errno != EINTR {
                // Cannot wait for its output: do not wait for the command either.
                timedOut = true
                break
            }
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

    /// Runs a command and returns its output; a timeout, a command that cannot be started, and
    /// an answer that says the controller cannot be reached are `unreachable`, submit limits
    /// `busy`, any other non-zero exit `refused`, each with Slurm's message.
    func call(_ argv: [String]) throws -> String {
        let r = Self.run(argv, timeout: timeoutSeconds)
        if r.timedOut {
            throw SlurmError(
                message: "\(argv[0]) did not answer within \(String(format: "%g", timeoutSeconds)) s",
                kind: .unreachable)
        }
        let said = r.stderr.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: "; ")
        guard let status = r.status else {
            // Never started, or killed by a signal part way (which may have done what was asked).
            throw SlurmError(
                message: r.spawnFailed
                    ? "\(argv[0]) could not be started: \(said.prefix(200))" : "\(argv[0]) was killed by a signal",
                kind: r.spawnFailed ? .notRun : .unreachable)
        }
        guard status == 0 else {
            let kind: SlurmError.Kind = Self.unreachable(said) ? .unreachable : Self.busy(said) ? .busy : .refused
            throw SlurmError(message: "\(argv[0]) failed (exit \(status)): \(said.prefix(400))", kind: kind)
        }
        return r.stdout
    }

    /// Slurm's words for "the controller did not answer".
    static func unreachable(_ stderr: String) -> Bool {
        let s = stderr.lowercased()
        return [
            "unable to contact slurm controller", "socket timed out", "connection refused",
            "communication connection failure", "unable to connect", "zero bytes were transmitted", "munge",
            "slurmctld not responding", "slurm_receive_msg",
        ].contains { s.contains($0) }
    }

    /// Slurm's words for "not now": submit limits (QOSMaxSubmitJobPerUserLimit,
    /// AssocMaxSubmitJobLimit, MaxSubmitJobs...) and a controller too busy to take the job.
    static func busy(_ stderr: String) -> Bool {
        let s = stderr.lowercased()
        return ["maxsubmit", "submit limit", "temporarily unable", "resource temporarily unavailable", "try again"]
            .contains { s.contains($0) }
    }

    // MARK: commands

    /// Submits `script` with `arguments` (sbatch options); returns the Slurm job id.
    public func submit(script: String, arguments: [String]) throws -> String {
        let out = try call(["sbatch", "--parsable"] + arguments + [script])
        let id = out.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard !id.isEmpty, id.allSatisfy({ $0.isNumber || $0 == "_" || $0 == "+" }) else {
            // Whether a job was created is not known: as if the controller had not answered.
            throw SlurmError(
                message: "sbatch answered \(DisplayText.quoted(String(out.prefix(200)))), not a job id",
                kind: .unreachable)
        }
        return id
    }

    /// The jobs of this user whose names start with `prefix` that the controller still holds
    /// (ended ones too, until MinJobAge), by id.
    public func jobs(named prefix: String) throws -> [String: SlurmJobInfo] {
        var result: [String: SlurmJobInfo] = [:]
        // -a: jobs in hidden partitions too.
        for line in try call(["squeue", "-a", "-h", "--me", "--states=all", "-o", "%i|%T|%r|%j"]).split(separator: "\n")
        {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 4, f[3].hasPrefix(prefix) else { continue }
            let reason = f[2] != "None" && !f[2].isEmpty ? f[2] : nil
            result[f[0]] = SlurmJobInfo(state: f[1], reason: reason, name: f[3])
        }
        return result
    }

    /// One job with its exit status as the controller holds it; nil once it has forgotten the
    /// job. Throws only when the controller does not answer.
    public func detail(_ id: String) throws -> SlurmJobInfo? {
        do {
            let line = try call(["scontrol", "-a", "show", "job", "-o", id])
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
        return nil
    }

    /// One job as accounting recorded it; nil when it has no record. Throws when sacct fails
    /// (no accounting on the cluster, slurmdbd down), which says nothing about the controller.
    public func accounting(_ id: String) throws -> SlurmJobInfo? {
        let text = try call(["sacct", "-n", "-X", "-P", "-j", id, "-o", "JobIDRaw,State,ExitCode"])
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
}
