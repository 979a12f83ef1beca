// Chain.swift: k-hop variable chains, a reasoning task whose difficulty is one number.
//
// A problem is a list of statements binding variables, mod p, in one of two syntaxes:
//
//     <bos> f 3 ; k 7 ; b f + 2 ; q k * 5 ; m b * 4 ; ? m                  (compact, the default)
//     <bos> f = 3 ; k = 7 ; b = f + 2 ; q = k * 5 ; m = b * 4 ; ? m =      (equals)
//
// `x c` (`x = c`) binds a constant, `x y + c` and `x y * c` derive a variable from one defined
// earlier (c in 1..<p). The queried variable ends a chain of k statements that starts at a
// constant (here f, b, m: k = 3; k = 1 is looking a constant up); the other statements are
// distractor chains, some branching off the queried one, interleaved in a random dependency
// order. Following k links takes about k + 1 block applications in a transformer, which is what
// makes the task a probe of depth (Saunshi et al. 2025, "Reasoning with Latent Thoughts", the
// p-hop task and looped models).
//
// Two formats. `direct`: the answer follows the question at once (`9 <eos>`), and only the answer
// is scored. `cot`: "? m :" is followed by a worked solution, one step per separator "|". By
// default (`cotSteps: trace`) it traces the chain back from the queried variable, copying one
// statement per step, until it reaches the constant, then computes the values back up, one
// derivation per step:
//
//     m b * 4 | b f + 2 | f 3 | b 3 + 2 = 5 | m 5 * 4 = 9 | answer 9 <eos>        (compact)
//
// so that every word of every step is one lookup or one table entry away from what is written
// before it: the parent named in the last trace step, that parent's statement, the value just
// computed. `cotSteps: forward` writes the chain from the constant up instead,
//
//     f 3 | b f + 2 = 3 + 2 = 5 | m b * 4 = 5 * 4 = 9 | answer 9 <eos>        (compact)
//     f = 3 | b = f + 2 = 3 + 2 = 5 | m = b * 4 = 5 * 4 = 9 | answer 9 <eos>  (equals)
//
// where the first word already names the root of the queried chain, which takes the whole k-hop
// search in one forward pass (in the cot-policy pilot, docs/results/pilots/chain, the policy
// trained on this layout stopped at the wrong step more often than it computed wrongly, and
// answered k = 1 below the guessing floor). `ChainChecker` names the first step of a candidate
// solution that is wrong, in either layout. Problems are a pure function of (seed, k, split,
// index), like every task here.

/// Settings of the chain task.
public struct ChainConfig: Codable, Equatable, Sendable {
    public enum Format: String, Codable, Sendable, CaseIterable { case direct, cot }
    /// How statements are written: `compact` ("m b * 4 ;", queried as "? m"; the default), where
    /// a constant's value follows its name directly, so looking it up is the one-token-offset
    /// pattern of an induction head (Olsson et al. 2022), or `equals` ("m = b * 4 ;", queried as
    /// "? m ="), where it is two tokens on. In the pilots (docs/results/pilots/chain) a 2-block
    /// d = 64 model learned pure recall in the compact syntax (99% after 10,000 steps) and stayed at
    /// the guessing floor in the equals syntax over the same steps.
    public enum Syntax: String, Codable, Sendable, CaseIterable { case equals, compact }
    /// The layout of a cot solution: `trace` (back from the query to the constant, then the values
    /// back up; the default) or `forward` (from the constant up). See the top of this file.
    public enum CotSteps: String, Codable, Sendable, CaseIterable { case trace, forward }

