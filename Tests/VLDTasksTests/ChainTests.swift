// ChainTests.swift: the k-hop chain task: determinism, answers recomputed from the text alone,
// the distribution of k, the length bound, validation, and the step checker on hand-made and
// corrupted solutions.

import Testing
import VLDTasks

/// Recomputes a problem from its prompt words alone: every statement's value, and the length of
/// the queried variable's chain (1 for a constant). Reads both syntaxes: "x = 4", "y = x + 3"
/// and "x 4", "y x + 3".
func evaluateChainText(_ words: [String], modulus p: Int) -> (answer: Int, k: Int)? {
    guard words.first == "<bos>", let q = words.firstIndex(of: "?"), q + 1 < words.count else { return nil }
    var values: [String: Int] = [:], depth: [String: Int] = [:]
    for statement in words[1..<q].split(separator: ";") {
        var w = Array(statement)
        if w.count >= 2, w[1] == "=" { w.remove(at: 1) }
        guard w.count >= 2, values[w[0]] == nil else { return nil }
        if w.count == 2, let c = Int(w[1]) {
            values[w[0]] = c
            depth[w[0]] = 1
        } else if w.count == 4, let parent = values[w[1]], let c = Int(w[3]) {
            values[w[0]] = w[2] == "+" ? (parent + c) % p : (parent * c) % p
            depth[w[0]] = depth[w[1]]! + 1
        } else {
            return nil  // a malformed statement or a parent not defined before
        }
    }
    guard let answer = values[words[q + 1]] else { return nil }
    return (answer, depth[words[q + 1]]!)
}

struct ChainCase: CustomStringConvertible, Sendable {
    let format: ChainConfig.Format
    let syntax: ChainConfig.Syntax
    var steps: ChainConfig.CotSteps = .trace
    var description: String { "\(format.rawValue) \(syntax.rawValue) \(steps.rawValue)" }
}

@Test(arguments: [
    ChainCase(format: .direct, syntax: .equals), ChainCase(format: .cot, syntax: .equals),
    ChainCase(format: .direct, syntax: .compact), ChainCase(format: .cot, syntax: .compact),
    ChainCase(format: .cot, syntax: .equals, steps: .forward),
    ChainCase(format: .cot, syntax: .compact, steps: .forward),
])
func chainAnswersMatchAnIndependentReadingOfTheText(_ c: ChainCase) throws {
    let format = c.format
    let task = try ChainTask(
        config: ChainConfig(
            format: format, modulus: 7, minK: 1, maxK: 6, statements: 9, syntax: c.syntax,
            cotSteps: c.steps))
    let vocabulary = Set(task.vocabulary + ["<bos>", "<eos>"])
    for k in 1...9 {
        for index in 0..<60 {
            let p = try task.problem(seed: 5, index: index, k: k, split: index % 2 == 0 ? .train : .test)
            let prompt = p.prompt(format), solution = p.solution(format)
            let read = try #require(evaluateChainText(prompt, modulus: 7), "\(prompt)")
            #expect(read.answer == p.answer && read.k == k, "k \(k) index \(index): \(prompt.joined(separator: " "))")
            #expect((prompt + solution).allSatisfy(vocabulary.contains))
            #expect(prompt.count + solution.count <= task.maxDocumentLength(k: k))
            #expect(Set(p.names).count == 9)
            #expect(prompt.contains("=") == (c.syntax == .equals))
            if format == .direct {
                #expect(solution == [String(p.answer), "<eos>"])
            } else {
                #expect(ChainChecker.check(p, candidate: solution).valid)
                #expect(solution.filter { $0 == "|" }.count == (c.steps == .trace ? 2 * k - 1 : k))
            }
        }
    }
    // The bound is attained by some problem with every distractor a derivation.
    let longest = (0..<400).map { i -> Int in
        let p = try! task.problem(seed: 1, index: i, k: 7, split: .test)
        return p.prompt(format).count + p.solution(format).count
    }.max()!
    #expect(longest == task.maxDocumentLength(k: 7))
}

