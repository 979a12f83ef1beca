// TTSSpec.swift: the `tts` section of a tts manifest (TTSKind.swift): which searches run on how
// many problems, read with JSON-path errors and written back resolved.

public struct TTSSpec: Equatable, Sendable {
    public enum Method: String, Sendable, CaseIterable {
        /// Best-of-N: N_max independent solutions; every N is a prefix of them. Majority vote,
        /// PRM-max and PRM-vote are its selection rules.
        case bon
        /// Beam search (N, M), one run per N.
        case beam
        /// DVTS (N, M): N_max / M subtrees; every N is a prefix of them (whole subtrees).
        case dvts
    }

    /// Test problems (TTS test set: split test, from index 0).
    public var problems = 1000
    public var methods: [Method] = [.bon, .beam, .dvts]
    /// The largest N; every N in 1, 2, 4, ..., nMax is evaluated (beam and DVTS from M up).
    public var nMax = 64
    /// Beam widths M (beam search and DVTS); each must divide nMax.
    public var m: [Int] = [4]
    /// Aggregations of a candidate's step scores reported for the PRM rules.
    public var aggregations: [StepAggregation] = StepAggregation.allCases
    /// The aggregation beam search and DVTS rank candidates by while searching.
    public var searchAggregation: StepAggregation = .last
    public var temperature = 0.8
    /// Tokens one step may take, and steps (rounds) a solution may take; nil: from the task.
    public var maxStepTokens: Int?
    public var maxRounds: Int?
    /// Samples per problem for its difficulty: the policy's pass@1 (the oracle bin) and the PRM's
    /// mean last score (the predicted bin), drawn apart from the searches' samples, cost counted.
    public var difficultySamples = 16
    /// Also decode each problem greedily (the reference a larger policy gives).
    public var greedy = true

    /// 1, 2, 4, ..., nMax.
    public var budgets: [Int] {
        var out: [Int] = []
        var n = 1
        while n <= nMax {
            out.append(n)
            n *= 2
        }
        return out
    }

    var json: JSONValue {
        var f: [(String, JSONValue)] = [
            ("problems", JSONValue(problems)), ("methods", .array(methods.map { .string($0.rawValue) })),
            ("nMax", JSONValue(nMax)), ("m", .array(m.map { JSONValue($0) })),
            ("aggregations", .array(aggregations.map { .string($0.rawValue) })),
            ("searchAggregation", .string(searchAggregation.rawValue)), ("temperature", JSONValue(temperature)),
        ]
        if let s = maxStepTokens { f.append(("maxStepTokens", JSONValue(s))) }
        if let r = maxRounds { f.append(("maxRounds", JSONValue(r))) }
        f += [("difficultySamples", JSONValue(difficultySamples)), ("greedy", .bool(greedy))]
        return .object(f)
    }

    static func parse(_ r: FieldReader) -> TTSSpec {
        var r = r
        var s = TTSSpec()
        s.problems = r.int("problems", default: s.problems, in: 1...1_000_000)
        if case let .array(list)? = r.raw("methods") {
            _ = r.value("methods")
            var methods: [Method] = []
            for (i, v) in list.enumerated() {
                guard case let .string(name) = v, let m = Method(rawValue: name) else {
                    r.issues.add(
                        r.sub("methods") + "[\(i)]",
                        "\(v.brief) is not a method; expected one of \(Method.allCases.map(\.rawValue).joined(separator: ", "))"
                    )
                    continue
                }
                if !methods.contains(m) { methods.append(m) }
            }
            if list.isEmpty { r.issues.add(r.sub("methods"), "is empty; expected at least one method") }
            s.methods = methods
        } else if r.has("methods") {
            r.issues.add(
                r.sub("methods"), "\(r.value("methods")!.brief) is not a list; expected e.g. [\"bon\", \"beam\"]")
        }
        s.nMax = r.int("nMax", default: s.nMax, in: 1...4096)
        if s.nMax & (s.nMax - 1) != 0 {
            r.issues.add(
                r.sub("nMax"), "\(s.nMax) is not a power of 2; expected 1, 2, 4, ... (every N is a power of 2)")
        }
        s.m = r.intList("m", default: s.m, in: 1...4096, maxCount: 8)
        // Best-of-N alone has no beams: M is not checked then.
        for m in s.m where s.nMax % m != 0 && s.methods != [.bon] {
            r.issues.add(
                r.sub("m"), "M = \(m) does not divide nMax = \(s.nMax); beam search and DVTS need N/M whole beams")
        }
        if case let .array(list)? = r.raw("aggregations") {
            _ = r.value("aggregations")
            var aggs: [StepAggregation] = []
            for (i, v) in list.enumerated() {
                guard case let .string(name) = v, let a = StepAggregation(rawValue: name) else {
                    r.issues.add(
                        r.sub("aggregations") + "[\(i)]",
                        "\(v.brief) is not an aggregation; expected one of last, min, prod, mean")
                    continue
                }
                if !aggs.contains(a) { aggs.append(a) }
            }
            s.aggregations = aggs.isEmpty ? [.last] : aggs
        } else if r.has("aggregations") {
            r.issues.add(
                r.sub("aggregations"),
                "\(r.value("aggregations")!.brief) is not a list; expected e.g. [\"last\", \"min\"]")
        }
        s.searchAggregation =
            StepAggregation(
                rawValue: r.choice(
                    "searchAggregation", default: "last", from: StepAggregation.allCases.map(\.rawValue))) ?? .last
        s.temperature = r.double("temperature", default: s.temperature, in: 0.01...10)
        if r.has("maxStepTokens") { s.maxStepTokens = r.int("maxStepTokens", default: 12, in: 1...1024) }
        if r.has("maxRounds") { s.maxRounds = r.int("maxRounds", default: 10, in: 1...256) }
        s.difficultySamples = r.int("difficultySamples", default: s.difficultySamples, in: 0...4096)
        s.greedy = r.bool("greedy", default: s.greedy)
        r.finish()
        return s
    }
}
