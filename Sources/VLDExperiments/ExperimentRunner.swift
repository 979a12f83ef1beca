// ExperimentRunner.swift: runs every trial of an experiment in the foreground (`vldctl run`).
//
//   OUT/<name>/experiment.json        the manifest file as given (a rerun checks it is the same)
//   OUT/<name>/.partial/<trial>/      a trial in progress (checkpoints, metrics, log)
//   OUT/<name>/<trial>/               a finished trial, published by one rename; results.json inside
//   OUT/<name>/summary.json|csv, report.html   the comparison, rewritten after every trial
//
// Running the same command again skips finished trials and resumes the one in progress from its
// last checkpoint. Several processes may run the same command on the same OUT (one per core, or per
// machine on a shared file system): each trial is locked (`.partial/<trial>.lock`, flock) while a
// process runs it, the others skip it, and the summary is rebuilt from every published trial.
// (The daemon runs trials as separate jobs with its own directories; it calls TrainRunner directly.)

import Foundation
import VLDModel

public struct ExperimentProgress {
    /// 0-based position of the running trial and the number of trials.
    public var trialIndex: Int, trialCount: Int
    public var trial: Trial
    public var progress: TrainProgress
    /// Seconds left for the whole experiment, extrapolated by training FLOPs.
    public var experimentETA: Double
}

public enum ExperimentRunner {
    public struct Outcome: Equatable {
        public var completed: Int
        public var total: Int
        public var stopped: Bool
        /// Trials left unfinished because another process holds them.
        public var elsewhere: Int = 0
        public var directory: URL
    }

