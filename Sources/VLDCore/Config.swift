// Config.swift: vldd.conf, the daemon's configuration file.
//
// The format is `key = value` lines; `#` starts a comment; blank lines are ignored. Every key
// has a documented default, so an empty file is a valid configuration. An unknown key, a
// repeated key or a value out of range is an error naming the file and line: a typo must not
// silently become a default. Relative paths are resolved against the directory vldd starts in
// (a checkout runs `vldd --config etc/vldd/vldd.conf` from its root).
//
// SIGHUP re-reads the file; only the limits, concurrency, retry and grace settings take effect
// (paths, the socket and the submit group need a restart), and a file with any error is refused
// as a whole while the running configuration stays.

import Foundation
import VLDExperiments

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int?
    public let message: String
    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

public struct DaemonConfig: Equatable, Sendable {
    /// The state tree: spool/, db/, runs/, outbox/.
    public var stateDirectory = "var/lib/vldd"
    /// The control socket; empty means `<state>/control.sock`.
    public var socketPath = ""
    /// Members of this group (and root, and the daemon's user) may submit; empty means the
    /// daemon's own primary group.
    public var submitGroup = ""
    /// Jobs that run at the same time.
    public var workers = 1
    /// Worker threads a job gets when its manifest does not say.
    public var threadsPerJob = 2
    /// Threads all running jobs may use together; 0 means the number of cores.
    public var totalThreads = 0
    /// Memory (MiB) the declared `resources.memoryMiB` of running jobs may add up to; 0 means
    /// 80% of physical memory.
    public var totalMemoryMiB = 0
    public var limits = Limits()
    /// Failures (non-zero exits, crashes) after which a job is failed instead of retried.
    public var maxFailures = 3
    /// First retry delay; each further failure doubles it.
    public var retryBaseSeconds = 30.0
    /// How long a stopping worker gets to checkpoint after SIGTERM before SIGKILL.
    public var jobStopGraceSeconds = 60.0
    /// A spool file that does not parse is left alone this long (it may still be being written).
    public var ingestGraceSeconds = 30.0
    /// Full rescans of the spool, besides inotify.
    public var rescanSeconds = 60.0
    /// Nice value for workers (0-19).
    public var workerNice = 10
    /// A control-socket request must arrive whole within this time, and its answer be read
    /// within it again (a client that sends or reads a byte now and then is cut off).
    public var requestTimeoutSeconds = 10.0
    /// A running job whose worker has sent nothing (progress or heartbeat) for this long is
    /// killed and retried: it is stopped, frozen or stuck.
    public var leaseSeconds = 120.0
    /// Rejected spool entries are deleted after this many days...
    public var rejectedKeepDays = 30.0
    /// ...and, oldest first, while rejected/ holds more than this many MiB.
    public var rejectedMaxMiB = 256
    /// Directories under which a manifest may name a checkpoint by path (train's `init`,
    /// distill's `teacher`); empty: none. The daemon reads them on the submitter's behalf, so
    /// the operator decides which ones (specs/ops.md; issue 12).
    public var checkpointRoots: [String] = []

    /// Where jobs run: worker processes on this machine, or Slurm jobs on a cluster (issue 16).
    public enum Executor: String, Sendable, CaseIterable { case local, slurm }
    public var executor = Executor.local
    /// The Slurm settings, used with `executor = slurm`.
    public var slurm = SlurmSettings()

    public init() {}

