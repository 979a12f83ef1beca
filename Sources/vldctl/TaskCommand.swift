// TaskCommand.swift: `vldctl task sample`, the documents a task generates, as the model sees them.

import Foundation
import VLDExperiments

enum TaskCommand {
    static let usage = """
        usage: vldctl task sample SPEC [--n N] [--seed S] [--k K | --ops N] [--json]

        Prints generated documents of a task with their fields (problem, solution, answer, chain
        length k or op count, split). SPEC is a task as a manifest writes it, inline or in a file,
        or a manifest file (its task is used):

          vldctl task sample '{"type": "chain", "format": "cot", "maxK": 3}' --n 3
          vldctl task sample examples/vld-quick.json --ops 7

          --n     documents per task (default 5, at most 10000)
          --seed  the data seed (default 1), as a manifest's seed
          --k     held-out chain problems of length K (the evaluation's), instead of training ones
          --ops   held-out iGSM-lite problems with N operations, instead of training ones
          --json  one JSON object per line
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.contains("-h") || args.contains("--help") || args.isEmpty { print(usage); return args.isEmpty ? 64 : 0 }
        guard args[0] == "sample" else {
            throw UsageError(
                message: "unknown task command '\(DisplayText.escaped(args[0]))'; expected sample\n\(usage)")
        }
        let p = try CLI.parse(Array(args.dropFirst()), options: ["--n", "--seed", "--k", "--ops"], flags: ["--json"])
        guard p.positional.count == 1 else { throw UsageError(message: "task sample needs one SPEC\n\(usage)") }
        let count = try CLI.int(p.values, "--n", default: 5, min: 1, max: 10_000)
        let seed = try CLI.int(p.values, "--seed", default: 1, min: 0)
        guard p.values["--k"] == nil || p.values["--ops"] == nil else {
            throw UsageError(message: "give --k or --ops, not both")
        }
        let level =
            p.values["--k"] != nil
            ? try CLI.int(p.values, "--k", default: 1, max: 64)
            : p.values["--ops"] != nil ? try CLI.int(p.values, "--ops", default: 1, max: 21) : nil
        var text = p.positional[0]
        if FileManager.default.fileExists(atPath: text) {
            guard let data = FileManager.default.contents(atPath: text) else {
                throw UsageError(message: "cannot read \(text)")
            }
            text = String(decoding: data, as: UTF8.self)
            // A manifest: sample its task.
            if let value = try? JSONValue.parse(text), let task = value["task"] {
                text = task.serialized(pretty: false)
            }
        }
        let specs: [TaskSpec]
        do { specs = try TaskSample.parseSpec(text) } catch let e as ManifestError {
            for issue in e.issues { CLI.error(DisplayText.escaped(issue.description)) }
            return 64
        }
        if level != nil {
            let kinds = Set(specs.map(\.type))
            if p.values["--k"] != nil && !kinds.contains("chain") {
                throw UsageError(message: "--k applies to chain tasks")
            }
            if p.values["--ops"] != nil && !kinds.contains("igsm") {
                throw UsageError(message: "--ops applies to igsm tasks")
            }
        }
        let selected =
            level == nil ? specs : specs.filter { p.values["--k"] != nil ? $0.type == "chain" : $0.type == "igsm" }
        let documents: [JSONValue]
        do { documents = try TaskSample.documents(selected, seed: UInt64(seed), count: count, level: level) } catch {
            CLI.error("\(error)")
            return 1
        }
        for doc in documents {
            if p.flags.contains("--json") {
                print(doc.serialized(pretty: false))
                continue
            }
            guard case let .object(fields) = doc else { continue }
            let head = ["task", "index", "split", "k", "ops", "format"].compactMap { key in
                doc[key].map { key == "task" || key == "index" ? briefText($0) : "\(key) \(briefText($0))" }
            }
            print(DisplayText.escaped(head.joined(separator: " ")))
            for (key, value) in fields where ["problem", "solution", "answer", "text", "words"].contains(key) {
                print(
                    "  " + key.padding(toLength: 9, withPad: " ", startingAt: 0) + DisplayText.escaped(briefText(value))
                )
            }
        }
        return 0
    }

    static func briefText(_ v: JSONValue) -> String {
        if case let .string(s) = v { return s }
        return v.serialized(pretty: false)
    }
}