    /// `only`: the 0-based indexes of the trials to run (nil: all); the summary covers every published trial.
    public static func run(
        _ experiment: Experiment, source: Data, out: URL, threads: Int?, only: Set<Int>? = nil,
        log: @escaping (String) -> Void, progress: @escaping (ExperimentProgress) -> Void,
        shouldStop: @escaping () -> Bool
    ) throws -> Outcome {
        let fm = FileManager.default
        let layout = ExperimentDirectory(out: out, name: experiment.name)
        let root = layout.root
        try fm.createDirectory(at: layout.partial, withIntermediateDirectories: true)
        let sourceFile = layout.source
        if let existing = try? Data(contentsOf: sourceFile) {
            guard let old = try? JSONValue.parse(existing) else {
                throw TrialError("\(sourceFile.path) is not JSON; remove it or use another --out")
            }
            if old != experiment.source {
                // A manifest that keeps every trial that has run (published or in progress) as
                // it was, at the same directory, continues the directory: one that appends stages
                // (the analysis of a finished grid, say), or changes stages that have not started.
                // Any other change is a different experiment.
                let fresh = Dictionary(
                    experiment.trials.map { ($0.directoryName, $0.manifest.json) }, uniquingKeysWith: { a, _ in a })
                guard let previous = try? Experiment.parse(existing, limits: .unbounded),
                    previous.trials.allSatisfy({ t in
                        let ran =
                            fm.fileExists(atPath: layout.published(t).path)
                            || fm.fileExists(atPath: layout.work(t).path)
                        return !ran || fresh[t.directoryName] == t.manifest.json
                    })
                else {
                    throw TrialError(
                        "\(root.path) holds results of a different manifest named \(experiment.name); use another --out or remove it"
                    )
                }
                log(
                    "\(experiment.name): the manifest keeps every trial that ran and now has \(experiment.trials.count) trials (\(previous.trials.count) before); continuing"
                )
                try writeAtomically(String(decoding: source, as: UTF8.self), to: sourceFile)
            }
        } else {
            try writeAtomically(String(decoding: source, as: UTF8.self), to: sourceFile)
        }

        // FLOPs of every trial, for an experiment-wide ETA.
        let flops = experiment.trials.map { t -> Double in
            (try? experiment.estimate(t).flops) ?? 0
        }
        /// Every published trial, read again from disk: other processes may have added some.
        func published() -> [TrialResult] {
            experiment.trials.compactMap { t in
                let dir = layout.published(t)
                return dir.isComplete ? load(t, dir, t.directoryName) : nil
            }
        }
        var stopped = false
        var skipped: [Trial] = []
        /// Whether another process holds `trial`'s lock now.
        func heldElsewhere(_ trial: Trial) -> Bool {
            let fd = open(layout.lock(trial), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            return flock(fd, LOCK_SH | LOCK_NB) != 0
        }
        for trial in experiment.trials {
            let name = trial.directoryName
            let final = layout.published(trial)
            let tag = "[\(trial.index + 1)/\(experiment.trials.count)]"
            if only.map({ !$0.contains(trial.index) }) ?? false { continue }
            if stopped { continue }
            if final.isComplete, load(trial, final, name) != nil { continue }
            // A stage starts when the stages it needs are finished; trials that another process
            // runs are waited for (trials run in stage order, so this process holds no lock now).
            var unmet = experiment.prerequisites(of: trial).filter { !layout.published($0).isComplete }
            var waited = false
            while !unmet.isEmpty, unmet.allSatisfy(heldElsewhere), !shouldStop() {
                if !waited {
                    log(
                        "\(tag) waits for \(unmet.count) trial(s) of stage \(unmet[0].stage ?? "") running in another process"
                    )
                    waited = true
                }
                usleep(500_000)
                unmet = unmet.filter { !layout.published($0).isComplete }
            }
            if !unmet.isEmpty {
                if shouldStop() { stopped = true; continue }
                log(
                    "\(tag) not run: it needs stage \(unmet[0].stage ?? "") (trial \(unmet[0].index + 1)), which is not finished"
                )
                continue
            }
            // One process per trial: the lock is released when the trial ends, or with the process however it ends.
            let lockFD = open(layout.lock(trial), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard lockFD >= 0 else {
                throw TrialError(
                    "cannot open \(layout.lock(trial)): \(String(cString: strerror(errno)))", retryable: true)
            }
            defer { close(lockFD) }
            if flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
                log("\(tag) running in another process; skipped")
                skipped.append(trial)
                continue
            }
            if final.isComplete {
                if load(trial, final, name) != nil { continue }
                log("\(tag) \(final.results.path) is unreadable; running the trial again")
            }
            if fm.fileExists(atPath: final.path) {
                // A damaged or incomplete published directory is kept aside, never merged into.
                let aside = layout.partial.appendingPathComponent("\(name).stale-\(Int(Date().timeIntervalSince1970))")
                try fm.moveItem(at: final.url, to: aside)
                log("\(tag) moved the incomplete \(final.path) to \(aside.path)")
            }
            let work = layout.work(trial)
            let remainingAfter = experiment.trials[(trial.index + 1)...]
                .filter { only?.contains($0.index) ?? true }
                .filter { !layout.published($0).isComplete }
                .map { flops[$0.index] }.reduce(0, +)
            let context = RunContext(
                threads: threads, log: { log("[\(trial.index + 1)/\(experiment.trials.count)] " + $0) },
                progress: { p in
                    // Rate from this trial's own progress, applied to the FLOPs still to do.
                    let trialFlopsLeft = flops[trial.index] * Double(p.steps - p.step) / Double(p.steps)
                    let rate =
                        flops[trial.index] / Double(p.steps)
                        / max(1e-9, p.etaSeconds / Double(max(1, p.steps - p.step)))
                    let eta =
                        p.step == p.steps
                        ? remainingAfter / max(rate, 1) : (trialFlopsLeft + remainingAfter) / max(rate, 1)
                    progress(
                        ExperimentProgress(
                            trialIndex: trial.index, trialCount: experiment.trials.count, trial: trial, progress: p,
                            experimentETA: eta))
                }, shouldStop: shouldStop,
                checkpoint: { ref in try resolve(ref, in: experiment, layout: layout) },
                cacheDirectory: layout.cache)
            let outcome = try Kinds.run(trial, in: work, context: context)
            switch outcome {
            case .stopped:
                stopped = true
            case .completed:
                try work.publish(as: final)
                try Summary.write(experiment: experiment, results: published(), to: root, vldVersion: VLD.version)
            }
        }
        let results = published()
        // Skipped trials that the other processes have not finished by now.
        let elsewhere = skipped.filter { t in !results.contains { $0.trial.index == t.index } }.count
        if !results.isEmpty {
            try Summary.write(experiment: experiment, results: results, to: root, vldVersion: VLD.version)
        }
        if results.count == experiment.trials.count { try? fm.removeItem(at: layout.partial) }
        return Outcome(
            completed: results.count, total: experiment.trials.count, stopped: stopped, elsewhere: elsewhere,
            directory: root)
    }

    /// The checkpoint directory `ref` names: a stage's in this experiment's directory, or a path.
    static func resolve(_ ref: CheckpointRef, in experiment: Experiment, layout: ExperimentDirectory) throws -> URL {
        switch ref {
        case .stage:
            guard let trial = experiment.trial(for: ref) else {
                throw TrialError("\(ref) names no trial of \(experiment.name)")
            }
            let dir = layout.published(trial)
            guard dir.isComplete else {
                throw TrialError("\(ref): trial \(trial.index + 1) (\(dir.path)) has not finished", retryable: true)
            }
            return dir.checkpoint
        case .job:
            throw TrialError("\(ref) names a vldd job; vldctl run resolves stages and paths only (submit it to vldd)")
        case let .path(p):
            return URL(fileURLWithPath: p)
        }
    }

    /// Reads a finished trial directory (results.json and metrics.jsonl); `name` is how reports link to it.
    public static func load(_ trial: Trial, _ dir: TrialDirectory, _ name: String) -> TrialResult? {
        guard let json = dir.readResults() else { return nil }
        return TrialResult(trial: trial, directory: name, results: json, metrics: dir.readMetrics())
    }
}