    public var effectiveTotalMemoryBytes: Int {
        totalMemoryMiB > 0 ? totalMemoryMiB << 20 : Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.8)
    }

    public var effectiveTotalThreads: Int {
        totalThreads > 0 ? totalThreads : ProcessInfo.processInfo.activeProcessorCount
    }

    /// The settings a SIGHUP may change; everything else needs a restart.
    public func reloadable(from new: DaemonConfig) -> DaemonConfig {
        var next = new
        next.stateDirectory = stateDirectory
        next.socketPath = socketPath
        next.submitGroup = submitGroup
        // Jobs in flight belong to one executor; switching needs a restart (which adopts or
        // cancels the Slurm jobs a previous daemon left).
        next.executor = executor
        return next
    }

    /// Every key with its description and default, in file order (for docs and `vldctl doctor`).
    public static let keys: [(key: String, help: String)] = [
        ("state_dir", "the state tree (spool, db, runs, outbox); default var/lib/vldd"),
        ("socket", "the control socket; default <state_dir>/control.sock"),
        ("submit_group", "group whose members may submit; default the daemon's primary group"),
        ("workers", "jobs that run at the same time, 1-64; default 1"),
        ("threads_per_job", "threads of a job whose manifest does not set resources.threads, 1-256; default 2"),
        ("total_threads", "threads all running jobs share, 0 = number of cores; default 0"),
        (
            "total_memory_mib",
            "memory the declared resources.memoryMiB of running jobs may add up to, 0 = 80% of RAM; default 0"
        ),
        ("max_manifest_bytes", "largest manifest accepted; default 1048576"),
        ("max_trials", "most trials one manifest may expand to; default 512"),
        ("max_params", "largest model (parameters); default 200000000"),
        ("max_steps", "most training steps per trial; default 10000000"),
        ("max_threads", "most threads one job may ask for; default 64"),
        ("max_memory_mib", "most memory one job may ask for (MiB); default 65536"),
        ("max_failures", "failures before a job is failed instead of retried, 1-100; default 3"),
        ("retry_base_seconds", "first retry delay, doubled per failure; default 30"),
        ("job_stop_grace_seconds", "time a stopped job gets to checkpoint before SIGKILL; default 60"),
        ("ingest_grace_seconds", "age before an unparsable spool file is rejected; default 30"),
        ("rescan_seconds", "period of the full spool rescan; default 60"),
        ("worker_nice", "nice value of worker processes, 0-19; default 10"),
        (
            "request_timeout_seconds",
            "time a control-socket client has to send its request, and again to read the answer; default 10"
        ),
        ("lease_seconds", "silence after which a running worker is killed and its job retried; default 120"),
        ("rejected_keep_days", "days rejected spool entries are kept; default 30"),
        ("rejected_max_mib", "most MiB rejected/ may hold; the oldest entries go first; default 256"),
        (
            "checkpoint_roots",
            "absolute directories, separated by ':', under which manifests may name checkpoints by path; default none"
        ),
        ("executor", "where jobs run: local (worker processes here) or slurm (one sbatch job each); default local"),
        ("slurm_partition", "partition of the Slurm jobs; default the cluster's default partition"),
        ("slurm_account", "account the Slurm jobs are charged to; default the daemon user's default account"),
        (
            "slurm_time_limit",
            "time limit of one Slurm job (Slurm's format, e.g. 4:00:00 or 2-0); default the partition's"
        ),
        (
            "slurm_extra_args",
            "further sbatch options, separated by spaces (e.g. --qos=long --constraint=avx512); default none"
        ),
        ("slurm_max_jobs", "most Slurm jobs submitted and not yet ended at a time, 1-100000; default 100"),
        ("slurm_poll_seconds", "how often squeue is asked about the jobs in flight; default 5"),
        ("slurm_vldd", "the vldd executable on the compute nodes; default the daemon's own path"),
    ]

    /// Parses the text of a configuration file; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws -> DaemonConfig {
        var config = DaemonConfig()
        var seen: [String: Int] = [:]
        let known = Set(keys.map(\.key))
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = i + 1
            func fail(_ message: String) -> ConfigError { ConfigError(file: file, line: lineNumber, message: message) }
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw fail("expected key = value, got \"\(trimmed.prefix(60))\"")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard known.contains(key) else {
                let suggestion = keys.map(\.key).min { editDistance($0, key) < editDistance($1, key) }
                let hint = suggestion.map { editDistance($0, key) <= 3 ? " (did you mean \($0)?)" : "" } ?? ""
                throw fail("unknown key \"\(key)\"\(hint); known keys: \(keys.map(\.key).joined(separator: ", "))")
            }
            if let first = seen[key] { throw fail("\(key) is set again (first on line \(first))") }
            seen[key] = lineNumber

            func int(_ range: ClosedRange<Int>) throws -> Int {
                guard let v = Int(value) else { throw fail("\(key) must be an integer, got \"\(value)\"") }
                guard range.contains(v) else {
                    throw fail("\(key) must be in \(range.lowerBound)...\(range.upperBound), got \(v)")
                }
                return v
            }
            func seconds(_ range: ClosedRange<Double>) throws -> Double {
                guard let v = Double(value), v.isFinite else {
                    throw fail("\(key) must be a number of seconds, got \"\(value)\"")
                }
                guard range.contains(v) else {
                    throw fail("\(key) must be in \(range.lowerBound)...\(range.upperBound) seconds, got \(value)")
                }
                return v
            }
            func path() throws -> String {
                guard !value.isEmpty else { throw fail("\(key) must not be empty") }
                guard !value.contains("\0") else { throw fail("\(key) contains a NUL byte") }
                return value
            }
            switch key {
            case "state_dir": config.stateDirectory = try path()
            case "socket": config.socketPath = try path()
            case "submit_group":
                guard value.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }), !value.isEmpty else {
                    throw fail("submit_group must be a group name, got \"\(value)\"")
                }
                config.submitGroup = value
            case "workers": config.workers = try int(1...64)
            case "threads_per_job": config.threadsPerJob = try int(1...256)
            case "total_threads": config.totalThreads = try int(0...4096)
            case "total_memory_mib": config.totalMemoryMiB = try int(0...(1 << 30))
            case "max_manifest_bytes": config.limits.maxManifestBytes = try int(256...(64 << 20))
            case "max_trials": config.limits.maxTrials = try int(1...100_000)
            case "max_params": config.limits.maxParams = try int(1_000...100_000_000_000)
            case "max_steps": config.limits.maxSteps = try int(1...1_000_000_000)
            case "max_threads": config.limits.maxThreads = try int(1...4096)
            case "max_memory_mib": config.limits.maxMemoryMiB = try int(16...(1 << 24))
            case "max_failures": config.maxFailures = try int(1...100)
            case "retry_base_seconds": config.retryBaseSeconds = try seconds(0...86_400)
            case "job_stop_grace_seconds": config.jobStopGraceSeconds = try seconds(1...3_600)
            case "ingest_grace_seconds": config.ingestGraceSeconds = try seconds(0...3_600)
            case "rescan_seconds": config.rescanSeconds = try seconds(1...86_400)
            case "worker_nice": config.workerNice = try int(0...19)
            case "request_timeout_seconds": config.requestTimeoutSeconds = try seconds(0.1...600)
            case "lease_seconds": config.leaseSeconds = try seconds(1...86_400)
            case "rejected_keep_days":
                guard let v = Double(value), v.isFinite, (0...36_500).contains(v) else {
                    throw fail("rejected_keep_days must be a number of days in 0...36500, got \"\(value)\"")
                }
                config.rejectedKeepDays = v
            case "rejected_max_mib": config.rejectedMaxMiB = try int(0...(1 << 24))
            case "checkpoint_roots":
                let roots = value.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
                for root in roots
                where !root.hasPrefix("/") || root.contains("\0") || root.split(separator: "/").contains("..") {
                    throw fail(
                        "checkpoint_roots holds \"\(root.prefix(80))\"; expected absolute directories separated by ':'")
                }
                config.checkpointRoots = roots.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
            case "executor":
                guard let e = Executor(rawValue: value) else {
                    throw fail("executor must be local or slurm, got \"\(value.prefix(40))\"")
                }
                config.executor = e
            case "slurm_partition", "slurm_account":
                guard !value.isEmpty, value.count <= 200,
                    value.allSatisfy({ $0.isLetter || $0.isNumber || "_-.,".contains($0) })
                else {
                    throw fail("\(key) must be a Slurm name (letters, digits, _ - . ,), got \"\(value.prefix(60))\"")
                }
                if key == "slurm_partition" { config.slurm.partition = value } else { config.slurm.account = value }
            case "slurm_time_limit":
                guard SlurmSettings.isTimeLimit(value) else {
                    throw fail(
                        "slurm_time_limit must be minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S, got \"\(value.prefix(40))\""
                    )
                }
                config.slurm.timeLimit = value
            case "slurm_extra_args":
                let parts = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
                if let bad = parts.first(where: { !$0.hasPrefix("-") }) {
                    throw fail(
                        "slurm_extra_args holds \"\(bad.prefix(60))\"; expected sbatch options, each starting with -")
                }
                if let bad = parts.first(where: { SlurmSettings.reservedOption($0) }) {
                    throw fail(
                        "slurm_extra_args holds \(bad.prefix(60)), which vldd sets itself or relies on "
                            + "(job name, output, directory, tasks, CPUs, memory, requeue, signal, cluster, arrays)")
                }
                config.slurm.extraArguments = parts
            case "slurm_max_jobs": config.slurm.maxJobs = try int(1...100_000)
            case "slurm_poll_seconds": config.slurm.pollSeconds = try seconds(0.2...3_600)
            case "slurm_vldd":
                guard value.hasPrefix("/") else {
                    throw fail("slurm_vldd must be an absolute path, got \"\(value.prefix(80))\"")
                }
                config.slurm.vldd = try path()
            default: break
            }
        }
        if config.threadsPerJob > config.limits.maxThreads {
            throw ConfigError(
                file: file, line: seen["threads_per_job"],
                message: "threads_per_job (\(config.threadsPerJob)) exceeds max_threads (\(config.limits.maxThreads))")
        }
        return config
    }

    /// Relative paths made absolute against the current directory (workers run elsewhere).
    public var absolutePaths: DaemonConfig {
        var c = self
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ p: String) -> String {
            guard !p.isEmpty, !p.hasPrefix("/") else { return p }
            return URL(fileURLWithPath: p, relativeTo: URL(fileURLWithPath: cwd + "/")).standardizedFileURL.path
        }
        c.stateDirectory = absolute(stateDirectory)
        c.socketPath = absolute(socketPath)
        return c
    }

    /// Reads and parses `path`, making relative paths absolute against the current directory.
    /// A missing file is an error (the daemon never runs on guesses).
    public static func load(_ path: String) throws -> DaemonConfig {
        try loadAsWritten(path).absolutePaths
    }

    static func loadAsWritten(_ path: String) throws -> DaemonConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, line: nil, message: "cannot read: \(String(cString: strerror(errno)))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, line: nil, message: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }
}

