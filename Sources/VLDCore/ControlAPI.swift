// ControlAPI.swift: what each control-socket request does (ControlServer.swift authenticates).
//
//   status                          daemon version, uptime, queue counts, running jobs, limits
//   submit  manifest, fileName[, key]   validate and queue; `key` makes a retried submit idempotent
//   list    [states], [name], [all], [limit]   jobs, newest first (default: not finished, or finished in the last day)
//   show    id                      one job with its events, metrics and manifest
//   cancel  ids | hold id | release id | retry id
//   logs    id[, offset]            the job's output from `offset`; `next` and `done` for following
//   results id                      results.json of a finished job (or the grid summary with `summary`)
//   rescan                          rescan the spool now

import Foundation
import VLDExperiments
import VLDModel
import VLDStore

struct ControlAPI {
    let daemon: Daemon
    let queue: JobQueue
    let uid: UInt32

    func handle(_ request: ControlRequest) throws -> JSONValue {
        switch request.op {
        case "status":
            try request.only([])
            return try status()
        case "submit":
            try request.only(["manifest", "fileName", "key"])
            return try submit(request)
        case "list":
            try request.only(["states", "name", "all", "limit"])
            return try list(request)
        case "show":
            try request.only(["id"])
            return try show(try jobID(request))
        case "cancel":
            try request.only(["ids", "id"])
            let ids = try request.ids("ids") ?? request.id().map { [$0] } ?? []
            guard !ids.isEmpty else { return failure("cancel needs ids") }
            var results: [JSONValue] = []
            var ok = true
            for id in ids {
                do {
                    try authorize(id)
                    let state = try queue.cancel(id, by: uid)
                    results.append(["id": JSONValue(id), "ok": true, "state": .string(state.rawValue)])
                    if state == .cancelled, let job = try queue.job(id) {
                        daemon.requestSummaryCheck(manifest: job.manifestID)
                    }
                } catch {
                    ok = false
                    results.append(["id": JSONValue(id), "ok": false, "error": .string("\(error)")])
                }
            }
            daemon.wake()
            return ["ok": .bool(ok), "results": .array(results)]
        case "hold", "release", "retry":
            try request.only(["id"])
            let id = try jobID(request)
            try authorize(id)
            switch request.op {
            case "hold": try queue.hold(id, by: uid)
            case "release": try queue.release(id, by: uid)
            default: try queue.retry(id, by: uid)
            }
            daemon.wake()
            return ["ok": true, "job": jobObject(try queue.job(id)!)]
        case "logs":
            try request.only(["id", "offset"])
            return try logs(request)
        case "results":
            try request.only(["id", "summary"])
            return try results(request)
        case "rescan":
            try request.only([])
            kill(getpid(), SIGUSR1)
            return ["ok": true]
        default:
            return failure(
                "unknown op \(DisplayText.quoted(request.op)); expected status, submit, list, show, cancel, hold, release, retry, logs, results or rescan"
            )
        }
    }

    private func failure(_ message: String) -> JSONValue { ["ok": false, "error": .string(message)] }

    private func jobID(_ request: ControlRequest) throws -> Int {
        guard let id = try request.id() else { throw ControlError("this request needs a job id") }
        return id
    }

    /// Changing a job needs to own it, or to be root or the daemon's user.
    private func authorize(_ id: Int) throws {
        guard let job = try queue.job(id) else { throw StoreError.noSuchJob(id) }
        if uid == 0 || uid == daemon.policy.daemonUID || job.submitterUID == uid { return }
        throw ControlError(
            "job \(id) belongs to \(userName(job.submitterUID)); only its owner, root or the daemon's user may change it"
        )
    }

    // MARK: requests

    private func status() throws -> JSONValue {
        let counts = try queue.counts()
        let running = try queue.jobs(JobFilter(states: [.running, .cancelling]))
        let c = daemon.currentConfig
        return [
            "ok": true, "version": .string(VLD.version), "pid": JSONValue(Int(getpid())),
            "uptimeSeconds": JSONValue(Date().timeIntervalSince(daemon.startedAt)),
            "state": .string(daemon.tree.root), "config": .string(daemon.options.configPath),
            "submitGroup": .string(daemon.policy.groupName),
            "counts": .object(
                JobState.allCases.map { ($0.rawValue, JSONValue(counts[$0] ?? 0)) }.sorted { $0.0 < $1.0 }),
            "running": .array(running.map(jobObject)),
            "executor": .string(c.executor.rawValue),
            "workers": JSONValue(c.workers), "totalThreads": JSONValue(c.effectiveTotalThreads),
            "threadsPerJob": JSONValue(c.threadsPerJob),
            "limits": [
                "maxManifestBytes": JSONValue(c.limits.maxManifestBytes), "maxTrials": JSONValue(c.limits.maxTrials),
                "maxParams": JSONValue(c.limits.maxParams), "maxSteps": JSONValue(c.limits.maxSteps),
                "maxThreads": JSONValue(c.limits.maxThreads), "maxMemoryMiB": JSONValue(c.limits.maxMemoryMiB),
            ],
            "sqlite": .string(Connection.libraryVersion),
        ]
    }

