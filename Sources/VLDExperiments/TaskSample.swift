// TaskSample.swift: generated documents of a task, as a researcher inspects them
// (`vldctl task sample`): what the model is trained on, or the held-out problems it is
// evaluated on at one difficulty, with their fields.

import Foundation
import VLDTasks

public enum TaskSample {
    /// Reads a task spec as a manifest's `task` holds it (an object with "type", or a list of
    /// them), with the manifest's validation and JSON-path errors.
    public static func parseSpec(_ text: String) throws -> [TaskSpec] {
        let value: JSONValue
        do { value = try JSONValue.parse(text) } catch {
            throw ManifestError([ManifestIssue(path: "", message: "not valid JSON: \(error)")])
        }
        let issues = IssueList()
        let specs = TrainBody.parseTasks(value, issues: issues)
        if !issues.items.isEmpty {
            throw ManifestError(
                issues.items.map {
                    var i = $0; i.path = i.path.replacingOccurrences(of: "task", with: "spec", options: .anchored);
                    return i
                })
        }
        return specs
    }

    /// `count` documents of each task. With `level` (an iGSM op count or a chain length k), the
    /// held-out problems the evaluation uses at that difficulty; otherwise training documents.
    /// Each is a JSON object: task, index, seed, split, the difficulty, the problem (what the
    /// model is given), the solution (what it must write), the answer and the token count.
    public static func documents(_ specs: [TaskSpec], seed: UInt64, count: Int, level: Int?, window: Int = 64) throws
        -> [JSONValue]
    {
        var out: [JSONValue] = []
        for spec in specs {
            for index in 0..<count {
                var f: [(String, JSONValue)] = [
                    ("task", .string(spec.type)), ("index", JSONValue(index)), ("seed", JSONValue(Int(seed))),
                ]
                switch spec {
                case let .igsm(c, _, _, _):
                    let task = try IGSMTask(config: c)
                    let p =
                        try level.map { try task.problem(seed: seed, index: index, ops: $0, split: .test) }
                        ?? task.trainingProblem(seed: seed, index: index)
                    f += [
                        ("split", .string(level == nil ? "train" : "test")), ("ops", JSONValue(p.ops)),
                        ("problem", .string(p.prompt.joined(separator: " "))),
                        ("solution", .string(p.solution.joined(separator: " "))),
                        ("answer", JSONValue(p.answer)), ("words", JSONValue(p.prompt.count + p.solution.count)),
                    ]
                case let .chain(c, _, _, _):
                    let task = try ChainTask(config: c)
                    let p =
                        try level.map { try task.problem(seed: seed, index: index, k: $0, split: .test) }
                        ?? task.trainingProblem(seed: seed, index: index)
                    let prompt = p.prompt(c.format), solution = p.solution(c.format)
                    f += [
                        ("split", .string(level == nil ? "train" : "test")), ("k", JSONValue(p.k)),
                        ("format", .string(c.format.rawValue)),
                        ("problem", .string(prompt.joined(separator: " "))),
                        ("solution", .string(solution.joined(separator: " "))),
                        ("answer", JSONValue(p.answer)), ("words", JSONValue(prompt.count + solution.count)),
                    ]
                case let .bios(c, _, _):
                    let doc = try BiosTask(config: c).trainingDocument(seed: seed, index: index)
                    f += [
                        ("split", .string("train")), ("person", JSONValue(index % c.people)),
                        ("text", .string(doc.words.joined(separator: " "))), ("words", JSONValue(doc.words.count)),
                    ]
                case let .world(c, _, _):
                    let doc = try WorldTask(config: c).trainingDocument(seed: seed, index: index)
                    f += [
                        ("split", .string("train")), ("text", .string(doc.words.joined(separator: " "))),
                        ("words", JSONValue(doc.words.count)),
                    ]
                case let .randomTokens(c, _):
                    let doc = try RandomTokensTask(config: c, window: window).trainingDocument(seed: seed, index: index)
                    f += [
                        ("split", .string("train")), ("window", JSONValue(index)),
                        ("text", .string(doc.words.joined(separator: " "))),
                        ("words", JSONValue(doc.words.count)),
                    ]
                }
                out.append(.object(f))
            }
        }
        return out
    }
}
