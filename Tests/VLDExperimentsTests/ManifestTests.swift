// ManifestTests.swift: manifest validation messages, defaults, grid expansion and the JSON reader.

import Foundation
import Testing
@testable import VLDExperiments
import VLDModel

/// A small valid manifest body; tests splice fields into it.
func manifest(
    _ extra: String = "",
    task: String =
        #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "maxWords": 128, "evalProblems": 4, "evalOps": [1, 2]}"#,
    model: String = #"{"dModel": 32, "layers": 2, "heads": 2, "context": 128}"#
) -> String {
    #"{"name": "t", "task": \#(task), "model": \#(model), "train": {"steps": 10, "batch": 4}\#(extra)}"#
}

func issues(_ text: String, limits: Limits = Limits()) -> [String] {
    do {
        _ = try Experiment.parse(Data(text.utf8), limits: limits, cores: 2)
        return []
    } catch let e as ManifestError {
        return e.issues.map(\.description)
    } catch {
        return ["unexpected \(error)"]
    }
}

struct BadManifest: CustomStringConvertible, Sendable {
    let text: String
    let expected: String
    var description: String { expected }
}

@Test(arguments: [
    BadManifest(
        text: manifest(#", "seed": "one""#), expected: #"seed: expected an integer in 0...2147483647, got "one""#),
    BadManifest(
        text: manifest(#", "sede": 3"#),
        expected:
            "sede: unknown key; expected one of name, kind, seed, priority, resources, model, task, train, init, grid"),
    BadManifest(
        text: manifest(model: #"{"dModel": 32, "layers": 2, "heads": 2, "context": 128, "schedule": "cyk(2)"}"#),
        expected: #"model.schedule: "cyk(2)" is not a schedule; "#),
    BadManifest(
        text: manifest(#", "train": {"steps": 0}"#).replacingOccurrences(
            of: #", "train": {"steps": 10, "batch": 4}"#, with: ""),
        expected: "train.steps: 0 is out of range; expected an integer in 1...100000000"),
    BadManifest(
        text: manifest(model: #"{"arch": "gpt3", "context": 128}"#),
        expected: #"model.arch: "gpt3" is not accepted; expected one of gpt2, llama"#),
    BadManifest(
        text: manifest(model: #"{"dModel": 32, "layrs": 2, "heads": 2, "context": 128}"#),
        expected:
            "model.layrs: unknown key; expected one of arch, dModel, layers, heads, kvHeads, ffnHidden, context, schedule, tiedEmbeddings"
    ),
    BadManifest(
        text: manifest(task: #"{"type": "gsm8k"}"#),
        expected: #"task.type: "gsm8k" is not accepted; expected one of igsm, bios, random-tokens"#),
    BadManifest(
        text: manifest(#", "kind": "phase""#),
        expected: #"ladders: missing; expected {"<family>": [checkpoints], ...}, e.g. {"raw": ["@raw/*"]}"#),
    BadManifest(
        text: manifest(#", "kind": "bake""#),
        expected: #"kind: "bake" is not an experiment kind; expected one of train"#),
    BadManifest(
        text: manifest(model: #"{"dModel": 32, "layers": 2, "heads": 2, "context": 16}"#),
        expected: "model.context: 16 is too short for the task's documents (up to "),
    BadManifest(
        text: manifest(model: #"{"dModel": 30, "layers": 2, "heads": 4, "context": 128}"#),
        expected: "model: heads (4) must divide dModel (30)"),
    BadManifest(
        text: manifest(#", "resources": {"threads": 500}"#),
        expected: "resources.threads: 500 exceeds the limit maxThreads = 64"),
    BadManifest(
        text: manifest(
            #", "resources": {"memoryMiB": 64}"#, model: #"{"dModel": 256, "layers": 8, "heads": 4, "context": 128}"#),
        expected: "resources.memoryMiB: 64 is too little: training this model with batch 4 and context 128 needs about "
    ),
    BadManifest(
        text: manifest(task: #"{"type": "igsm", "maxOps": 2, "maxWords": 40}"#),
        expected: "task.maxWords: 40 words is too few for problems with 2 operations; raise maxWords or lower maxEdges"),
    BadManifest(
        text: manifest(task: #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "modulus": 24}"#),
        expected: "task.modulus: 24 is out of range; expected an integer in 2...23"),
    BadManifest(
        text: manifest(task: #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "render": "latex"}"#),
        expected: #"task.render: "latex" is not accepted; expected one of text, symbolic, compact"#),
    BadManifest(
        text: manifest(
            task: #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "curriculum": {"fromMaxOps": 3, "documents": 10}}"#),
        expected: "task.curriculum.fromMaxOps: 3 exceeds maxOps (2); the curriculum raises the op range up to maxOps"),
    BadManifest(
        text: manifest(task: #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "curriculum": {"from": 1}}"#),
        expected: "task.curriculum.from: unknown key; expected one of fromMaxOps, documents"),
    BadManifest(
        text: manifest(task: #"{"type": "chain", "format": "cot", "queries": 2}"#),
        expected: "task: chain: queries above 1 need format direct"),
    BadManifest(
        text: #"{"name": "a/b", "task": {"type": "igsm"}}"#,
        expected: #"name: "a/b" is not a valid name; expected [A-Za-z0-9._-]{1,64}"#),
    BadManifest(
        text: #"{"task": {"type": "igsm"}}"#, expected: "name: missing; expected a name matching [A-Za-z0-9._-]{1,64}"),
    BadManifest(
        text: #"{"name": "x"}"#,
        expected:
            #"task: missing; expected a task object with "type" (igsm, bios, random-tokens, chain, world) or a list of them with weights"#
    ),
    BadManifest(
        text: #"{"name": "x", "name": "y"}"#, expected: #"not valid JSON: line 1, column 15: duplicate key "name""#),
    BadManifest(
        text: "{\"name\": \"x\",\n  \"task\": }",
        expected: "not valid JSON: line 2, column 11: unexpected character '}'"),
    // Found by the fuzz test: a null task type once reached the mixture with no task and trapped.
    BadManifest(
        text: manifest(task: #"{"type": null}"#),
        expected: "task.type: missing; expected one of igsm, bios, random-tokens"),
    BadManifest(text: "[1, 2]", expected: "expected a JSON object, got an array"),
    BadManifest(
        text: manifest(#", "grid": {"model.schedule": ["base", "cyk(1)"]}"#),
        expected: #"grid.model.schedule[1]: "cyk(1)" is not a schedule; "#),
    BadManifest(
        text: manifest(#", "grid": {"seed": []}"#),
        expected: "grid.seed: expected a non-empty list of values, got an array"),
    BadManifest(text: manifest(#", "grid": {"name": ["a", "b"]}"#), expected: "grid.name: name cannot vary in a grid"),
    BadManifest(
        text: manifest(#", "grid": {"seed": [1, 2, 3], "train.lr": [0.1, 0.2, 0.3]}"#),
        expected: "grid: expands to 9 trials; the limit maxTrials is 4"),
    BadManifest(
        text: manifest(task: #"[{"type": "bios", "weight": 0}]"#),
        expected: "task[0].weight: 0 is out of range; expected a number in 0.001...1000"),
])
func badManifestsAreRejectedWithTheirPath(_ c: BadManifest) {
    var limits = Limits()
    limits.maxTrials = 4
    let found = issues(c.text, limits: limits)
    #expect(found.contains { $0.hasPrefix(c.expected) }, "expected \(c.expected)\ngot \(found)")
}

@Test func everyProblemIsReportedNotJustTheFirst() {
    let text =
        #"{"name": "x", "seed": -1, "task": {"type": "igsm", "maxOps": 99}, "model": {"heads": "4"}, "train": {"lr": "fast", "stepz": 1}}"#
    let found = issues(text)
    for prefix in ["seed:", "task.maxOps:", "model.heads:", "train.lr:", "train.stepz:"] {
        #expect(found.contains { $0.hasPrefix(prefix) }, "\(prefix) missing from \(found)")
    }
}

@Test func defaultsAreFilledInAndWrittenOut() throws {
    let e = try Experiment.parse(Data(manifest().utf8), cores: 2)
    #expect(e.trials.count == 1)
    let m = e.trials[0].manifest
    #expect(m.threads == 2 && m.kind == "train")
    let body = try #require(m.body as? TrainBody)
    #expect(body.evalEvery == 1)  // steps / 10
    #expect(body.checkpointEvery == 1)
    #expect(body.train.warmup == 1)  // min(50, steps / 10)
    #expect(abs(body.minLr - 1e-4) < 1e-12)
    #expect(body.progress.total == 10 && body.progress.unit == "training steps")
    let estimate = try m.estimate()
    #expect(estimate.progressTotal == 10 && estimate.parameters > 0 && estimate.flops > 0 && estimate.memoryMiB > 32)
    let json = m.json
    #expect(json["train"]?["minLr"] != nil)
    #expect(json["model"]?["tiedEmbeddings"] == .bool(true))
    // The resolved trial reads back as a manifest that resolves to the same values.
    let again = try Manifest.parse(try JSONValue.parse(json.serialized()), cores: 2)
    #expect(again.json == json)
}

@Test func gridExpandsInWrittenOrderWithObjectMerge() throws {
    let text = manifest(
        #", "grid": {"model": [{"schedule": "base"}, {"schedule": "cyc(2)"}, {"layers": 6, "schedule": "base"}], "seed": [1, 2]}"#
    )
    let e = try Experiment.parse(Data(text.utf8), cores: 2)
    #expect(e.trials.count == 6)
    #expect(e.axes == ["model", "seed"])
    let described = e.trials.map {
        let model = ($0.manifest.body as! TrainBody).model
        return "\(model.schedule)/L\(model.layers)/s\($0.manifest.seed)"
    }
    #expect(described == ["base/L2/s1", "base/L2/s2", "cyc(2)/L2/s1", "cyc(2)/L2/s2", "base/L6/s1", "base/L6/s2"])
    #expect(e.trials[2].condition == "schedule=cyc(2)")
    #expect(e.trials[4].condition == "layers=6 schedule=base")
    #expect((e.trials[4].manifest.body as? TrainBody)?.model.dModel == 32)  // merged, not replaced
    #expect(e.trials[0].manifest != e.trials[2].manifest && e.trials[0].manifest == e.trials[0].manifest)
    #expect(Set(e.trials.map(\.directoryName)).count == 6)
    #expect(e.trials[2].directoryName == "002-schedule=cyc-2--seed1")
    #expect(e.trials[4].directoryName == "004-layers=6_schedule=base-seed1")
}

@Test func jsonReaderKeepsOrderAndRejectsHostileInput() throws {
    let v = try JSONValue.parse(#"{"b": 1, "a": [true, null, "x\u00e9\n"], // comment"# + "\n" + #""c": -2.5e3}"#)
    guard case let .object(fields) = v else { Issue.record("not an object"); return }
    #expect(fields.map(\.0) == ["b", "a", "c"])
    #expect(v["c"] == .number(-2500))
    #expect(v["a"] == .array([.bool(true), .null, .string("xé\n")]))
    #expect(try JSONValue.parse(v.serialized()) == v)
    let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
    #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(deep) }
    for bad in ["{\"a\": 01}", "{\"a\": 1,}", "{\"a\" 1}", "\"\\ud800\"", "{} x", "nul", "1e999"] {
        #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONValue.parse(bad) }
    }
    #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(Data([0x22, 0xFF, 0x22])) }
}

/// Escapes take exactly four hex digits (no sign), and written JSON carries control, bidi and
/// other invisible characters as escapes, so output that a terminal shows cannot act on it.
@Test func jsonEscapesAreStrictBothWays() throws {
    for bad in [#""\u+041""#, #""\u-000""#, #""\u 041""#] {
        #expect(throws: JSONSyntaxError.self, "\(bad)") { try JSONValue.parse(bad) }
    }
    let hostile = "a\u{202E}b\u{7F}c\u{9B}d\u{1B}e\u{2028}é"
    let quoted = JSONValue.quote(hostile)
    #expect(quoted == #""a\u202eb\u007fc\u009bd\u001be\u2028é""#)
    #expect(try JSONValue.parse(quoted) == .string(hostile))
}

@Test func bootstrapIntervalCoversTheMeanAndIsReproducible() {
    let s = MetricStats([0.40, 0.50, 0.45, 0.55])
    #expect(abs(s.mean - 0.475) < 1e-12)
    guard let ci = s.ci95 else { Issue.record("no interval with 4 values"); return }
    #expect(ci.0 < s.mean && s.mean < ci.1)
    #expect(ci.0 >= 0.40 && ci.1 <= 0.55)
    #expect(MetricStats([0.40, 0.50, 0.45, 0.55]) == s)
    #expect(MetricStats([1, 2]).ci95 == nil)
    #expect(abs(MetricStats([1, 2]).std - 0.7071067811865476) < 1e-12)
}

@Test func gridAndEvalOpsMistakesAreCaught() {
    let deep = String(repeating: "a.", count: 20) + "b"
    #expect(
        issues(manifest(#", "grid": {"\#(deep)": [1]}"#)).contains {
            $0.hasPrefix("grid.a.a.a") && $0.contains("at most 8 parts")
        })
    #expect(
        issues(manifest(task: #"{"type": "igsm", "maxOps": 2, "maxEdges": 8, "maxWords": 128, "evalOps": [2, 2]}"#))
            .contains("task.evalOps: lists an operation count twice; expected distinct values"))
    // A cross-section problem in some trials only names one of them.
    let some = issues(manifest(#", "grid": {"model.dModel": [32, 31]}"#))
    #expect(
        some.contains {
            $0.hasPrefix("model: heads (2) must divide dModel (31)") == false && $0.hasPrefix("grid.model.dModel[1]")
        }
            || some.contains { $0.contains("(in 1 of 2 trials, e.g. trial 1: model.dModel=31)") }, "\(some)")
    // A typo shared by every trial is reported once, without a trial name.
    let typo = issues(manifest(#", "priorty": 1, "grid": {"seed": [1, 2, 3]}"#))
    #expect(typo.filter { $0.hasPrefix("priorty:") }.count == 1)
    #expect(!typo.contains { $0.contains("trials, e.g.") })
}

/// The spool waits for a file whose JSON error is at the end of the data (it may still be being
/// written) and rejects any other. So every proper prefix of a valid document, cut at any byte
/// (inside a literal, a number, a `\u` escape, a surrogate pair, a comment, a multi-byte UTF-8
/// character), must fail *at the end*, and an error that no continuation can fix must not.
@Test func everyPrefixOfAValidDocumentIsCutShortAtTheEnd() throws {
    let documents = [
        manifest(#", "seed": 7, "priority": -2, "resources": {"threads": 1}"#),
        "// a comment with é and 日本 and 🙂\n{\"name\": \"x\", \"model\": {\"tiedEmbeddings\": true, \"x\": false, \"y\": null},\n"
            + #" "s": "\u00e9\ud83d\ude42\n\t\"", "n": [-0.5e-3, 12E+2, 0], "z": "日本🙂"}"#,
        "[1, {\"a\": [[], {}]}, \"\\/\"] // end",
    ]
    for document in documents {
        let bytes = Array(document.utf8)
        _ = try JSONValue.parse(Data(bytes))
        for cut in 0..<bytes.count {
            do {
                _ = try JSONValue.parse(Data(bytes[..<cut]))
                // A prefix may itself be complete: `[1, ...] // e` cut inside the final comment.
                #expect(
                    document.hasSuffix("// end") && cut >= bytes.count - 7,
                    "prefix of \(cut) bytes parsed: \(String(decoding: bytes[..<cut], as: UTF8.self))")
            } catch let e as JSONSyntaxError {
                #expect(
                    e.atEnd,
                    "cut at \(cut) of \(bytes.count): \(e) in \(String(decoding: bytes[..<cut], as: UTF8.self).suffix(30))"
                )
            }
        }
    }
    // The two reproductions from the hostile probe: a literal cut short, and a comment cut
    // inside a two-byte character.
    for partial in [
        Data(#"{"name":"x","model":{"tiedEmbeddings":tr"#.utf8),
        Data(#"{"name":"y","seed":1, // r"#.utf8) + Data([0xC3]),
        Data(#"{"a": "\u00"#.utf8), Data(#"{"a": 1 /"#.utf8), Data(#"{"a": 1} /"#.utf8), Data(),
        Data(#"{"a": "\ud800\udC"#.utf8), Data(#"{"a": "x"#.utf8) + Data([0xF0, 0x9F]),
        Data("{} // ".utf8) + Data([0xE2, 0x80]),
    ] {
        let e = #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(partial) }
        #expect(e?.atEnd == true, "\(String(describing: e))")
    }
    // Errors that more data cannot fix are not at the end, even when they are near it.
    for bad in [
        Data(#"{"a": trux"#.utf8), Data(#"{"a": "\u00g"#.utf8), Data(#"{"a": 01"#.utf8), Data(#"{"a": 1, "a""#.utf8),
        Data(#"{"a": "x"#.utf8) + Data([0xC3, 0x28]), Data(#"{"a": "x"#.utf8) + Data([0xFF]),
        Data(#"{"a": "\ud800\x"#.utf8),
        Data(#"{"a": 1} x"#.utf8), Data(#"{"a": 1 /x"#.utf8), Data(#"{"a": "\q"#.utf8), Data([0x22, 0xED, 0xA0]),
        Data(#"{"a": "\udc00"#.utf8), Data(#"{"a": "\ud800\u0041"#.utf8),
        // Half a character where no character may stand, or after an earlier error.
        Data(#"{"a": "#.utf8) + Data([0xC3]), Data(#"{"a": tru e, "b": ""#.utf8) + Data([0xC3]),
        Data("{} ".utf8) + Data([0xC3]),
        // A low surrogate that cannot become DC00-DFFF.
        Data(#"{"a": "\ud800\ud8"#.utf8), Data(#"{"a": "\ud800\u0"#.utf8),
    ] {
        do {
            _ = try JSONValue.parse(bad)
            Issue.record("parsed: \(bad)")
        } catch let e as JSONSyntaxError {
            #expect(!e.atEnd, "\(String(decoding: bad, as: UTF8.self)): \(e)")
        }
    }
}

/// The chain task in a manifest: defaults written out, and settings that cannot generate or do
/// not fit the context refused with their path and limit.
@Test func chainTasksResolveAndBadOnesNameTheirPath() throws {
    let good = try Experiment.parse(
        Data(
            manifest(
                task: #"{"type": "chain", "format": "cot", "maxK": 3, "statements": 6}"#,
                model: #"{"dModel": 32, "layers": 2, "heads": 2, "context": 96}"#
            ).utf8), cores: 2)
    let resolved = good.trials[0].manifest.json.serialized(pretty: false)
    #expect(
        resolved.contains(
            #""type":"chain","weight":1,"format":"cot","modulus":11,"statements":6,"minK":1,"maxK":3,"variables":26,"queries":1,"derivedShare":0.6666666666666666,"syntax":"compact","recallDocuments":0,"evalProblems":100,"evalK":[1,2,3,4,5],"cotSteps":"trace""#
        ), "\(resolved)")
    let small = #"{"dModel": 32, "layers": 2, "heads": 2, "context": 64}"#
    #expect(
        issues(manifest(task: #"{"type": "chain", "maxK": 7, "statements": 6}"#, model: small))
            .contains("task: chain: maxK (7) needs maxK statements; statements is 6, so maxK can be at most 6"))
    #expect(
        issues(manifest(task: #"{"type": "chain", "modulus": 1}"#, model: small)).contains {
            $0.hasPrefix("task.modulus: 1 is out of range")
        })
    #expect(
        issues(manifest(task: #"{"type": "chain", "statements": 4, "evalK": [2, 5]}"#, model: small))
            .contains { $0.hasPrefix("task.evalK[1]: expected an integer in 1...4") })
    #expect(
        issues(manifest(task: #"{"type": "chain", "format": "cot", "statements": 10, "evalK": [8]}"#, model: small))
            .contains { $0.hasPrefix("model.context: 64 is too short for chain documents with k up to 8") })
    #expect(
        issues(manifest(task: #"{"type": "chain", "format": "sideways"}"#, model: small))
            .contains { $0.hasPrefix("task.format: \"sideways\" is not accepted; expected one of direct, cot") })
    #expect(
        issues(manifest(task: #"{"type": "chain", "format": "cot", "cotSteps": "backwards"}"#, model: small))
            .contains { $0.hasPrefix("task.cotSteps: \"backwards\" is not accepted; expected one of trace, forward") })
}

@Test func theRegistryNamesEveryRunnableKindAndThePlannedOnes() {
    #expect(Kinds.names == ["train", "distill", "prm", "tts", "phase", "steer"])
    #expect(Kinds.planned.isEmpty)
}

@Test func theResolvedTrialIsTheHeaderThenItsKindsBody() throws {
    let m = try Experiment.parse(Data(manifest().utf8), cores: 2).trials[0].manifest
    guard case let .object(fields) = m.json else {
        Issue.record("manifest.json is not an object")
        return
    }
    #expect(fields.map(\.0) == ["name", "kind", "seed", "priority", "resources", "task", "model", "train"])
    #expect(m.body.summaryScalars(.object([("metrics", .object([("x", .number(2))]))])).map(\.0) == ["x"])
}

@Test func theHeadLeversResolveAndTheirMistakesAreNamed() throws {
    let llama =
        #"{"arch": "llama", "dModel": 32, "layers": 2, "heads": 2, "context": 128, "head": "rank(8)", "outputMultiplier": "muP(16)"}"#
    let m = try Experiment.parse(Data(manifest(model: llama).utf8), cores: 2).trials[0].manifest
    #expect(m.json["model"]?["head"] == .string("rank(8)"))
    #expect(m.json["model"]?["outputMultiplier"] == .number(0.5))
    #expect(m.json["model"]?["tiedEmbeddings"] == .bool(false))
    // Without them the model section resolves as it always has.
    let plain = try Experiment.parse(Data(manifest().utf8), cores: 2).trials[0].manifest
    #expect(plain.json["model"]?["head"] == nil && plain.json["model"]?["outputMultiplier"] == nil)
    #expect(
        issues(manifest(model: #"{"dModel": 32, "layers": 2, "heads": 2, "context": 128, "head": "narrow(2)"}"#))
            .contains { $0.hasPrefix("model.head: \"narrow(2)\" is not a head; expected full, rank(<r>) or wide(<k>)") }
    )
    #expect(
        issues(
            manifest(model: #"{"dModel": 32, "layers": 2, "heads": 2, "context": 128, "outputMultiplier": "muP(x)"}"#)
        )
        .contains { $0.hasPrefix("model.outputMultiplier: \"muP(x)\" is not accepted") })
    #expect(
        issues(
            manifest(
                model:
                    #"{"dModel": 32, "layers": 2, "heads": 2, "context": 128, "head": "wide(2)", "tiedEmbeddings": true}"#
            )
        ).contains { $0.contains("cannot be tied to the embedding") })
}