    public var format: Format = .direct
    /// Arithmetic is mod this number; numbers are 0..<modulus.
    public var modulus = 11
    /// Training problems have k uniform in minK...maxK.
    public var minK = 1
    public var maxK = 4
    /// Statements per problem, the queried chain's k included; the rest are distractors.
    public var statements = 10
    /// Size of the pool variable names are drawn from (a..z, then aa, ab, ...).
    public var variables = 26
    /// Questions per training document (direct format only): the first asks for the end of the
    /// k-chain as always; the others ask for distinct other variables of the same program, drawn
    /// uniformly, each answered at once (`? m = 9 ? b = 5 <eos>`). Only the answers and <eos> are
    /// scored, so each document carries `queries` answer tokens instead of one. Evaluation always
    /// asks one question, which is the first question of a training document.
    public var queries = 1
    /// The probability that a distractor statement derives from an earlier variable (otherwise it
    /// binds a constant). 0 makes every distractor a constant: with k = 1 the task is then pure
    /// associative recall, and guessing among the constants is right about 1/statements of the time.
    public var derivedShare = 2.0 / 3.0
    public var syntax: Syntax = .compact
    /// A curriculum: training documents 0..<recallDocuments are pure recall (k = 1, every
    /// statement a constant), the rest follow minK...maxK and derivedShare. Binding a name to its
    /// statement is what every longer chain needs, and a 2-block model learns it from recall in
    /// about 250,000 problems but had not after 320,000 of the mixed task (pilots). 0: none.
    public var recallDocuments = 0
    public var cotSteps: CotSteps = .trace

    public init(
        format: Format = .direct, modulus: Int = 11, minK: Int = 1, maxK: Int = 4, statements: Int = 10,
        variables: Int = 26, queries: Int = 1, derivedShare: Double = 2.0 / 3.0, syntax: Syntax = .compact,
        recallDocuments: Int = 0, cotSteps: CotSteps = .trace
    ) {
        self.format = format
        self.modulus = modulus
        self.minK = minK
        self.maxK = maxK
        self.statements = statements
        self.variables = variables
        self.queries = queries
        self.derivedShare = derivedShare
        self.syntax = syntax
        self.recallDocuments = recallDocuments
        self.cotSteps = cotSteps
    }

    public static let modulusRange = 2...97
    public static let largestK = 48
    public static let statementRange = 1...64
    public static let variableRange = 2...702

    /// The longest chain a problem of these settings can hold: every statement in it.
    public var longestK: Int { statements }

    /// Refuses settings that cannot generate, naming the field and the limit.
    public func validate() throws {
        func fail(_ m: String) -> ChainConfigError { ChainConfigError(message: m) }
        guard ChainConfig.modulusRange.contains(modulus) else {
            throw fail("modulus must be in 2...97, got \(modulus)")
        }
        guard ChainConfig.statementRange.contains(statements) else {
            throw fail("statements must be in 1...64, got \(statements)")
        }
        guard (1...ChainConfig.largestK).contains(minK), minK <= maxK else {
            throw fail("minK must be in 1...maxK (\(maxK)), got \(minK)")
        }
        guard maxK <= longestK else {
            throw fail(
                "maxK (\(maxK)) needs maxK statements; statements is \(statements), so maxK can be at most \(longestK)")
        }
        guard ChainConfig.variableRange.contains(variables), variables >= statements else {
            throw fail("variables must be in \(statements)...702 (a name per statement), got \(variables)")
        }
        guard (1...statements).contains(queries) else {
            throw fail("queries must be in 1...statements (\(statements)), got \(queries)")
        }
        guard queries == 1 || format == .direct else { throw fail("queries above 1 need format direct") }
        guard (0...1).contains(derivedShare) else { throw fail("derivedShare must be in 0...1, got \(derivedShare)") }
        guard recallDocuments >= 0 else { throw fail("recallDocuments must be at least 0, got \(recallDocuments)") }
    }
}

public struct ChainConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public var description: String { message }
}

/// One statement: `name = constant` (parent nil) or `name = parent op constant`.
public struct ChainStatement: Equatable, Sendable {
    public let variable: Int
    public let parent: Int?
    public let op: String
    public let constant: Int
}

/// A generated problem: the statements in the order written, the queried variable, its chain
/// from the constant up (variable indices), every variable's value, and the answer.
public struct ChainProblem: Equatable, Sendable {
    public let k: Int
    public let names: [String]
    public let statements: [ChainStatement]
    public let query: Int
    public let chain: [Int]
    public let values: [Int]
    public let modulus: Int
    public var syntax: ChainConfig.Syntax = .compact
    public var cotSteps: ChainConfig.CotSteps = .trace
    public var answer: Int { values[query] }

