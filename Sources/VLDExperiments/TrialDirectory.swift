// TrialDirectory.swift: the layout of a trial's output (DESIGN.md "Outbox") in one place. A run
// writes into a work directory and publishes it by one rename; results.json, written last, is the
// commit marker, so a directory without it is never a result. `vldctl run`, the daemon's worker,
// its summary and the control socket find a trial's files through these names and nothing else.

import Foundation

/// One trial's directory (in progress or published).
public struct TrialDirectory: Equatable, Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public var path: String { url.path }
    /// The resolved trial (every default written out); a restart checks it against its trial.
    public var manifest: URL { url.appendingPathComponent("manifest.json") }
    /// Human-readable progress lines.
    public var log: URL { url.appendingPathComponent("log.txt") }
    /// One JSON object per evaluation.
    public var metrics: URL { url.appendingPathComponent("metrics.jsonl") }
    /// The latest checkpoint (weights, optimizer, state); a run resumes from it.
    public var checkpoint: URL { url.appendingPathComponent("checkpoint") }
    /// The trial's plots.
    public var report: URL { url.appendingPathComponent("report.html") }
    /// Final metrics, written last.
    public var results: URL { url.appendingPathComponent(TrialDirectory.commitMarker) }

    /// The file whose presence (a regular file, not a link) makes a directory a finished trial.
    public static let commitMarker = "results.json"

    /// True when the commit marker is a regular file (links are not followed).
    public var isComplete: Bool {
        var st = stat()
        return lstat(results.path, &st) == 0 && st.st_mode & S_IFMT == S_IFREG
    }

    /// results.json, or nil if it is missing or not JSON.
    public func readResults() -> JSONValue? {
        guard let data = try? Data(contentsOf: results) else { return nil }
        return try? JSONValue.parse(data)
    }

    /// Every evaluation in metrics.jsonl (unreadable lines skipped; none if the file is missing).
    public func readMetrics() -> [JSONValue] {
        guard let text = try? String(contentsOf: metrics, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
    }

    /// Publishes this directory as `final` by one rename(2).
    public func publish(as final: TrialDirectory) throws {
        guard rename(path, final.path) == 0 else {
            throw TrialError(
                "cannot publish \(path) as \(final.path): \(String(cString: strerror(errno)))", retryable: true)
        }
    }
}

/// The output of `vldctl run` for one manifest, `<out>/<name>/`: the manifest as run, a published
/// directory per finished trial, `.partial/` with the trials in progress and their locks, and the
/// comparison of the finished trials (summary.json, summary.csv, report.html; `Summary`).
public struct ExperimentDirectory: Equatable, Sendable {
    public let root: URL
    public init(out: URL, name: String) { root = out.appendingPathComponent(name) }

    /// The manifest file as given; a later run into the same directory must match it.
    public var source: URL { root.appendingPathComponent("experiment.json") }
    public var partial: URL { root.appendingPathComponent(".partial") }
    /// Files computed once for several trials (distill's teacher cache); safe to delete.
    public var cache: URL { root.appendingPathComponent(".cache") }
    /// Where `trial` is published.
    public func published(_ trial: Trial) -> TrialDirectory {
        TrialDirectory(root.appendingPathComponent(trial.directoryName))
    }
    /// Where `trial` runs until it is published.
    public func work(_ trial: Trial) -> TrialDirectory {
        TrialDirectory(partial.appendingPathComponent(trial.directoryName))
    }
    /// The lock a process holds while it runs `trial`.
    public func lock(_ trial: Trial) -> String { partial.appendingPathComponent(trial.directoryName + ".lock").path }
    /// The comparison's files.
    public var summaryJSON: URL { root.appendingPathComponent(Summary.jsonFile) }
    public var summaryCSV: URL { root.appendingPathComponent(Summary.csvFile) }
    public var report: URL { root.appendingPathComponent(Summary.reportFile) }
}
