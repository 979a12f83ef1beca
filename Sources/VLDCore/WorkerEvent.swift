// WorkerEvent.swift: what a worker tells the daemon, one JSON object per line on fd 3.
//
//   {"event":"progress","done":120,"total":800,"unit":"steps","loss":1.93,"eta":41.5,"rate":52000}
//   {"event":"progress",...,"evalLoss":1.2}                 on an evaluation
//   {"event":"started","restart":1}                         first, each time the worker starts (restart:
//                                                           Slurm's SLURM_RESTART_COUNT, when set)
//   {"event":"heartbeat"}                                   every heartbeatSeconds, from its own thread
//   {"event":"stopped","done":400}                          checkpointed on SIGTERM; exit 75 follows
//   {"event":"published","path":"/var/lib/vldd/outbox/17-vld-quick-001-..."}
//   {"event":"failed","message":"...","retryable":false}
//
// The worker decides whether a failure is worth retrying (TrialError.isRetryable) and says so in
// `failed`; the daemon reads the flag and never the message. Both ends use this type, so the wire
// format has one definition; a line that is not one of these events is ignored (a newer worker
// may add events an older daemon does not know).

import Foundation
import VLDExperiments

public enum WorkerEvent: Equatable, Sendable {
    /// Work done of `total` in `unit` (training steps for `train`); `rate` is in the kind's
    /// throughput unit (tokens per second for `train`).
    case progress(
        done: Int, total: Int, unit: String, loss: Double?, evalLoss: Double?, etaSeconds: Double?, rate: Double?)
    case started(restart: Int?)
    case heartbeat
    case stopped(done: Int)
    case published(path: String)
    case failed(message: String, retryable: Bool)

    public var json: JSONValue {
        func optional(_ key: String, _ v: Double?) -> [(String, JSONValue)] { v.map { [(key, JSONValue($0))] } ?? [] }
        switch self {
        case let .progress(done, total, unit, loss, evalLoss, eta, rate):
            return .object(
                [
                    ("event", .string("progress")), ("done", JSONValue(done)), ("total", JSONValue(total)),
                    ("unit", .string(unit)),
                ]
                    + optional("loss", loss) + optional("evalLoss", evalLoss) + optional("eta", eta)
                    + optional("rate", rate))
        case let .started(restart):
            return .object([("event", .string("started"))] + (restart.map { [("restart", JSONValue($0))] } ?? []))
        case .heartbeat:
            return .object([("event", .string("heartbeat"))])
        case let .stopped(done):
            return .object([("event", .string("stopped")), ("done", JSONValue(done))])
        case let .published(path):
            return .object([("event", .string("published")), ("path", .string(path))])
        case let .failed(message, retryable):
            return .object([
                ("event", .string("failed")), ("message", .string(message)), ("retryable", .bool(retryable)),
            ])
        }
    }

    /// The line as written on the pipe (no newline).
    public var line: String { json.serialized(pretty: false) }

    /// Reads one line; nil for anything that is not a well-formed event.
    public init?(line bytes: [UInt8]) {
        guard let value = try? JSONValue.parse(Data(bytes)), let event = value["event"]?.stringValue else { return nil }
        switch event {
        case "progress":
            guard let done = value["done"]?.intValue, let total = value["total"]?.intValue,
                let unit = value["unit"]?.stringValue
            else { return nil }
            self = .progress(
                done: done, total: total, unit: unit, loss: value["loss"]?.doubleValue,
                evalLoss: value["evalLoss"]?.doubleValue, etaSeconds: value["eta"]?.doubleValue,
                rate: value["rate"]?.doubleValue)
        case "started":
            self = .started(restart: value["restart"]?.intValue)
        case "heartbeat":
            self = .heartbeat
        case "stopped":
            guard let done = value["done"]?.intValue else { return nil }
            self = .stopped(done: done)
        case "published":
            guard let path = value["path"]?.stringValue else { return nil }
            self = .published(path: path)
        case "failed":
            guard let message = value["message"]?.stringValue, let retryable = value["retryable"]?.boolValue else {
                return nil
            }
            self = .failed(message: message, retryable: retryable)
        default:
            return nil
        }
    }
}