    /// The accuracy of answering with the value of a constant statement picked uniformly: the
    /// null control for lookups (a model that has learned "answer with some constant" but not
    /// which variable is which lands here; about 52% at k = 1 with 5 statements).
    public var constantGuessAccuracy: Double {
        let constants = statements.filter { $0.parent == nil }
        return Double(constants.filter { $0.constant == answer }.count) / Double(constants.count)
    }

    /// `<bos>`, the statements, and "? m =" (direct) or "? m :" (cot): what the model continues.
    public func prompt(_ format: ChainConfig.Format) -> [String] {
        var words = ["<bos>"]
        for s in statements { words += render(s) + [";"] }
        return words + question(query, format)
    }

    /// "? m =" (direct, equals), "? m" (direct, compact) or "? m :" (cot).
    public func question(_ v: Int, _ format: ChainConfig.Format) -> [String] {
        format == .cot ? ["?", names[v], ":"] : syntax == .equals ? ["?", names[v], "="] : ["?", names[v]]
    }

    func render(_ s: ChainStatement) -> [String] {
        let head = syntax == .equals ? [names[s.variable], "="] : [names[s.variable]]
        guard let parent = s.parent else { return head + [String(s.constant)] }
        return head + [names[parent], s.op, String(s.constant)]
    }

    /// The completion: the answer (direct), or the worked solution and the answer (cot), then `<eos>`.
    public func solution(_ format: ChainConfig.Format) -> [String] {
        guard format == .cot else { return [String(answer), "<eos>"] }
        return steps.flatMap { $0 + ["|"] } + ["answer", String(answer), "<eos>"]
    }

    /// The steps of the right cot solution, without separators. `trace`: the statements of the
    /// chain from the query back to its constant (k steps), then one computation per derivation
    /// from the constant's child up to the query ("b 3 + 2 = 5"; k − 1 steps). `forward`: per
    /// variable from the constant up, the statement with its parent's value substituted and the
    /// result ("b f + 2 = 3 + 2 = 5"; k steps).
    public var steps: [[String]] {
        switch cotSteps {
        case .trace:
            return chain.reversed().map { render(statement(of: $0)) } + chain.dropFirst().map(computation)
        case .forward:
            return chain.map { v in
                let s = statement(of: v)
                guard let parent = s.parent else { return render(s) }
                return render(s) + ["=", String(values[parent]), s.op, String(s.constant), "=", String(values[v])]
            }
        }
    }

    func statement(of v: Int) -> ChainStatement { statements.first { $0.variable == v }! }

    /// "b 3 + 2 = 5" (compact) or "b = 3 + 2 = 5" (equals): a derived variable's value from its
    /// parent's.
    func computation(_ v: Int) -> [String] {
        let s = statement(of: v)
        let head = syntax == .equals ? [names[v], "="] : [names[v]]
        return head + [String(values[s.parent!]), s.op, String(s.constant), "=", String(values[v])]
    }
}

/// The split a problem stream belongs to: training problems and held-out evaluation problems
/// come from different random streams.
public enum ChainSplit: String, Sendable { case train, test }

public struct ChainTask: SyntheticTask {
    public let config: ChainConfig

    public init(config: ChainConfig) throws {
        try config.validate()
        self.config = config
    }

    public var family: String { "chain" }

    public static let symbols = ["=", "+", "*", ";", "?", ":", "|", "answer"]

    /// Variable names: a..z, then aa, ab, ... (as many as `variables`).
    public static func names(_ count: Int) -> [String] {
        let letters = "abcdefghijklmnopqrstuvwxyz".map(String.init)
        var out = Array(letters.prefix(count))
        var i = 0
        while out.count < count {
            out.append(letters[i / 26] + letters[i % 26])
            i += 1
        }
        return out
    }

    public var vocabulary: [String] {
        ChainTask.names(config.variables) + (0..<config.modulus).map(String.init) + ChainTask.symbols
    }

