// ExperimentKind.swift: the seam every experiment kind goes through (issue 12).
//
// A manifest is a common header (name, kind, seed, priority, resources; `grid` is expanded before
// a trial is read) and a body that belongs to its kind. A kind is one type conforming to
// `ExperimentKind`, in a file of its own, plus one line in `Kinds.registry`; intake, the worker,
// `vldctl run` and `vldctl validate` reach the kind only through this file:
//
// - `parse` reads the body's fields from the manifest's root object with the strict field reader,
//   so an unknown or malformed field is reported with its JSON path like any other;
// - the body writes itself out resolved (every default filled in), estimates what a trial costs
//   (parameters, memory, FLOPs, and the progress total with its unit), checks what needs several
//   sections at once, and names the scalars of its results.json that summaries compare;
// - `run` runs (or resumes) one trial in a TrialDirectory and returns its outcome.

import Foundation
import VLDModel

/// What one trial of a kind is expected to cost, before it runs: shown by `vldctl validate` and
/// used for experiment-wide ETAs (the queue stores the progress total).
public struct TrialEstimate: Equatable, Sendable {
    /// Total trainable parameters of the model the trial builds (0 if it builds none).
    public var parameters: Int
    /// Peak memory in MiB.
    public var memoryMiB: Double
    /// Floating-point operations of the whole trial.
    public var flops: Double
    /// Progress runs from 0 to this, in `progressUnit` (e.g. 800 "steps").
    public var progressTotal: Int
    public var progressUnit: String

    public init(parameters: Int, memoryMiB: Double, flops: Double, progressTotal: Int, progressUnit: String) {
        self.parameters = parameters
        self.memoryMiB = memoryMiB
        self.flops = flops
        self.progressTotal = progressTotal
        self.progressUnit = progressUnit
    }
}

/// The common part of every manifest, read before the body (the body's checks may need it).
public struct ManifestHeader: Equatable, Sendable {
    public var name: String
    public var kind: String
    public var seed: UInt64
    public var priority: Int
    public var threads: Int
    public var memoryMiB: Int
}

/// A kind's part of a trial manifest.
public protocol KindBody: Sendable {
    /// The body's fields with every default written out, in the order they follow the header in
    /// the resolved trial (manifest.json).
    var resolvedFields: [(String, JSONValue)] { get }
    /// How far a trial has to go, and in what (cheap: no data or model is built).
    var progress: (total: Int, unit: String) { get }
    /// What a trial of this body costs.
    func estimate(_ header: ManifestHeader) throws -> TrialEstimate
    /// The scalars of a finished trial's results.json that a summary compares across trials, in a
    /// stable order.
    func summaryScalars(_ results: JSONValue) -> [(String, Double)]
    /// The checkpoints a trial reads (train's `init`, distill's `teacher`) with the path of the
    /// field that names each, relative to the manifest (e.g. "init"): a pipeline checks that the
    /// stages they name exist and runs those first.
    var checkpointRefs: [(path: String, ref: CheckpointRef)] { get }
}

extension KindBody {
    public var checkpointRefs: [(path: String, ref: CheckpointRef)] { [] }

    /// The numbers of a results.json's `metrics` object, in order: the summary scalars of a kind
    /// whose results keep them there.
    func metricScalars(_ results: JSONValue) -> [(String, Double)] {
        var out: [(String, Double)] = []
        if case let .object(f)? = results["metrics"] {
            for (k, v) in f { if case let .number(n) = v { out.append((k, n)) } }
        }
        return out
    }
}

/// An experiment kind (kinds live in this module: they read manifests with its field reader).
protocol ExperimentKind {
    associatedtype Body: KindBody & Equatable
    /// The manifest's `kind` value.
    static var name: String { get }
    /// Reads the body from the manifest's root object (the header's fields are already read);
    /// every problem goes to the reader's issue list with its path. Nil if the body is unusable.
    static func parse(_ root: inout FieldReader, header: ManifestHeader, limits: Limits) -> Body?
    /// Checks that need several sections at once (the model against the task, resources against
    /// the limits); run only when the manifest has no other problem.
    static func crossCheck(_ body: Body, header: ManifestHeader, issues: IssueList, limits: Limits)
    /// Runs (or resumes) one trial in `dir`.
    static func run(_ trial: Trial, body: Body, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome
    /// Sections of the summary report that only this kind has, after the common ones, given the
    /// conditions whose trials are of this kind (nothing by default).
    static func reportSections(_ report: inout HTMLReport, conditions: [Summary.Condition])
}

extension ExperimentKind {
    static func reportSections(_ report: inout HTMLReport, conditions: [Summary.Condition]) {}
}

/// A kind with its type erased, as the registry holds it.
struct KindEntry: Sendable {
    let name: String
    let parse: @Sendable (inout FieldReader, ManifestHeader, Limits) -> (any KindBody)?
    let run: @Sendable (Trial, TrialDirectory, RunContext) throws -> TrialOutcome
    let crossCheck: @Sendable (any KindBody, ManifestHeader, IssueList, Limits) -> Void
    let equal: @Sendable (any KindBody, any KindBody) -> Bool
    let reportSections: @Sendable (inout HTMLReport, [Summary.Condition]) -> Void

    init<K: ExperimentKind>(_ kind: K.Type) {
        name = K.name
        parse = { root, header, limits in K.parse(&root, header: header, limits: limits) }
        run = { trial, dir, context in
            guard let body = trial.manifest.body as? K.Body else {
                throw TrialError("trial \(trial.index) is not a \(K.name) trial", retryable: false)
            }
            return try K.run(trial, body: body, in: dir, context: context)
        }
        crossCheck = { body, header, issues, limits in
            if let body = body as? K.Body { K.crossCheck(body, header: header, issues: issues, limits: limits) }
        }
        equal = { a, b in (a as? K.Body).map { x in (b as? K.Body).map { x == $0 } ?? false } ?? false }
        reportSections = { report, conditions in K.reportSections(&report, conditions: conditions) }
    }
}

public enum Kinds {
    /// Every kind vld runs. Adding a kind is a file with its type and one line here.
    static let registry: [KindEntry] = [
        KindEntry(TrainKind.self),
        KindEntry(DistillKind.self),
        KindEntry(PRMKind.self),
        KindEntry(TTSKind.self),
        KindEntry(PhaseKind.self),
        KindEntry(SteerKind.self),
    ]

    /// Kinds that are planned: a manifest asking for one gets "not available yet", not "unknown".
    public static let planned: [String] = []

    /// The names of the kinds this build runs.
    public static var names: [String] { registry.map(\.name) }

    static func entry(_ name: String) -> KindEntry? { registry.first { $0.name == name } }

    /// Runs (or resumes) `trial` in `dir` with its kind.
    public static func run(_ trial: Trial, in dir: TrialDirectory, context: RunContext) throws -> TrialOutcome {
        guard let entry = entry(trial.manifest.kind) else {
            throw TrialError("vld \(VLD.version) cannot run \(trial.manifest.kind) trials", retryable: false)
        }
        return try entry.run(trial, dir, context)
    }
}