extension DaemonConfig {
    /// Whether a checkpoint path (as written, before links are followed) lies under a root.
    public func allowsCheckpoint(_ path: String) -> Bool {
        let p = URL(fileURLWithPath: path).standardizedFileURL.path
        return checkpointRoots.contains { root in p == root || p.hasPrefix(root == "/" ? "/" : root + "/") }
    }

    /// The real path of a checkpoint directory if it lies under a root once every link is
    /// followed (the roots' own links included); nil otherwise.
    public func resolveCheckpoint(_ path: String) -> String? {
        guard allowsCheckpoint(path), let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        let resolved = String(cString: real)
        for root in checkpointRoots {
            guard let r = realpath(root, nil) else { continue }
            let rootReal = String(cString: r)
            free(r)
            if resolved == rootReal || resolved.hasPrefix(rootReal == "/" ? "/" : rootReal + "/") { return resolved }
        }
        return nil
    }
}

/// The sbatch settings of `executor = slurm`.
public struct SlurmSettings: Equatable, Sendable {
    public var partition: String?
    public var account: String?
    public var timeLimit: String?
    public var extraArguments: [String] = []
    public var maxJobs = 100
    public var pollSeconds = 5.0
    /// The vldd the compute nodes run; nil: the daemon's own executable (the same path on every
    /// node, as a package installs it).
    public var vldd: String?