    /// Words of a document with chain length `k`: <bos>, the statements (4 words for a constant
    /// and 6 for a derivation, with at least one constant), the query (3), and the completion
    /// (direct: the answer and <eos>; cot: "answer", the answer and <eos> after the steps, each
    /// with its "|": forward, 4 words for the constant's step and 12 per derivation; trace, 4 for
    /// the constant's statement, 6 per derived statement and 8 per computation).
    /// Each question after the first adds 4 words (`? b = 5`).
    /// The compact syntax drops one "=" per statement, per cot step and per direct question.
    public func maxDocumentLength(k: Int) -> Int {
        let e = config.syntax == .equals ? 1 : 0
        let statements = 3 + e + (5 + e) * (config.statements - 1)
        let question = config.format == .direct ? 2 + e : 3
        let perDerivation = config.cotSteps == .trace ? 12 + 2 * e : 11 + e
        let completion =
            config.format == .direct ? 2 + (3 + e) * (config.queries - 1) : 3 + e + perDerivation * (k - 1) + 3
        return 1 + statements + question + completion
    }

    public var maxDocumentLength: Int { maxDocumentLength(k: config.maxK) }

    /// Problem `index` of the (seed, k, split) stream.
    public func problem(seed: UInt64, index: Int, k: Int, split: ChainSplit) throws -> ChainProblem {
        guard (1...config.longestK).contains(k) else {
            throw TaskError(
                "chain: k \(k) outside 1...\(config.longestK) (statements \(config.statements) hold chains of at most that)"
            )
        }
        let stream: UInt64 = 0x3000 + UInt64(k) * 2 + (split == .train ? 0 : 1)
        var rng = TaskRNG(seed: seed, stream: stream, index: index)
        return generate(k: k, derivedShare: config.derivedShare, rng: &rng)
    }

    /// The problem behind training document `index`: k uniform in minK...maxK, train split; in
    /// the recall phase of the curriculum, k = 1 with every statement a constant.
    public func trainingProblem(seed: UInt64, index: Int) throws -> ChainProblem {
        if index < config.recallDocuments {
            var rng = TaskRNG(seed: seed, stream: 0x3A20, index: index)
            return generate(k: 1, derivedShare: 0, rng: &rng)
        }
        var rng = TaskRNG(seed: seed, stream: 0x3A1E, index: index)
        let k = rng.int(in: config.minK...config.maxK)
        return try problem(seed: seed, index: index, k: k, split: .train)
    }

    /// Training document `index`; the prompt is not scored. With `queries` > 1 the extra questions
    /// come before <eos>, and only their answers are scored.
    public func trainingDocument(seed: UInt64, index: Int) throws -> Document {
        let p = try trainingProblem(seed: seed, index: index)
        let prompt = p.prompt(config.format), completion = p.solution(config.format)
        var words = prompt + completion.dropLast(), scored = [Bool](repeating: false, count: prompt.count)
        scored += [Bool](repeating: true, count: completion.count - 1)
        for v in extraQueries(p, seed: seed, index: index) {
            let q = p.question(v, .direct)
            words += q + [String(p.values[v])]
            scored += [Bool](repeating: false, count: q.count) + [true]
        }
        return Document(words: words + ["<eos>"], scored: scored + [true])
    }

    /// The variables asked after the first question of training document `index`: `queries` − 1
    /// distinct variables other than the queried one, in random order.
    public func extraQueries(_ p: ChainProblem, seed: UInt64, index: Int) -> [Int] {
        guard config.queries > 1 else { return [] }
        var rng = TaskRNG(seed: seed, stream: 0x3A1F, index: index)
        var others = (0..<p.values.count).filter { $0 != p.query }
        for i in 0..<(config.queries - 1) { others.swapAt(i, i + rng.int(others.count - i)) }
        return Array(others.prefix(config.queries - 1))
    }