@Test func chainProblemsAreAPureFunctionOfTheirSeedAndIndex() throws {
    let task = try ChainTask(config: ChainConfig(format: .cot))
    let a = try task.problem(seed: 11, index: 5, k: 3, split: .train)
    #expect(a == (try task.problem(seed: 11, index: 5, k: 3, split: .train)))
    #expect(a != (try task.problem(seed: 11, index: 6, k: 3, split: .train)))
    #expect(a != (try task.problem(seed: 12, index: 5, k: 3, split: .train)))
    #expect(a != (try task.problem(seed: 11, index: 5, k: 3, split: .test)))
    #expect(try task.trainingDocument(seed: 3, index: 9) == (try task.trainingDocument(seed: 3, index: 9)))
    #expect(try task.trainingDocument(seed: 3, index: 9) != (try task.trainingDocument(seed: 4, index: 9)))
    // Only the completion is scored.
    let doc = try task.trainingDocument(seed: 3, index: 9)
    let query = doc.words.firstIndex(of: "?")!
    #expect(doc.scored[...(query + 2)].allSatisfy { !$0 } && doc.scored[(query + 3)...].allSatisfy { $0 })
}

/// With `queries` > 1 a direct document asks several distinct variables of its program after the
/// usual first question; each answer is the variable's value read from the text, only answers and
/// <eos> are scored, and the first question is the document's usual one.
@Test(arguments: ChainConfig.Syntax.allCases)
func chainDocumentsWithSeveralQueriesAnswerEachFromTheText(_ syntax: ChainConfig.Syntax) throws {
    let one = try ChainTask(config: ChainConfig(modulus: 7, minK: 1, maxK: 3, statements: 6, syntax: syntax))
    let four = try ChainTask(
        config: ChainConfig(modulus: 7, minK: 1, maxK: 3, statements: 6, queries: 4, syntax: syntax))
    let width = syntax == .equals ? 4 : 3  // "? b = 5" or "? b 5"
    for index in 0..<200 {
        let single = try one.trainingDocument(seed: 2, index: index),
            doc = try four.trainingDocument(seed: 2, index: index)
        #expect(doc.words.count <= four.maxDocumentLength && doc.words.count == single.words.count + 3 * width)
        #expect(Array(doc.words.prefix(single.words.count - 1)) == Array(single.words.dropLast()))
        let q = doc.words.firstIndex(of: "?")!
        let prompt = Array(doc.words[..<q])
        var asked: [String] = []
        var i = q
        while i < doc.words.count - 1 {
            #expect(doc.words[i] == "?" && (syntax == .compact || doc.words[i + 2] == "="))
            let read = try #require(evaluateChainText(prompt + Array(doc.words[i..<(i + width - 1)]), modulus: 7))
            #expect(doc.words[i + width - 1] == String(read.answer))
            #expect(doc.scored[i..<(i + width - 1)].allSatisfy { !$0 } && doc.scored[i + width - 1])
            asked.append(doc.words[i + 1])
            i += width
        }
        #expect(asked.count == 4 && Set(asked).count == 4)
        #expect(doc.words.last == "<eos>" && doc.scored.last == true)
    }
    #expect(throws: ChainConfigError.self) { try ChainConfig(format: .cot, queries: 2).validate() }
    #expect(throws: ChainConfigError.self) { try ChainConfig(statements: 3, queries: 4).validate() }
}

/// derivedShare sets how many distractors derive from another variable: none, all, or (default)
/// about two in three; the constant-guess floor follows.
@Test func chainDerivedShareControlsTheDistractors() throws {
    func derivedFraction(_ share: Double) throws -> (fraction: Double, guess: Double) {
        let task = try ChainTask(config: ChainConfig(modulus: 7, minK: 1, maxK: 1, statements: 6, derivedShare: share))
        var derived = 0, total = 0, guess = 0.0
        for i in 0..<400 {
            let p = try task.problem(seed: 1, index: i, k: 1, split: .test)
            derived += p.statements.filter { $0.parent != nil }.count
            total += p.statements.count - 1
            guess += p.constantGuessAccuracy
        }
        return (Double(derived) / Double(total), guess / 400)
    }
    let none = try derivedFraction(0), all = try derivedFraction(1), usual = try derivedFraction(2.0 / 3.0)
    #expect(none.fraction == 0 && all.fraction == 1 && abs(usual.fraction - 2.0 / 3.0) < 0.04, "\(usual)")
    // Every distractor a constant: about 1/6 plus collisions (1/7 of the other 5); all derived: always right.
    #expect(abs(none.guess - (1 + 5.0 / 7) / 6) < 0.03 && all.guess == 1, "\(none) \(all)")
    #expect(throws: ChainConfigError.self) { try ChainConfig(derivedShare: 1.5).validate() }
}

