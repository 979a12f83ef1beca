// CheckpointCommand.swift: `vldctl checkpoint inspect DIR` and `vldctl checkpoint logits DIR`.

import Foundation
import VLDJSON
import VLDModel
import VLDTensor

enum CheckpointCommand {
    static let usage = """
        usage: vldctl checkpoint inspect DIR
               vldctl checkpoint logits DIR --tokens 5,17,3 [--json] [--threads N]

        inspect  architecture, schedule, parameter counts, FLOPs per token and the tensor table
        logits   runs the forward pass on the tokens and prints the logits of every position;
                 with --json exactly {"logits": [[...], ...]} (one array of vocab floats per position)
        """

    static func run(_ args: [String]) throws -> Int32 {
        if args.isEmpty || args.contains("-h") || args.contains("--help") { print(usage); return args.isEmpty ? 64 : 0 }
        let sub = args[0]
        let p = try CLI.parse(Array(args.dropFirst()), options: ["--tokens", "--threads"], flags: ["--json"])
        guard p.positional.count == 1 else {
            throw UsageError(message: "checkpoint \(sub) needs exactly one DIR\n\(usage)")
        }
        let dir = URL(fileURLWithPath: p.positional[0])
        switch sub {
        case "inspect": return try inspect(dir)
        case "logits":
            guard let text = p.values["--tokens"] else {
                throw UsageError(message: "checkpoint logits needs --tokens, e.g. --tokens 5,17,3")
            }
            let tokens = try text.split(separator: ",", omittingEmptySubsequences: false).map { s -> Int32 in
                guard let t = Int32(s.trimmingCharacters(in: .whitespaces)), t >= 0 else {
                    throw UsageError(message: "--tokens: '\(s)' is not a token id")
                }
                return t
            }
            guard !tokens.isEmpty else { throw UsageError(message: "--tokens is empty") }
            return try logits(
                dir, tokens: tokens, json: p.flags.contains("--json"),
                threads: try CLI.int(p.values, "--threads", default: 1, max: CLI.maxThreads))
        default:
            throw UsageError(message: "unknown checkpoint subcommand '\(sub)'; expected inspect or logits")
        }
    }

    static func inspect(_ dir: URL) throws -> Int32 {
        let model = try Checkpoint.loadModel(from: dir, pool: ThreadPool(threads: 1))
        let c = model.config
        let table = try Checkpoint.tensorTable(of: dir)
        func n(_ x: Int) -> String { x.formatted() }
        print("checkpoint    \(dir.path)")
        print("architecture  \(c.arch.rawValue) (\(c.arch == .gpt2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"))")
        print(
            "dims          dModel=\(c.dModel) layers=\(c.layers) heads=\(c.heads) kvHeads=\(c.kvHeads) ffnHidden=\(c.ffnHidden) context=\(c.context) vocab=\(c.vocab) tied=\(c.tiedEmbeddings)"
        )
        print("schedule      \(c.schedule) = \(model.schedule.map(String.init).joined(separator: " "))")
        print("depth         D=\(c.applications) D_VLD=\(c.vldDepth) (L=\(c.layers) physical blocks)")
        print(
            "parameters    P_total=\(n(c.totalParams)) P_non-embedding=\(n(c.nonEmbeddingParams)) N_applied=\(n(c.appliedMatrixParams))"
        )
        print(
            String(
                format: "FLOPs/token   %.4g forward at t=%d (training ≈ 3x)",
                c.forwardFlopsPerToken(attending: c.context), c.context))
        if let state = try? Checkpoint.trainingState(of: dir) {
            print("training      step=\(state.step) dataCursor=\(state.dataCursor) written by vld \(state.vldVersion)")
        }
        print("\ntensors (\(table.count)):")
        let width = table.map(\.name.count).max() ?? 10
        for t in table {
            print(
                "  " + t.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + {
                        let s = "[\(t.shape.map(String.init).joined(separator: ", "))]";
                        return s.padding(toLength: max(14, s.count), withPad: " ", startingAt: 0)
                    }()
                    + " " + n(t.shape.reduce(1, *)))
        }
        return 0
    }

    static func logits(_ dir: URL, tokens: [Int32], json: Bool, threads: Int) throws -> Int32 {
        let model = try Checkpoint.loadModel(from: dir, pool: ThreadPool(threads: threads))
        do { try model.checkTokens(tokens) } catch { throw UsageError(message: "--tokens: \(error)") }
        guard tokens.count <= model.config.context else {
            throw UsageError(message: "--tokens: \(tokens.count) tokens exceed the context of \(model.config.context)")
        }
        try model.forward(inputs: tokens, B: 1, T: tokens.count)
        let rows = (0..<tokens.count).map { model.logits(row: $0) }
        if json {
            guard rows.allSatisfy({ $0.allSatisfy(\.isFinite) }) else {
                throw CheckpointError(
                    "\(dir.path): the forward pass produced non-finite logits (NaN or infinity); the weights are damaged"
                )
            }
            let logits = JSONValue.array(rows.map { row in .array(row.map { JSONValue(Double($0)) }) })
            print(JSONValue.object([("logits", logits)]).serialized(pretty: false))
            return 0
        }
        for (i, row) in rows.enumerated() {
            let top = row.indices.sorted { row[$0] > row[$1] }.prefix(5)
            print(
                "position \(i) (token \(tokens[i])): top "
                    + top.map { String(format: "%d:%.4f", $0, row[$0]) }.joined(separator: " "))
            print("  " + row.map { String(format: "%.4f", $0) }.joined(separator: " "))
        }
        return 0
    }
}