    func generate(k: Int, derivedShare share: Double, rng: inout TaskRNG) -> ChainProblem {
        let n = config.statements, p = config.modulus
        // Distinct names for the n variables of this problem.
        var pool = Array(0..<config.variables)
        pool.shuffle(using: &rng)
        let pick = Array(pool.prefix(n))
        let allNames = ChainTask.names(config.variables)
        let names = pick.map { allNames[$0] }
        // Variables 0..<k form the queried chain (0 the constant, k - 1 the query); the others
        // are distractors, each a constant or derived from a variable that comes before it.
        var parent = [Int?](repeating: nil, count: n)
        for v in 1..<k { parent[v] = v - 1 }
        // The default share 2/3 keeps the draws of the first version (one in three distractors a constant).
        let twoThirds = share == 2.0 / 3.0
        for v in k..<n where twoThirds ? rng.int(3) != 0 : rng.unit() < share {
            parent[v] = rng.int(v)  // any earlier variable, the queried chain's included
        }
        var statements: [ChainStatement] = []
        var values = [Int](repeating: 0, count: n)
        var bySlot: [ChainStatement?] = Array(repeating: nil, count: n)
        for v in 0..<n {
            let op = rng.int(2) == 0 ? "+" : "*"
            let c = parent[v] == nil ? rng.int(p) : 1 + rng.int(p - 1)
            bySlot[v] = ChainStatement(variable: v, parent: parent[v], op: parent[v] == nil ? "=" : op, constant: c)
        }
        // A random order in which every variable comes after its parent.
        var placed = [Bool](repeating: false, count: n)
        while statements.count < n {
            let ready = (0..<n).filter { !placed[$0] && (parent[$0].map { placed[$0] } ?? true) }
            let v = ready[rng.int(ready.count)]
            placed[v] = true
            let s = bySlot[v]!
            values[v] =
                s.parent.map { s.op == "+" ? (values[$0] + s.constant) % p : (values[$0] * s.constant) % p }
                ?? s.constant
            statements.append(s)
        }
        return ChainProblem(
            k: k, names: names, statements: statements, query: k - 1, chain: Array(0..<k), values: values, modulus: p,
            syntax: config.syntax, cotSteps: config.cotSteps)
    }
}

/// The verdict on a candidate cot solution: how many steps it wrote, the first wrong one (0-based;
/// nil when every step is right and there are as many as the right solution has), and whether the final answer is right.
public struct ChainCheck: Equatable, Sendable {
    public var steps: Int
    public var firstError: Int?
    public var answerCorrect: Bool
    public var valid: Bool { firstError == nil && answerCorrect }

    public init(steps: Int, firstError: Int?, answerCorrect: Bool) {
        self.steps = steps
        self.firstError = firstError
        self.answerCorrect = answerCorrect
    }
}

public enum ChainChecker {
    /// Checks `candidate` (the words generated after the prompt, up to and without `<eos>`) step by
    /// step against the right solution's steps (`ChainProblem.steps`: the right statement
    /// retrieved, the parent's true value substituted, the right result). A missing step counts as
    /// wrong at its place, an extra step as wrong at the first step past the end; steps after the
    /// first error are not judged.
    public static func check(_ problem: ChainProblem, candidate: [String]) -> ChainCheck {
        var words = candidate
        if let eos = words.firstIndex(of: "<eos>") { words = Array(words[..<eos]) }
        let answerAt = words.firstIndex(of: "answer")
        let body = answerAt.map { Array(words[..<$0]) } ?? words
        let steps = body.split(separator: "|", omittingEmptySubsequences: false).map(Array.init)
        // A trailing "|" leaves an empty last piece; it is not a step.
        let written = steps.last?.isEmpty == true ? Array(steps.dropLast()) : steps
        let expected = problem.steps
        var firstError: Int?
        for (i, step) in expected.enumerated() {
            guard i < written.count, written[i] == step else {
                firstError = i
                break
            }
        }
        if firstError == nil && written.count > expected.count { firstError = expected.count }
        let answer = answerAt.flatMap { $0 + 1 < words.count ? Int(words[$0 + 1]) : nil }
        return ChainCheck(steps: written.count, firstError: firstError, answerCorrect: answer == problem.answer)
    }
}