    private func submit(_ request: ControlRequest) throws -> JSONValue {
        guard let text = try request.string("manifest") else { return failure("submit needs the manifest text") }
        let fileName = try request.string("fileName").map { String($0.prefix(200)) } ?? "submitted.json"
        let data = Data(text.utf8)
        switch ManifestIntake.check(
            data, config: daemon.currentConfig, submitter: uid, job: { try? self.queue.job($0) })
        {
        case .truncated(let why):
            return [
                "ok": false, "error": .string("\(fileName) is not a valid manifest"),
                "issues": [["path": "", "message": .string(why)]],
            ]
        case .invalid(let issues):
            return [
                "ok": false, "error": .string("\(fileName) is not a valid manifest"),
                "issues": .array(issues.map { ["path": .string($0.path), "message": .string($0.message)] }),
            ]
        case .valid(let name, let kind, let jobs, let json):
            let key =
                try request.string("key").map { "socket:\(uid):\($0.prefix(100))" } ?? "socket:\(UUID().uuidString)"
            let result = try queue.ingest(
                NewManifest(
                    sourceKey: key, fileName: fileName, submitterUID: uid, sha256: SHA256.hex(data),
                    body: json, name: name, kind: kind, jobs: jobs))
            // The audit copy, as for spool deliveries.
            try? writeFileAtomically(data, to: daemon.tree.accepted + "/\(result.manifestID).json", mode: 0o640)
            daemon.log.info(
                result.created ? "control: accepted" : "control: resubmitted; already queued",
                ["manifest": result.manifestID, "jobs": result.jobIDs.count, "uid": uid, "name": name])
            daemon.wake()
            return [
                "ok": true, "manifest": JSONValue(result.manifestID), "jobs": JSONValue(result.jobIDs),
                "name": .string(name), "created": .bool(result.created),
            ]
        }
    }

    private func list(_ request: ControlRequest) throws -> JSONValue {
        var filter = JobFilter()
        if let states = try request.strings("states", maxCount: 16), !states.isEmpty {
            var set: Set<JobState> = []
            for s in states {
                guard let state = JobState(rawValue: s) else {
                    return failure(
                        "unknown state \(DisplayText.quoted(s)); expected \(JobState.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                }
                set.insert(state)
            }
            filter.states = set
        }
        filter.nameContains = try request.string("name")
        filter.limit = try request.int("limit", in: 1...1_000_000)
        var jobs = try queue.jobs(filter)
        if try request.bool("all") != true && filter.states == nil {
            // Default view: everything not finished, plus what finished in the last day.
            let cutoff = queue.clock() - 86_400_000
            jobs = jobs.filter { !$0.state.isTerminal || ($0.finishedAt ?? 0) >= cutoff }
        }
        return ["ok": true, "now": JSONValue(queue.clock()), "jobs": .array(jobs.map(jobObject))]
    }

    private func show(_ id: Int) throws -> JSONValue {
        guard let job = try queue.job(id) else { throw StoreError.noSuchJob(id) }
        var object = jobObject(job)
        object = object.setting("params", .string(job.params))
        object = object.setting(
            "events",
            .array(
                try queue.events(id).map { e in
                    .fields([
                        ("at", JSONValue(e.at)), ("to", .string(e.to.rawValue)),
                        ("from", e.from.map { .string($0.rawValue) }), ("detail", e.detail.map { .string($0) }),
                    ])
                }))
        object = object.setting(
            "metrics",
            .array(
                try queue.metrics(id).map {
                    ["name": .string($0.name), "step": JSONValue($0.step), "value": JSONValue($0.value)]
                }))
        if let m = try queue.manifest(job.manifestID) {
            object = object.setting(
                "manifest",
                .fields([
                    ("id", JSONValue(m.id)), ("name", .string(m.name)), ("fileName", .string(m.fileName)),
                    ("sha256", .string(m.sha256)), ("receivedAt", JSONValue(m.receivedAt)),
                    ("trials", JSONValue(m.trialCount)), ("summary", m.summaryPath.map { .string($0) }),
                ]))
        }
        object = object.setting("runDirectory", .string(daemon.tree.run(id)))
        return ["ok": true, "job": object, "now": JSONValue(queue.clock())]
    }

    private func logs(_ request: ControlRequest) throws -> JSONValue {
        let id = try jobID(request)
        guard let job = try queue.job(id) else { throw StoreError.noSuchJob(id) }
        let offset = try request.int("offset", in: 0...Int(ControlRequest.maxExactInteger)) ?? 0
        let path = daemon.tree.run(id) + "/stdout.log"
        var text = ""
        var next = offset
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 {
            defer { close(fd) }
            var st = stat()
            if fstat(fd, &st) == 0 {
                // Past the end (a stale or made-up offset): nothing to read; `next` is the end, so
                // a follower picks up from there.
                next = min(offset, Int(st.st_size))
                var buffer = [UInt8](repeating: 0, count: 256 * 1024)
                let n =
                    next < Int(st.st_size)
                    ? buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(next)) } : 0
                if n > 0 {
                    text = String(decoding: buffer[..<n], as: UTF8.self)
                    next += n
                }
            }
        }
        return [
            "ok": true, "text": .string(text), "next": JSONValue(next), "state": .string(job.state.rawValue),
            "done": .bool(job.state.isTerminal || job.state == .held),
        ]
    }

