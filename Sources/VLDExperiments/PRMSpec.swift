// PRMSpec.swift: the `prm` section of a prm manifest (PRMKind.swift): how the policy's solutions
// are drawn and labelled, read with JSON-path errors and written back resolved.

import VLDTasks

public struct PRMSpec: Equatable, Sendable {
    /// How each step is labelled (StepLabels.swift).
    public var labels: StepLabelKind = .mcSoft
    /// Training problems, and the policy's solutions sampled per problem.
    public var problems = 1000
    public var samples = 4
    /// mc_soft and mc_hard: the policy's rollouts from each step's prefix (R); oracle and orm
    /// ignore it.
    public var rollouts = 8
    /// The policy's sampling temperature for solutions and rollouts.
    public var temperature = 0.8
    /// Problems (from a set of their own) whose solutions, labelled by the oracle, measure the
    /// PRM after each evaluation.
    public var heldOutProblems = 200

    var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("labels", .string(labels.rawValue)), ("problems", JSONValue(problems)), ("samples", JSONValue(samples)),
        ]
        if labels == .mcSoft || labels == .mcHard { f.append(("rollouts", JSONValue(rollouts))) }
        f += [("temperature", JSONValue(temperature)), ("heldOutProblems", JSONValue(heldOutProblems))]
        return .object(f)
    }

    /// Candidates the trial labels and scores (training and held out).
    var candidates: Int { (problems + heldOutProblems) * samples }

    static func parse(_ r: FieldReader) -> PRMSpec {
        var r = r
        var s = PRMSpec()
        s.labels =
            StepLabelKind(
                rawValue: r.choice(
                    "labels", default: s.labels.rawValue, from: StepLabelKind.allCases.map(\.rawValue))) ?? .mcSoft
        s.problems = r.int("problems", default: s.problems, in: 1...1_000_000)
        s.samples = r.int("samples", default: s.samples, in: 1...1024)
        // Read for every kind (a grid over labels shares one prm section); oracle and orm ignore it.
        s.rollouts = r.int("rollouts", default: s.rollouts, in: 1...1024)
        s.temperature = r.double("temperature", default: s.temperature, in: 0.01...10)
        s.heldOutProblems = r.int("heldOutProblems", default: s.heldOutProblems, in: 1...100_000)
        r.finish()
        return s
    }
}