/// The recall curriculum: the first recallDocuments training problems are lookups among
/// constants only; after them the usual mixture of k and distractors resumes.
@Test func chainRecallCurriculumStartsWithPureRecall() throws {
    let task = try ChainTask(config: ChainConfig(modulus: 7, minK: 1, maxK: 4, statements: 6, recallDocuments: 300))
    let plain = try ChainTask(config: ChainConfig(modulus: 7, minK: 1, maxK: 4, statements: 6))
    for i in 0..<300 {
        let p = try task.trainingProblem(seed: 4, index: i)
        #expect(p.k == 1 && p.statements.allSatisfy { $0.parent == nil })
    }
    var ks = Set<Int>()
    for i in 300..<500 {
        let p = try task.trainingProblem(seed: 4, index: i)
        #expect(p == (try plain.trainingProblem(seed: 4, index: i)))
        ks.insert(p.k)
    }
    #expect(ks == [1, 2, 3, 4])
    #expect(throws: ChainConfigError.self) { try ChainConfig(recallDocuments: -1).validate() }
}

/// Training documents draw k uniformly from minK...maxK.
@Test func chainTrainingKIsUniformOverItsRange() throws {
    let task = try ChainTask(config: ChainConfig(modulus: 11, minK: 2, maxK: 5, statements: 8))
    var counts: [Int: Int] = [:]
    let n = 4000
    for i in 0..<n {
        let doc = try task.trainingDocument(seed: 7, index: i)
        let read = try #require(evaluateChainText(doc.words, modulus: 11))
        counts[read.k, default: 0] += 1
    }
    #expect(Set(counts.keys) == [2, 3, 4, 5], "\(counts)")
    // Each of 4 values: expected 1000, binomial sd about 27; 5 sd either way.
    #expect(counts.values.allSatisfy { abs($0 - n / 4) < 140 }, "\(counts)")
}

@Test func chainSettingsThatCannotGenerateAreRefused() {
    func message(_ c: ChainConfig) -> String? {
        do { try c.validate(); return nil } catch { return "\(error)" }
    }
    #expect(message(ChainConfig()) == nil)
    #expect(message(ChainConfig(modulus: 1)) == "modulus must be in 2...97, got 1")
    #expect(
        message(ChainConfig(maxK: 10, statements: 9))
            == "maxK (10) needs maxK statements; statements is 9, so maxK can be at most 9")
    #expect(message(ChainConfig(minK: 3, maxK: 2)) == "minK must be in 1...maxK (2), got 3")
    #expect(
        message(ChainConfig(statements: 10, variables: 8))
            == "variables must be in 10...702 (a name per statement), got 8")
    let task = try! ChainTask(config: ChainConfig(statements: 6))
    #expect(throws: TaskError.self) { try task.problem(seed: 1, index: 0, k: 7, split: .test) }
}

/// The trace layout, written out by hand for one problem, and the checker on it: a wrong parent
/// followed in the trace, stopping the trace early, a wrong value carried up, a wrong result.
@Test func chainTraceSolutionsAreCheckedStepByStep() throws {
    let task = try ChainTask(config: ChainConfig(format: .cot, modulus: 7, maxK: 3, statements: 5))
    let p = try (0..<50).lazy.map { try task.problem(seed: 4, index: $0, k: 3, split: .test) }.first { _ in true }!
    let (c, b, m) = (p.chain[0], p.chain[1], p.chain[2])
    func st(_ v: Int) -> ChainStatement { p.statements.first { $0.variable == v }! }
    let n = p.names, val = p.values
    let hand: [[String]] = [
        [n[m], n[b], st(m).op, String(st(m).constant)],
        [n[b], n[c], st(b).op, String(st(b).constant)],
        [n[c], String(val[c])],
        [n[b], String(val[c]), st(b).op, String(st(b).constant), "=", String(val[b])],
        [n[m], String(val[b]), st(m).op, String(st(m).constant), "=", String(val[m])],
    ]
    #expect(p.steps == hand)
    let right = hand.flatMap { $0 + ["|"] } + ["answer", String(p.answer), "<eos>"]
    #expect(p.solution(.cot) == right)
    #expect(ChainChecker.check(p, candidate: right) == ChainCheck(steps: 5, firstError: nil, answerCorrect: true))
    func joined(_ s: [[String]]) -> [String] { s.flatMap { $0 + ["|"] } + ["answer", String(p.answer)] }
    func bump(_ w: String) -> String { String((Int(w)! + 1) % 7) }
    // Following a distractor: the second trace step copies another variable's statement.
    let other = p.statements.first { !p.chain.contains($0.variable) }!
    var wrongTrace = hand
    wrongTrace[1] =
        [n[other.variable]]
        + (other.parent.map { [n[$0], other.op, String(other.constant)] } ?? [String(other.constant)])
    #expect(ChainChecker.check(p, candidate: joined(wrongTrace)).firstError == 1)
    // Stopping the trace at b: computing from b's statement as if it were the constant.
    #expect(ChainChecker.check(p, candidate: joined([hand[0], hand[1], hand[4]])).firstError == 2)
    var wrongCarry = hand, wrongResult = hand
    wrongCarry[4][1] = bump(wrongCarry[4][1])
    wrongResult[3][5] = bump(wrongResult[3][5])
    #expect(ChainChecker.check(p, candidate: joined(wrongCarry)).firstError == 4)
    #expect(ChainChecker.check(p, candidate: joined(wrongResult)).firstError == 3)
    #expect(ChainChecker.check(p, candidate: joined(hand + [hand[4]])).firstError == 5)
    // The equals syntax writes "b = 3 + 2 = 5".
    let eq = try ChainTask(config: ChainConfig(format: .cot, modulus: 7, maxK: 3, statements: 5, syntax: .equals))
        .problem(seed: 4, index: 0, k: 3, split: .test)
    #expect(eq.steps[3].prefix(2) == [eq.names[eq.chain[1]], "="] && eq.steps[3].count == 7)
}

