// Grid.swift: a manifest file expands into trials.
//
// `grid` maps dotted paths to lists of values; the trials are the Cartesian product in the order
// the keys are written (the last key varies fastest). A value that is an object is merged into the
// object at its path, so one grid axis can change several fields together:
//
//   "grid": { "model": [{"schedule": "base"}, {"schedule": "cyc(2)"}, {"layers": 12}], "seed": [1, 2, 3] }
//
// is 9 trials, and the third model is an untied 12-layer baseline. Each trial is validated as a
// manifest on its own; an error caused by a grid value is reported at that value's path
// (`grid.model.schedule[1]: ...`).

import Foundation

/// One trial of an experiment: its position, the grid values that made it, and the manifest.
public struct Trial: Equatable, Sendable {
    /// 0-based position in the expansion.
    public var index: Int
    /// The grid assignments of this trial, in grid order (path, value).
    public var assignments: [(String, JSONValue)]
    public var manifest: Manifest
    /// The trial as JSON, before defaults are filled in.
    public var json: JSONValue
    /// The stage it belongs to in a manifest with stages (Stages.swift), and its position there.
    public var stage: String? = nil
    public var stageTrial = 0

    public static func == (a: Trial, b: Trial) -> Bool {
        a.index == b.index && a.manifest == b.manifest && a.json == b.json && a.stage == b.stage
            && a.stageTrial == b.stageTrial
    }

    /// A short label of the stage and the grid values other than the seed, e.g. "schedule=cyc(2)"
    /// or "student schedule=cyc(2)"; the condition that seeds are averaged over. "all" when the
    /// grid varies nothing but the seed and there are no stages.
    public var condition: String {
        let parts = assignments.filter { $0.0 != "seed" }.flatMap { Trial.label(path: $0.0, value: $0.1) }
        let label = ((stage.map { [$0] } ?? []) + parts).joined(separator: " ")
        return label.isEmpty ? "all" : label
    }

    /// The directory name of this trial: index, condition and seed, filesystem-safe.
    public var directoryName: String {
        let safe = condition.map { c -> Character in
            c.isLetter || c.isNumber || "._-=,".contains(c) ? c : (c == " " ? "_" : "-")
        }
        return String(format: "%03d-", index) + String(String(safe).prefix(80)) + "-seed\(manifest.seed)"
    }

    static func label(path: String, value: JSONValue) -> [String] {
        let leaf = path.split(separator: ".").last.map(String.init) ?? path
        if case let .object(fields) = value {
            return fields.flatMap { label(path: $0.0, value: $0.1) }
        }
        if case let .string(s) = value { return ["\(leaf)=\(s)"] }
        return ["\(leaf)=\(value.serialized(pretty: false))"]
    }
}

/// A manifest file: its name and its trials.
public struct Experiment: Sendable {
    public var name: String
    public var trials: [Trial]
    /// The grid axes (paths) in order; empty without a grid.
    public var axes: [String]
    /// The file's JSON as written.
    public var source: JSONValue
    /// The stages in the order they run (empty for a manifest without `stages`); their trials are
    /// consecutive in `trials`.
    public var stages: [Stage] = []