    public init() {}

    /// sbatch options the executor sets or relies on: the job name (found by it after a crash),
    /// the output and directory (the run directory), one task, the CPUs and memory (the manifest's
    /// resources), requeue and the early signal, the cluster (squeue must see the job), arrays
    /// (one job per vld job), and the waiting and parsable modes of sbatch itself.
    static func reservedOption(_ option: String) -> Bool {
        let name = option.split(separator: "=", maxSplits: 1).first.map(String.init) ?? option
        let long: Set<String> = [
            "--job-name", "--output", "--error", "--chdir", "--array", "--requeue", "--no-requeue", "--signal",
            "--clusters", "--cluster", "--parsable", "--wrap", "--wait", "--open-mode", "--cpus-per-task", "--mem",
            "--ntasks", "--nodes", "--input",
        ]
        if long.contains(name) { return true }
        // Short forms, alone or with their value attached (-J name is two arguments; -Jname one).
        return !option.hasPrefix("--")
            && ["-J", "-o", "-e", "-D", "-a", "-M", "-W", "-c", "-n", "-N", "-i"].contains { option.hasPrefix($0) }
    }

    /// Slurm's time formats: "minutes", "minutes:seconds", "hours:minutes:seconds",
    /// "days-hours", "days-hours:minutes", "days-hours:minutes:seconds", or UNLIMITED.
    static func isTimeLimit(_ s: String) -> Bool {
        if s == "UNLIMITED" || s == "INFINITE" { return true }
        let dash = s.split(separator: "-", omittingEmptySubsequences: false)
        guard dash.count <= 2, dash.allSatisfy({ !$0.isEmpty }) else { return false }
        let clock = dash.last!.split(separator: ":", omittingEmptySubsequences: false)
        let numbers = dash.dropLast().map { Int($0) } + clock.map { Int($0) }
        guard numbers.allSatisfy({ $0 != nil && $0! >= 0 }) else { return false }
        return clock.count <= 3
    }
}

/// Levenshtein distance, for "did you mean" hints on short keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
