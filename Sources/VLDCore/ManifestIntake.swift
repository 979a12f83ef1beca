// ManifestIntake.swift: turns the bytes of a submitted manifest into queue rows, or into the
// list of reasons it cannot be queued. Shared by the spool and the control socket.

import Foundation
import VLDExperiments
import VLDModel
import VLDStore

public enum IntakeVerdict {
    /// A valid manifest: the experiment name, kind, one job per trial, and the manifest as plain
    /// JSON (`//` comments removed, keys in written order) for the queue, which stores only JSON.
    case valid(name: String, kind: String, jobs: [NewJob], json: String)
    /// Valid JSON so far but cut short (an error at the end of the data): a file still being
    /// written looks like this, so the spool may wait for it.
    case truncated(String)
    /// Well-formed JSON that is not an acceptable manifest; every problem with its JSON path.
    case invalid([ManifestIssue])
}

public enum ManifestIntake {
    /// Validates `data` under the daemon's limits; a trial without resources.threads gets
    /// `config.threadsPerJob`. `submitter` and `job` check references to other jobs'
    /// checkpoints (`job:<id>`): the job must exist, be the submitter's and have succeeded.
    public static func check(
        _ data: Data, config: DaemonConfig, submitter: UInt32? = nil, job: (Int) -> JobRecord? = { _ in nil }
    ) -> IntakeVerdict {
        if data.count > config.limits.maxManifestBytes {
            return .invalid([
                ManifestIssue(
                    path: "",
                    message:
                        "the manifest is \(data.count) bytes; the limit max_manifest_bytes is \(config.limits.maxManifestBytes)"
                )
            ])
        }
        // The parser checks UTF-8 itself, so that a file cut inside a multi-byte character is
        // "cut short" like one cut inside a literal.
        do {
            _ = try JSONValue.parse(data)
        } catch let error as JSONSyntaxError {
            if error.atEnd { return .truncated("not valid JSON: \(error)") }
            return .invalid([ManifestIssue(path: "", message: "not valid JSON: \(error)")])
        } catch {
            return .invalid([ManifestIssue(path: "", message: "not valid JSON: \(error)")])
        }
        do {
            let experiment = try Experiment.parse(data, limits: config.limits, cores: config.threadsPerJob)
            // Checkpoints named by reference: a stage's are checked by the parser; a job's must be
            // the submitter's own and finished; a path must lie under the operator's roots.
            var issues: [ManifestIssue] = []
            for trial in experiment.trials {
                for (field, ref) in trial.manifest.body.checkpointRefs {
                    let path = trial.stage.map { "stages.\($0).\(field)" } ?? field
                    var message: String?
                    switch ref {
                    case .stage: break
                    case let .job(id):
                        if let record = job(id), submitter == nil || record.submitterUID == submitter {
                            if record.state != .succeeded {
                                message = "\(ref) is \(record.state.rawValue); name a job that has succeeded"
                            }
                        } else {
                            message = "\(ref): no job \(id) of yours (a manifest may read only its submitter's jobs)"
                        }
                    case let .path(p):
                        if config.checkpointRoots.isEmpty {
                            message =
                                "\(DisplayText.quoted(p)): this vldd reads no checkpoint directories (checkpoint_roots is not set in vldd.conf); name a stage (@stage) or a job (job:<id>)"
                        } else if !config.allowsCheckpoint(p) {
                            message =
                                "\(DisplayText.quoted(p)) is not under the directories vldd.conf allows (checkpoint_roots: \(config.checkpointRoots.joined(separator: ":")))"
                        }
                    }
                    if let message, !issues.contains(where: { $0.path == path && $0.message == message }) {
                        issues.append(ManifestIssue(path: path, message: message))
                    }
                }
            }
            if !issues.isEmpty { return .invalid(issues) }
            let kind = experiment.trials.first?.manifest.kind ?? "train"
            let single = experiment.trials.count == 1 && experiment.axes.isEmpty
            let jobs = experiment.trials.map { trial -> NewJob in
                let m = trial.manifest
                return NewJob(
                    trialIndex: trial.index,
                    name: single ? experiment.name : "\(experiment.name)/\(trial.directoryName)",
                    params: trial.json.serialized(pretty: false), priority: m.priority, threads: m.threads,
                    memoryBytes: m.memoryMiB << 20, totalSteps: m.body.progress.total, maxFailures: config.maxFailures,
                    stage: trial.stage, kind: m.kind == kind ? nil : m.kind,
                    needs: experiment.prerequisites(of: trial).map(\.index))
            }
            return .valid(
                name: experiment.name, kind: kind, jobs: jobs, json: experiment.source.serialized(pretty: false))
        } catch let error as ManifestError {
            return .invalid(error.issues)
        } catch {
            return .invalid([ManifestIssue(path: "", message: "\(error)")])
        }
    }
}
