// FuzzTests.swift: a bounded, seeded fuzz of the manifest reader and validator.
//
// Mutants of the example manifests (examples/*.json) and of a small test manifest, made by byte
// edits (flips, inserted JSON punctuation, escapes and broken UTF-8, deleted and repeated ranges,
// cuts, splices of two manifests) and by edits of the parsed JSON (a value replaced by an extreme
// or hostile one, a key removed, added, renamed, a value wrapped in a list). For each the
// validator must return, not crash or hang, with either a valid experiment or errors that each
// name a JSON path, or a line and column of the text; no message may carry a control or bidi
// character raw. A valid mutant's resolved trial must validate again to itself. The mutants are a
// pure function of the seed, so a failure is reproduced by its printed case number.

import Foundation
import Testing
@testable import VLDExperiments

/// SplitMix64: the fuzz needs its own small generator (the test must not depend on engine RNGs).
struct FuzzRNG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
    mutating func pick<T>(_ items: [T]) -> T { items[int(items.count)] }
}

enum ManifestFuzz {
    static let examples: [Data] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples")
            .standardized
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter {
            $0.hasSuffix(".json")
        }.sorted()
        return files.compactMap { FileManager.default.contents(atPath: dir.appendingPathComponent($0).path) }
            + [Data(manifest(#", "grid": {"model.schedule": ["base", "cyc(1)"], "seed": [1, 2]}"#).utf8)]
    }()

    static let tokens: [[UInt8]] =
        [
            "{", "}", "[", "]", "\"", "\\", "\\u", "\\ud800", "\\u00e9", ",", ":", "//", "/", "null", "true", "false",
            "-", "1e999", "0.", "00",
            "9007199254740993", "-0", "1e-400", "\u{0}", "\n", "é", "\u{202E}", "\u{1B}[2J", "\"\": 1,",
            "\"grid\": {\"seed\": [1, 2, 3]},",
        ].map { Array($0.utf8) } + [[0xC3], [0xFF], [0xED, 0xA0, 0x80], [0xF0, 0x9F], [0xE2, 0x80, 0xAE]]

    static let values: [JSONValue] = [
        .null, .bool(true), .bool(false), .number(0), .number(-1), .number(1e308), .number(-1e308),
        .number(9_007_199_254_740_994),
        .number(Double.leastNonzeroMagnitude), .number(0.5), .number(1e15), .number(4097), .number(-0.0), .string(""),
        .string("base"), .string("cyc(99)"),
        .string("part(1,2,3)"), .string(String(repeating: "x", count: 5000)), .string("a\u{1B}]0;t\u{07}\n\u{202E}z"),
        .string("../../etc"),
        .string("日本語"), .array([]), .object([]), .array((0..<300).map { .number(Double($0)) }),
        .array([.string("base"), .string("cyc(1)"), .number(2)]),
        .object([("type", .string("bios")), ("people", .number(3))]),
        (0..<50).reduce(JSONValue.number(1)) { v, _ in .array([v]) },
    ]

    static let keys = [
        "", "x", "nmae", "seed", "grid", "stages", "kind", "task", "model.dModel", "k\u{1B}[1m", "\u{202E}", "schedule",
        "steps", "0", "__proto__", String(repeating: "k", count: 300),
    ]

    /// Mutant `n` of the corpus.
    static func mutant(_ n: Int) -> Data {
        var rng = FuzzRNG(state: 0x766C_6466_757A_7A00 ^ UInt64(n))
        let seed = rng.pick(examples)
        var bytes = [UInt8](seed)
        // Mostly one edit, so that a fair share of mutants stays valid and reaches the validator
        // proper; sometimes several.
        for _ in 0..<(rng.int(4) == 0 ? 2 + rng.int(3) : 1) {
            switch rng.int(12) {
            case 0 where !bytes.isEmpty: bytes[rng.int(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 1: bytes.insert(contentsOf: rng.pick(tokens), at: rng.int(bytes.count + 1))
            case 2 where !bytes.isEmpty:
                let a = rng.int(bytes.count)
                bytes.removeSubrange(a..<min(bytes.count, a + 1 + rng.int(16)))
            case 3 where !bytes.isEmpty:
                let a = rng.int(bytes.count), b = min(bytes.count, a + 1 + rng.int(64))
                bytes.insert(contentsOf: bytes[a..<b], at: rng.int(bytes.count + 1))
            case 4: bytes = Array(bytes.prefix(rng.int(bytes.count + 1)))
            case 5:
                let other = [UInt8](rng.pick(examples))
                bytes = Array(bytes.prefix(rng.int(bytes.count + 1))) + other.suffix(rng.int(other.count + 1))
            default:
                guard var value = try? JSONValue.parse(Data(bytes)) else { continue }
                mutateJSON(&value, &rng)
                bytes = Array(value.serialized(pretty: rng.int(2) == 0).utf8)
            }
        }
        return Data(bytes)
    }

    /// Edits one node of `value`, chosen by a random walk from the root.
    static func mutateJSON(_ value: inout JSONValue, _ rng: inout FuzzRNG) {
        switch value {
        case var .object(fields) where !fields.isEmpty && rng.int(3) != 0:
            let i = rng.int(fields.count)
            mutateJSON(&fields[i].1, &rng)
            value = .object(fields)
            return
        case var .array(items) where !items.isEmpty && rng.int(3) != 0:
            let i = rng.int(items.count)
            mutateJSON(&items[i], &rng)
            value = .array(items)
            return
        default: break
        }
        switch (value, rng.int(5)) {
        case (.object(var fields), 0) where !fields.isEmpty:
            fields.remove(at: rng.int(fields.count))
            value = .object(fields)
        case (.object(var fields), 1):
            let key = rng.pick(keys)
            if !fields.contains(where: { $0.0 == key }) { fields.append((key, rng.pick(values))) }
            value = .object(fields)
        case (.object(var fields), 2) where !fields.isEmpty:
            let i = rng.int(fields.count)
            let key = rng.pick(keys)
            if !fields.contains(where: { $0.0 == key }) { fields[i].0 = key }
            value = .object(fields)
        case (_, 3): value = .array([value])
        default: value = rng.pick(values)
        }
    }

    /// What is wrong with the validator's answer to `data` (nil: nothing), and whether it was
    /// a valid manifest.
    static func check(_ data: Data) -> (problem: String?, valid: Bool) {
        let problem = examine(data)
        return (problem.problem, problem.valid)
    }

    private static func examine(_ data: Data) -> (problem: String?, valid: Bool) {
        let experiment: Experiment
        do {
            experiment = try Experiment.parse(data, limits: Limits(), cores: 2)
        } catch let error as ManifestError {
            guard !error.issues.isEmpty else { return ("a ManifestError with no issues", false) }
            let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).count
            for issue in error.issues {
                if issue.path.unicodeScalars.contains(where: DisplayText.isUnsafe)
                    || issue.message.unicodeScalars.contains(where: DisplayText.isUnsafe)
                {
                    return ("an issue shows an unsafe character raw: \(DisplayText.escaped(issue.description))", false)
                }
                if !issue.path.isEmpty { continue }
                if issue.message.hasPrefix("not valid JSON: line ") {
                    let numbers = issue.message.dropFirst("not valid JSON: line ".count).split(separator: ":")[0]
                        .components(separatedBy: ", column ").compactMap { Int($0) }
                    guard numbers.count == 2, (1...lines).contains(numbers[0]), numbers[1] >= 1 else {
                        return ("a syntax error without a valid line and column: \(issue.message)", false)
                    }
                } else if !(issue.message.hasPrefix("expected a JSON object")
                    || issue.message.hasPrefix("the manifest is "))
                {
                    return (
                        "an issue names neither a JSON path nor a line and column: \(DisplayText.escaped(issue.message))",
                        false
                    )
                }
            }
            return (nil, false)
        } catch {
            return ("an error that is not a ManifestError: \(error)", false)
        }
        // A valid manifest's resolved trial is itself valid and resolves to the same (in a
        // pipeline, a trial that reads another stage's checkpoint is valid only with its stages).
        guard let first = experiment.trials.first else { return ("a valid experiment with no trials", true) }
        if first.manifest.body.checkpointRefs.contains(where: { $0.ref.stage != nil }) { return (nil, true) }
        do {
            let again = try Experiment.parse(Data(first.json.serialized().utf8), limits: Limits(), cores: 2)
            guard again.trials.count == 1, again.trials[0].json == first.json else {
                return (
                    "the resolved trial resolves differently:\n\(first.json.serialized())\nvs\n\(again.trials.first?.json.serialized() ?? "-")",
                    true
                )
            }
        } catch {
            return ("the resolved trial of a valid manifest is refused: \(error)\n\(first.json.serialized())", true)
        }
        return (nil, true)
    }
}

/// 20,000 mutants (about 15 s on the 2-core development machine). For a longer search outside
/// CI: VLD_FUZZ_FIRST=20000 VLD_FUZZ_CASES=1000000 swift test -c release --filter fuzzed; with
/// VLD_FUZZ_TRACE=1 every mutant is written to stderr before it is checked, so a crash names it.
@Test func fuzzedManifestsGetAnAnswerWithAPathOrAPosition() {
    let environment = ProcessInfo.processInfo.environment
    let first = environment["VLD_FUZZ_FIRST"].flatMap(Int.init) ?? 0
    let cases = environment["VLD_FUZZ_CASES"].flatMap(Int.init) ?? 20_000
    let start = Date()
    var slowest = (case: -1, seconds: 0.0)
    var valid = 0, failures: [String] = []
    for n in first..<(first + cases) {
        let data = ManifestFuzz.mutant(n)
        if environment["VLD_FUZZ_TRACE"] != nil {
            FileHandle.standardError.write(Data("case \(n): \(String(decoding: data, as: UTF8.self))\n".utf8))
        }
        let t0 = Date()
        let verdict = ManifestFuzz.check(data)
        if let problem = verdict.problem {
            failures.append(
                "case \(n): \(problem)\n  input: \(DisplayText.escaped(String(decoding: data.prefix(600), as: UTF8.self)))"
            )
        }
        if verdict.valid { valid += 1 }
        let seconds = Date().timeIntervalSince(t0)
        if seconds > slowest.seconds { slowest = (n, seconds) }
        if failures.count >= 5 { break }
    }
    #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    // No mutant makes validation hang: the slowest takes well under the time a submitter may
    // keep the daemon's intake busy.
    #expect(slowest.seconds < 5, "case \(slowest.case) took \(slowest.seconds) s")
    // The corpus exercises both sides: some mutants stay valid, most are refused.
    #expect(valid > cases / 20 && valid < cases / 2, "\(valid) of \(cases) valid")
    print(
        "fuzz: \(cases) mutants, \(valid) valid, slowest case \(slowest.case) \(String(format: "%.3f", slowest.seconds)) s, "
            + "\(String(format: "%.1f", Date().timeIntervalSince(start))) s in all")
}