/// The checker names the first wrong step of a candidate: the wrong statement retrieved, a wrong
/// value substituted, a wrong result, a missing or extra step; a right solution passes.
@Test func chainCheckerFindsTheFirstWrongStep() throws {
    // Word positions below are those of the equals syntax; the compact one is checked at the end.
    let task = try ChainTask(
        config: ChainConfig(format: .cot, modulus: 11, maxK: 4, statements: 8, syntax: .equals, cotSteps: .forward))
    let p = try task.problem(seed: 2, index: 3, k: 4, split: .test)
    let right = p.solution(.cot)
    let compact = try ChainTask(
        config: ChainConfig(format: .cot, modulus: 11, maxK: 4, statements: 8, cotSteps: .forward)
    )
    .problem(seed: 2, index: 3, k: 4, split: .test)
    var wrongCompact = compact.solution(.cot)
    #expect(ChainChecker.check(compact, candidate: wrongCompact).valid)
    let secondResult = wrongCompact.indices.filter { wrongCompact[$0] == "|" }[1] - 1
    wrongCompact[secondResult] = String((Int(wrongCompact[secondResult])! + 1) % 11)
    #expect(ChainChecker.check(compact, candidate: wrongCompact).firstError == 1)
    #expect(ChainChecker.check(p, candidate: right) == ChainCheck(steps: 4, firstError: nil, answerCorrect: true))
    // Split into steps to corrupt one at a time.
    let pieces = right.split(separator: "|", omittingEmptySubsequences: false).map(Array.init)
    let steps = Array(pieces.dropLast()), tail = pieces.last!  // tail: answer v <eos>
    func joined(_ s: [[String]], _ end: [String] = []) -> [String] {
        s.flatMap { $0 + ["|"] } + (end.isEmpty ? tail : end)
    }
    func bump(_ w: String) -> String { String((Int(w)! + 1) % 11) }
    for i in 1..<4 {
        var wrongResult = steps, wrongValue = steps, wrongParent = steps, wrongOp = steps
        wrongResult[i][10] = bump(wrongResult[i][10])
        wrongValue[i][6] = bump(wrongValue[i][6])
        wrongParent[i][2] = p.names.first { $0 != steps[i][2] && $0 != steps[i][0] }!
        wrongOp[i][3] = wrongOp[i][3] == "+" ? "*" : "+"
        for (what, candidate) in [
            ("result", wrongResult), ("value", wrongValue), ("parent", wrongParent), ("op", wrongOp),
        ] {
            #expect(ChainChecker.check(p, candidate: joined(candidate)).firstError == i, "\(what) of step \(i)")
        }
    }
    var wrongConstant = steps
    wrongConstant[0][2] = bump(wrongConstant[0][2])
    #expect(ChainChecker.check(p, candidate: joined(wrongConstant)).firstError == 0)
    #expect(ChainChecker.check(p, candidate: joined(Array(steps.prefix(2)))).firstError == 2)  // steps 3-4 missing
    #expect(ChainChecker.check(p, candidate: joined(steps + [steps[1]])).firstError == 4)  // one step too many
    let wrongAnswer = ChainChecker.check(p, candidate: joined(steps, ["answer", bump(String(p.answer)), "<eos>"]))
    #expect(wrongAnswer.firstError == nil && !wrongAnswer.answerCorrect && !wrongAnswer.valid)
    #expect(
        ChainChecker.check(p, candidate: Array(right.prefix(5)))
            == ChainCheck(steps: 2, firstError: 1, answerCorrect: false))
    #expect(ChainChecker.check(p, candidate: []).firstError == 0)
}