    /// Parses a manifest file and expands its grid. Throws `ManifestError` listing every problem.
    public static func parse(
        _ data: Data, limits: Limits = Limits(),
        cores: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws -> Experiment {
        guard data.count <= limits.maxManifestBytes else {
            throw ManifestError([
                ManifestIssue(
                    path: "",
                    message:
                        "the manifest is \(data.count) bytes; the limit maxManifestBytes is \(limits.maxManifestBytes)")
            ])
        }
        let value: JSONValue
        do { value = try JSONValue.parse(data) } catch let e as JSONSyntaxError {
            throw ManifestError([ManifestIssue(path: "", message: "not valid JSON: \(e)")])
        }
        guard case let .object(fields) = value else {
            throw ManifestError([ManifestIssue(path: "", message: "expected a JSON object, got \(value.typeName)")])
        }
        if fields.contains(where: { $0.0 == "stages" }) {
            return try parseStaged(value, fields: fields, limits: limits, cores: cores)
        }
        let (trials, axes) = try expand(value, limits: limits, cores: cores)
        // "@stage" means something only in a manifest with stages.
        var issues: [ManifestIssue] = []
        for trial in trials {
            for (path, ref) in trial.manifest.body.checkpointRefs where ref.stage != nil {
                let issue = ManifestIssue(
                    path: path,
                    message: "\(ref) names a stage, but this manifest has no stages (see vldctl example distill)")
                if !issues.contains(issue) { issues.append(issue) }
            }
        }
        if !issues.isEmpty { throw ManifestError(issues) }
        let name = trials.first?.manifest.name ?? "unnamed"
        return Experiment(name: name, trials: trials, axes: axes, source: value)
    }

    /// Expands the grid of a manifest object (without stages) into validated trials.
    static func expand(_ value: JSONValue, limits: Limits, cores: Int) throws -> (trials: [Trial], axes: [String]) {
        guard case let .object(fields) = value else {
            throw ManifestError([ManifestIssue(path: "", message: "expected a JSON object, got \(value.typeName)")])
        }
        var base = value
        base.remove(key: "grid")
        var axes: [(String, [JSONValue])] = []
        var issues: [ManifestIssue] = []
        if let grid = fields.first(where: { $0.0 == "grid" })?.1 {
            guard case let .object(entries) = grid else {
                throw ManifestError([
                    ManifestIssue(
                        path: "grid",
                        message: "expected an object mapping dotted paths to lists of values, got \(grid.typeName)")
                ])
            }
            for (path, values) in entries {
                let p = joinPath("grid", path)
                let parts = path.split(separator: ".", omittingEmptySubsequences: false)
                if path.isEmpty || parts.contains(where: \.isEmpty) {
                    issues.append(ManifestIssue(path: p, message: "not a dotted path such as model.schedule"))
                    continue
                }
                if parts.count > 8 || path.utf8.count > 200 {
                    issues.append(
                        ManifestIssue(
                            path: joinPath("grid", String(path.prefix(60)) + (path.count > 60 ? "..." : "")),
                            message: "a grid path has at most 8 parts and 200 bytes, e.g. task.0.maxOps"))
                    continue
                }
                if ["name", "grid", "kind", "stages"].contains(path) {
                    issues.append(ManifestIssue(path: p, message: "\(path) cannot vary in a grid"))
                    continue
                }
                guard case let .array(list) = values, !list.isEmpty else {
                    issues.append(
                        ManifestIssue(path: p, message: "expected a non-empty list of values, got \(values.brief)"))
                    continue
                }
                axes.append((path, list))
            }
        }
        if !issues.isEmpty { throw ManifestError(issues) }
        let count = axes.reduce(1) {
            $0.multipliedReportingOverflow(by: $1.1.count).overflow ? Int.max : $0 * $1.1.count
        }
        guard count <= limits.maxTrials else {
            throw ManifestError([
                ManifestIssue(
                    path: "grid",
                    message:
                        "expands to \(count == Int.max ? "too many" : String(count)) trials; the limit maxTrials is \(limits.maxTrials)"
                )
            ])
        }

        var trials: [Trial] = []
        var all: [ManifestIssue] = []
        var failing: [ManifestIssue: [Int]] = [:]  // issues not tied to an axis -> trials that have them
        var labels: [Int: String] = [:]
        for index in 0..<count {
            var json = base
            var assignments: [(String, JSONValue)] = []
            var rest = index
            var choice: [Int] = Array(repeating: 0, count: axes.count)
            for a in axes.indices.reversed() {
                choice[a] = rest % axes[a].1.count
                rest /= axes[a].1.count
            }
            for (a, axis) in axes.enumerated() {
                let v = axis.1[choice[a]]
                json.set(path: axis.0.split(separator: ".").map(String.init), to: v)
                assignments.append((axis.0, v))
            }
            labels[index] = assignments.map { "\($0.0)=\($0.1.brief)" }.joined(separator: ", ")
            do {
                let m = try Manifest.parse(json, limits: limits, cores: cores)
                trials.append(Trial(index: index, assignments: assignments, manifest: m, json: json))
            } catch let e as ManifestError {
                for issue in e.issues {
                    // Attribute the problem to the grid value that caused it, when one did.
                    // Manifest errors write list elements as task[0]; grid paths as task.0.
                    let dotted = issue.path.replacingOccurrences(of: "[", with: ".").replacingOccurrences(
                        of: "]", with: "")
                    var located = issue
                    var attributed = false
                    for (a, axis) in axes.enumerated() where dotted == axis.0 || dotted.hasPrefix(axis.0 + ".") {
                        located.path = "grid.\(axis.0)[\(choice[a])]" + dotted.dropFirst(axis.0.count)
                        attributed = true
                    }
                    if attributed {
                        if !all.contains(located) { all.append(located) }
                    } else {
                        if failing[issue] == nil { all.append(issue) }
                        failing[issue, default: []].append(index)
                    }
                }
            }
        }
        // A problem that only some trials have names the first of them.
        if count > 1 {
            all = all.map { issue in
                guard let which = failing[issue], which.count < count, let first = which.first else { return issue }
                var named = issue
                named.message += " (in \(which.count) of \(count) trials, e.g. trial \(first): \(labels[first] ?? ""))"
                return named
            }
        }
        if !all.isEmpty { throw ManifestError(all) }
        return (trials, axes.map(\.0))
    }
}
