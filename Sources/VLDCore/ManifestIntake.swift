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
    /// `config.threadsPerJob`.
    public static func check(_ data: Data, config: DaemonConfig) -> IntakeVerdict {
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
            // Until the queue holds dependencies (queue schema v2), the daemon runs no pipelines and
            // reads no checkpoint on a submitter's behalf: both are refused here, by path.
            if !experiment.stages.isEmpty {
                return .invalid([
                    ManifestIssue(
                        path: "stages",
                        message:
                            "vldd \(VLD.version) does not run pipelines yet; run this manifest with 'vldctl run' (it runs the stages in order)"
                    )
                ])
            }
            if let (path, ref) = experiment.trials.lazy.flatMap({ $0.manifest.body.checkpointRefs }).first {
                return .invalid([
                    ManifestIssue(
                        path: path,
                        message:
                            "vldd \(VLD.version) does not read checkpoints (\(ref)) for a submitter yet; use 'vldctl run'"
                    )
                ])
            }
            let kind = experiment.trials.first?.manifest.kind ?? "train"
            let single = experiment.trials.count == 1 && experiment.axes.isEmpty
            let jobs = experiment.trials.map { trial -> NewJob in
                let m = trial.manifest
                return NewJob(
                    trialIndex: trial.index,
                    name: single ? experiment.name : "\(experiment.name)/\(trial.directoryName)",
                    params: trial.json.serialized(pretty: false), priority: m.priority, threads: m.threads,
                    memoryBytes: m.memoryMiB << 20, totalSteps: m.body.progress.total, maxFailures: config.maxFailures)
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