    private func results(_ request: ControlRequest) throws -> JSONValue {
        let id = try jobID(request)
        guard let job = try queue.job(id) else { throw StoreError.noSuchJob(id) }
        guard job.state == .succeeded, let outbox = job.outboxPath else {
            return failure(
                "job \(id) is \(job.state.rawValue); results exist once it has succeeded\(job.error.map { " (last error: \($0))" } ?? "")"
            )
        }
        guard let data = readPublished(outbox + "/" + TrialDirectory.commitMarker) else {
            return failure(
                "job \(id)'s \(TrialDirectory.commitMarker) cannot be read at \(outbox) (moved or replaced?)")
        }
        var response: JSONValue = [
            "ok": true, "job": jobObject(job), "outbox": .string(outbox), "results": try JSONValue.parse(data),
        ]
        if let m = try queue.manifest(job.manifestID), let summary = m.summaryPath {
            response = response.setting("summary", .string(summary))
            if try request.bool("summary") == true,
                let csv = readPublished(summary + "/" + Summary.csvFile).map({ String(decoding: $0, as: UTF8.self) })
            {
                response = response.setting("summaryCSV", .string(csv))
            }
        }
        return response
    }

    func jobObject(_ job: JobRecord) -> JSONValue {
        func int(_ v: Int?) -> JSONValue? { v.map { JSONValue($0) } }
        func int64(_ v: Int64?) -> JSONValue? { v.map { JSONValue($0) } }
        return .fields([
            ("id", JSONValue(job.id)), ("manifest", JSONValue(job.manifestID)), ("trial", JSONValue(job.trialIndex)),
            ("name", .string(job.name)), ("experiment", .string(job.experiment)), ("kind", .string(job.kind)),
            ("state", .string(job.state.rawValue)), ("uid", JSONValue(job.submitterUID)),
            ("user", .string(userName(job.submitterUID))), ("priority", JSONValue(job.priority)),
            ("attempts", JSONValue(job.attempts)), ("failures", JSONValue(job.failures)),
            ("maxFailures", JSONValue(job.maxFailures)), ("threads", JSONValue(job.threads)),
            ("createdAt", JSONValue(job.createdAt)), ("updatedAt", JSONValue(job.updatedAt)),
            ("step", int(job.step)), ("totalSteps", int(job.totalSteps)),
            ("progress", job.progress.map { JSONValue($0) }),
            ("loss", job.loss.flatMap { $0.isFinite ? JSONValue($0) : nil }), ("etaSeconds", int(job.etaSeconds)),
            ("error", job.error.map { .string($0) }), ("exitCode", int(job.exitCode)), ("signal", int(job.termSignal)),
            ("outbox", job.outboxPath.map { .string($0) }), ("startedAt", int64(job.startedAt)),
            ("finishedAt", int64(job.finishedAt)), ("heartbeatAt", int64(job.heartbeatAt)), ("pid", int(job.pid)),
            ("slurmJob", job.slurmJobID.map { .string($0) }), ("slurmState", job.slurmState.map { .string($0) }),
            ("stage", job.stage.map { .string($0) }),
            ("waitingFor", job.waitingFor.isEmpty ? nil : JSONValue(job.waitingFor)), ("blockedBy", int(job.blockedBy)),
            ("notBefore", job.notBefore > queue.clock() ? JSONValue(job.notBefore) : nil),
        ])
    }
}

/// The contents of a file in a published directory, or nil; neither the file nor the directory
/// holding it may be a symbolic link (the outbox only ever holds what workers renamed into it).
func readPublished(_ path: String) -> Data? {
    var st = stat()
    let dir = (path as NSString).deletingLastPathComponent
    guard lstat(dir, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { return nil }
    let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= 64 << 20 else { return nil }
    return readAll(fd, limit: Int(st.st_size))
}

struct ControlError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
