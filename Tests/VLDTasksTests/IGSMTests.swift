// IGSMTests.swift: iGSM-lite generation (determinism, exact op counts, answers checked by an
// independent parser/evaluator of the problem text, template splits, vocabulary, lengths) and
// the step-by-step solution checker (valid solutions pass, corruptions fail at the right step).

import Foundation
import Testing
@testable import VLDTasks

private let task = try! IGSMTask(config: IGSMConfig())

// MARK: an independent reader of the problem text

/// One parsed sentence: operand names, whether a literal constant occurs, and an evaluator.
private struct ParsedDefinition {
    var operands: [String]
    var hasConstant: Bool
    var evaluate: ([Int]) -> Int
}

private func mod(_ x: Int, _ p: Int) -> Int { ((x % p) + p) % p }

/// The level of every item word of the four hierarchies.
private let levelOf = Dictionary(
    uniqueKeysWithValues: IGSMWords.hierarchies.flatMap { h in
        h.enumerated().flatMap { l, items in items.map { ($0, l) } }
    })

/// Parses a symbolic right-hand side ("c", "Y X", "c + Y X", "A + B + C", "A - B",
/// "c * ( A + B )"): terms (numbers, item-owner pairs, one parenthesised group) joined by one
/// operator, evaluated left to right.
private func parseSymbolicRHS(_ r: [String]) -> ParsedDefinition? {
    var terms: [ParsedDefinition] = [], ops: [String] = []
    var i = 0
    while i < r.count {
        if let c = Int(r[i]) {
            terms.append(ParsedDefinition(operands: [], hasConstant: true) { _ in c })
            i += 1
        } else if r[i] == "(", let close = r[i...].firstIndex(of: ")"),
            let inner = parseSymbolicRHS(Array(r[(i + 1)..<close]))
        {
            terms.append(inner)
            i = close + 1
        } else if i + 1 < r.count, levelOf[r[i]] != nil, levelOf[r[i + 1]] != nil {
            terms.append(ParsedDefinition(operands: [r[i + 1] + " 's " + r[i]], hasConstant: false) { $0[0] })
            i += 2
        } else {
            return nil
        }
        if i < r.count {
            guard ["+", "-", "*"].contains(r[i]) else { return nil }
            ops.append(r[i])
            i += 1
            guard i < r.count else { return nil }
        }
    }
    guard !terms.isEmpty, Set(ops).count <= 1 else { return nil }
    let operands = terms.flatMap(\.operands)
    return ParsedDefinition(operands: operands, hasConstant: terms.contains { $0.hasConstant }) { args in
        var k = 0
        var values: [Int] = []
        for t in terms {
            values.append(t.evaluate(Array(args[k..<(k + t.operands.count)])))
            k += t.operands.count
        }
        return values.dropFirst().reduce(values[0]) { acc, v in
            ops.first == "+" ? acc + v : ops.first == "-" ? acc - v : acc * v
        }
    }
}

/// Reads a symbolic question back ("Y X = rhs ;" sentences, or "Y X rhs ;" without `equals`,
/// then "How many Y X ?").
private func readSymbolicQuestion(_ q: [String], equals: Bool = true) -> (
    defs: [String: ParsedDefinition], query: String
)? {
    guard q.count > 7, q[0] == "Question", q[1] == ":" else { return nil }
    var defs: [String: ParsedDefinition] = [:]
    var i = 2
    let e = equals ? 1 : 0
    while i < q.count, q[i] != "How" {
        guard i + 2 < q.count, !equals || q[i + 2] == "=", let end = q[(i + 2 + e)...].firstIndex(of: ";"),
            let d = parseSymbolicRHS(Array(q[(i + 2 + e)..<end]))
        else { return nil }
        let n = q[i + 1] + " 's " + q[i]
        guard defs[n] == nil else { return nil }
        defs[n] = d
        i = end + 1
    }
    guard i + 5 == q.count, q[i + 1] == "many", q[i + 4] == "?" else { return nil }
    return (defs, q[i + 3] + " 's " + q[i + 2])
}

/// Parses "each X 's Y" at `i`, returning "X 's Y".
private func name(_ w: [String], _ i: Int) -> String? {
    guard i + 3 < w.count, w[i] == "each", w[i + 2] == "'s" else { return nil }
    return w[i + 1] + " 's " + w[i + 3]
}

/// The right-hand side of "... equals RHS" (without the final ".").
private func parseRHS(_ r: [String]) -> ParsedDefinition? {
    if r.count == 1, let c = Int(r[0]) { return ParsedDefinition(operands: [], hasConstant: true) { _ in c } }
    if r.count == 4, let a = name(r, 0) { return ParsedDefinition(operands: [a], hasConstant: false) { $0[0] } }
    if r.count > 3, let c = Int(r[0]), r[1] == "more", r[2] == "than", let inner = parseRHS(Array(r[3...])),
        !inner.hasConstant
    {
        return ParsedDefinition(operands: inner.operands, hasConstant: true) { c + inner.evaluate($0) }
    }
    if r.count > 5, let c = Int(r[0]), r[1...4] == ["times", "as", "much", "as"], let inner = parseRHS(Array(r[5...])),
        !inner.hasConstant
    {
        return ParsedDefinition(operands: inner.operands, hasConstant: true) { c * inner.evaluate($0) }
    }
    guard r.count > 3, r[0] == "the", r[2] == "of" else { return nil }
    var names: [String] = []
    var i = 3
    while i < r.count {
        guard let n = name(r, i) else { return nil }
        names.append(n)
        i += 4
        if i < r.count {
            let last = r[i] == "and"
            guard r[i] == "," || last else { return nil }
            i += 1
            if last { guard i + 4 == r.count else { return nil } }
        }
    }
    if r[1] == "sum", (2...4).contains(names.count) {
        return ParsedDefinition(operands: names, hasConstant: false) { $0.reduce(0, +) }
    }
    if r[1] == "difference", names.count == 2 {
        return ParsedDefinition(operands: names, hasConstant: false) { $0[0] - $0[1] }
    }
    return nil
}

/// Reads a problem's question back: the definitions by name, and the queried name.
private func readQuestion(_ q: [String]) -> (defs: [String: ParsedDefinition], query: String)? {
    guard q.count > 9, q[0] == "Question", q[1] == ":" else { return nil }
    var defs: [String: ParsedDefinition] = [:]
    var i = 2
    while i < q.count, q[i] == "The" {
        guard q[i + 1] == "number", q[i + 2] == "of", let n = name(q, i + 3), q[i + 7] == "equals",
            let end = q[(i + 8)...].firstIndex(of: "."), let d = parseRHS(Array(q[(i + 8)..<end]))
        else { return nil }
        guard defs[n] == nil else { return nil }
        defs[n] = d
        i = end + 1
    }
    guard i + 7 == q.count, q[i] == "How", q[i + 1] == "many", q[i + 3] == "does", q[i + 5] == "have", q[i + 6] == "?"
    else { return nil }
    return (defs, q[i + 4] + " 's " + q[i + 2])
}

/// Value and op count (own implementation of spec §6.3 step 4) of the query, from the text.
private func evaluateIndependently(_ p: IGSMProblem, modulus: Int = 23, render: IGSMConfig.Render = .text) -> (
    value: Int, ops: Int
)? {
    guard
        let (defs, query) = render == .text
            ? readQuestion(p.question) : readSymbolicQuestion(p.question, equals: render == .symbolic)
    else { return nil }
    var memo: [String: Int] = [:]
    func value(_ n: String, depth: Int) -> Int? {
        if let v = memo[n] { return v }
        guard depth < 64, let d = defs[n] else { return nil }
        var args: [Int] = []
        for o in d.operands {
            guard let v = value(o, depth: depth + 1) else { return nil }
            args.append(v)
        }
        let v = mod(d.evaluate(args), modulus)
        memo[n] = v
        return v
    }
    guard let v = value(query, depth: 0) else { return nil }
    var necessary = Set<String>(), stack = [query]
    while let n = stack.popLast() { if necessary.insert(n).inserted { stack += defs[n]!.operands } }
    var ops = 0
    for n in necessary {
        let indeg = defs[n]!.operands.count + (defs[n]!.hasConstant ? 1 : 0)
        ops += indeg <= 2 ? 1 : indeg - 1
    }
    return (v, ops)
}

/// Word ranges of the Define steps of a solution.
private func steps(_ s: [String]) -> [Range<Int>] {
    var out: [Range<Int>] = []
    var i = 0
    while i < s.count, s[i] == "Define" {
        let end = s[i...].firstIndex(of: ".")!
        out.append(i..<(end + 1))
        i = end + 1
    }
    return out
}

// MARK: tests

@Test func igsmOperationCostFormula() {
    #expect(IGSMTask.operationCost(parents: 0, hasConstant: true) == 1)  // c
    #expect(IGSMTask.operationCost(parents: 1, hasConstant: false) == 1)  // A
    #expect(IGSMTask.operationCost(parents: 1, hasConstant: true) == 1)  // c + A
    #expect(IGSMTask.operationCost(parents: 2, hasConstant: false) == 1)  // A + B
    #expect(IGSMTask.operationCost(parents: 2, hasConstant: true) == 2)  // c + (A - B)
    #expect(IGSMTask.operationCost(parents: 3, hasConstant: false) == 2)  // A + B + C
    #expect(IGSMTask.operationCost(parents: 4, hasConstant: false) == 3)  // A + B + C + D
    for f in IGSMForm.allCases {  // a form's cost is the number of clauses its solution step has
        #expect(f.cost == IGSMTask.operationCost(parents: f.parentCount, hasConstant: f.hasConstant))
    }

    // The spec's example: p = 10; r = p; u = 11 + (r + p): 1 + 1 + 2.
    let example: [[Int]] = [[], [0], [1, 0]]
    #expect(IGSMTask.operationCount(query: 2, parents: example, hasConstant: [true, false, true]) == 4)
    #expect(IGSMTask.operationCount(query: 1, parents: example, hasConstant: [true, false, true]) == 2)
    // Shared ancestors count once; the distractor 5 never counts.
    let shared: [[Int]] = [[], [], [0, 1], [0, 1, 2], [0, 1, 2, 3], []]
    let constants = [true, true, false, false, false, true]
    #expect(IGSMTask.operationCount(query: 4, parents: shared, hasConstant: constants) == 8)
    #expect(IGSMTask.operationCount(query: 3, parents: shared, hasConstant: constants) == 5)
    #expect(IGSMTask.operationCount(query: 5, parents: shared, hasConstant: constants) == 1)
    // 0 = c, 1 = c * 0, 2 = c, 3 = 1 - 2, 4 = c + (0 - 3), 5 = 4 + 1 + 2 (distractor of 4).
    let mixed: [[Int]] = [[], [0], [], [1, 2], [0, 3], [4, 1, 2]]
    let mixedConstants = [true, true, true, false, true, false]
    #expect(IGSMTask.operationCount(query: 4, parents: mixed, hasConstant: mixedConstants) == 6)
    #expect(IGSMTask.operationCount(query: 5, parents: mixed, hasConstant: mixedConstants) == 8)
    #expect(IGSMTask.operationCount(query: 1, parents: mixed, hasConstant: mixedConstants) == 2)
}

@Test func igsmSolutionStepFormat() {
    let params = [
        IGSMParameter(owner: "Riverzoo", item: "Aviary", form: .constant, parents: [], constant: 10, value: 10),
        IGSMParameter(owner: "Riverzoo", item: "Paddock", form: .copy, parents: [0], constant: 0, value: 10),
        IGSMParameter(
            owner: "Northvale", item: "Riverzoo", form: .constPlusSum, parents: [1, 0], constant: 11, value: 8),
    ]
    var words: [String] = []
    let symbols = ["p", "r", "u"]
    IGSMText.appendStep(params[0], symbols: ["p"], symbolOf: symbols, params: params, to: &words)
    IGSMText.appendStep(params[1], symbols: ["r"], symbolOf: symbols, params: params, to: &words)
    IGSMText.appendStep(params[2], symbols: ["u", "m"], symbolOf: symbols, params: params, to: &words)
    #expect(
        words.joined(separator: " ") == "Define Riverzoo 's Aviary as p ; so p = 10 . "
            + "Define Riverzoo 's Paddock as r ; so r = p = 10 . "
            + "Define Northvale 's Riverzoo as u ; m = r + p = 10 + 10 = 20 ; so u = 11 + m = 11 + 20 = 8 .")
    var sentence: [String] = []
    IGSMText.appendSentence(params[2], params, to: &sentence)
    #expect(
        sentence.joined(separator: " ") == "The number of each Northvale 's Riverzoo equals 11 more than the sum of "
            + "each Riverzoo 's Paddock and each Riverzoo 's Aviary .")
    for f in IGSMForm.allCases {  // the length tables used by the budget match the rendering
        let ps = Array(0..<f.parentCount)
        let all = (0..<4).map { _ in
            IGSMParameter(owner: "Lion", item: "Zebra", form: .constant, parents: [], constant: 1, value: 1)
        }
        let p = IGSMParameter(owner: "Lion", item: "Otter", form: f, parents: ps, constant: 5, value: 0)
        var s: [String] = [], t: [String] = []
        IGSMText.appendSentence(p, all, to: &s)
        IGSMText.appendStep(p, symbols: ["x", "y", "z"], symbolOf: ["a", "b", "c", "d"], params: all, to: &t)
        #expect(s.count == IGSMGraph.sentenceLength(f), "\(f)")
        #expect(t.count == IGSMGraph.solutionLength(f), "\(f)")
        #expect(t.filter { $0 == ";" || $0 == "." }.count == f.cost + 1, "\(f)")
    }
}

@Test func igsmIsDeterministicAndSeeded() throws {
    let a = try task.problem(seed: 11, index: 5, ops: 4, split: .train)
    #expect(try a == task.problem(seed: 11, index: 5, ops: 4, split: .train))
    #expect(try a != task.problem(seed: 12, index: 5, ops: 4, split: .train))
    #expect(try a != task.problem(seed: 11, index: 6, ops: 4, split: .train))
    #expect(try task.trainingDocument(seed: 3, index: 9) == task.trainingDocument(seed: 3, index: 9))
    #expect(try task.trainingDocument(seed: 3, index: 9) != task.trainingDocument(seed: 4, index: 9))
    let questions = Set(try (0..<50).map { try task.problem(seed: 1, index: $0, ops: 3, split: .test).question })
    #expect(questions.count == 50)
}

@Test func igsmAnswersMatchAnIndependentEvaluation() throws {
    var checked = 0
    for ops in [1, 2, 3, 5, 8, 12] {
        for i in 0..<30 {
            let p = try task.problem(seed: 21, index: i, ops: ops, split: i % 2 == 0 ? .train : .test)
            #expect(p.ops == ops)
            guard let (value, parsedOps) = evaluateIndependently(p) else {
                Issue.record("cannot read back: \(p.question.joined(separator: " "))")
                continue
            }
            #expect(value == p.answer)
            #expect(parsedOps == ops)
            #expect(Array(p.solution.suffix(4)) == ["Answer", ":", String(p.answer), "<eos>"])
            #expect((0...22).contains(p.answer))
            // The generator's own graph agrees with the formula function.
            let count = IGSMTask.operationCount(
                query: p.query, parents: p.parameters.map(\.parents),
                hasConstant: p.parameters.map(\.form.hasConstant))
            #expect(count == ops)
            let c = task.check(p, candidate: p.solution)
            #expect(
                c.validSolution && c.answerCorrect && c.answer == p.answer && c.firstInvalidStep == nil
                    && c.reason == nil,
                "\(c.reason ?? "")")
            #expect(c.stepsChecked == steps(p.solution).count + 1)
            checked += 1
        }
    }
    #expect(checked == 180)
}

@Test func igsmReachesEveryOpLevelInBothSplits() throws {
    for (maxOps, edges) in [(1, 8), (6, 9), (6, 32), (15, 15), (15, 20)] {
        let t = try! IGSMTask(config: IGSMConfig(maxOps: maxOps, maxEdges: edges))
        for ops in 1...(maxOps + 6) {
            for split in [IGSMSplit.train, .test] {
                let p = try t.problem(seed: 5, index: ops, ops: ops, split: split)
                #expect(p.ops == ops)
                #expect(p.parameters.count <= edges)
                #expect(split == .train ? p.templateHash < 17 : p.templateHash >= 17)
                #expect(p.prompt.count + p.solution.count <= t.maxDocumentLength)
                #expect(evaluateIndependently(p)?.ops == ops)
            }
        }
    }
}

@Test func igsmTemplateSplitsAreDisjoint() throws {
    // An independent template from the text: the level count (from the items the question
    // names), the sentences with names and numbers blanked (sorted, so their order does not
    // count), then each solution word with names replaced by their level, numbers by "#", and
    // symbols by the step (or intermediate) they refer to.
    func skeleton(_ p: IGSMProblem) -> String { skeletonOf(question: p.question, solution: p.solution) }
    func skeletonOf(question: [String], solution: [String]) -> String {
        let levels = Set(question.compactMap { levelOf[$0] }).count
        let body = question.prefix { $0 != "How" }.dropFirst(2)
        let shapes = body.split(separator: ".").map { s in
            s.map { levelOf[$0] != nil ? "N" : Int($0) != nil ? "#" : $0 }.joined(separator: " ")
        }
        var out = ["d\(levels)", "E\(shapes.count)"] + shapes.sorted() + ["|"]
        var stepOfSymbol: [String: String] = [:]
        var step = 0
        var intermediates = 0
        for (i, w) in solution.enumerated() {
            if w == "Define" { step += 1; intermediates = 0 }
            if let l = levelOf[w] {
                out.append("L\(l)")
            } else if Int(w) != nil {
                out.append("#")
            } else if w.count == 1, w.first!.isLetter {
                if i > 0, solution[i - 1] == "as" {
                    stepOfSymbol[w] = "S\(step)"
                } else if solution[i + 1] == "=", solution[i - 1] != "so", stepOfSymbol[w] == nil {
                    intermediates += 1
                    stepOfSymbol[w] = "I\(step).\(intermediates)"
                }
                out.append(stepOfSymbol[w] ?? "?")
            } else {
                out.append(w)
            }
        }
        return out.joined(separator: " ")
    }
    var train: [String: Int] = [:], test: [String: Int] = [:]
    for ops in 1...4 {
        for i in 0..<60 {
            let a = try task.problem(seed: 8, index: i, ops: ops, split: .train)
            let b = try task.problem(seed: 8, index: i, ops: ops, split: .test)
            #expect(a.templateHash < 17 && b.templateHash >= 17)
            #expect(train.updateValue(a.templateHash, forKey: skeleton(a)).map { $0 == a.templateHash } ?? true)
            #expect(test.updateValue(b.templateHash, forKey: skeleton(b)).map { $0 == b.templateHash } ?? true)
        }
    }
    #expect(Set(train.keys).isDisjoint(with: test.keys))
    #expect(train.count > 20 && test.count > 20)  // the sets are large enough for the check to mean something
    for i in 0..<40 {
        #expect(try task.problem(seed: 2, index: i, ops: 15 - 3, split: .test).templateHash >= 17)
    }
    // The training stream is in the train split: none of its templates is a test template.
    var fromTraining = Set<String>()
    for i in 0..<120 {
        let d = try task.trainingDocument(seed: 4, index: i)
        let cut = d.words.firstIndex(of: "Solution")!
        fromTraining.insert(skeletonOf(question: Array(d.words[1..<cut]), solution: Array(d.words[(cut + 2)...])))
    }
    #expect(fromTraining.isDisjoint(with: test.keys))
    for i in 0..<120 { #expect(try task.trainingProblem(seed: 4, index: i).templateHash < 17) }
}

@Test func igsmCheckerCatchesCorruptions() throws {
    var sawReorder = false, sawWrongReference = false
    for i in 0..<40 {
        let p = try task.problem(seed: 33, index: i, ops: 3 + i % 8, split: .train)
        let s = p.solution
        let st = steps(s)
        let n = st.count
        func check(_ c: [String]) -> IGSMCheck { task.check(p, candidate: c) }

        // Valid, with or without <eos>, and with junk after <eos>.
        #expect(check(s).validSolution)
        #expect(check(Array(s.dropLast())).validSolution)
        #expect(check(s + ["Answer", ":", "0"]).validSolution)

        // A wrong result (or constant) in each step.
        for k in 0..<n {
            var c = s
            let r = st[k].upperBound - 2
            c[r] = String((Int(c[r])! + 1) % 23)
            let res = check(c)
            #expect(!res.validSolution && res.firstInvalidStep == k && res.stepsChecked == k + 1, "\(res)")
            #expect(res.answer == p.answer && res.answerCorrect)
        }
        // A wrong substituted value in the last clause of each binary step.
        for k in 0..<n where ["+", "-", "*"].contains(s[st[k].upperBound - 5]) {
            var c = s
            let v = st[k].upperBound - 6
            c[v] = String((Int(c[v])! + 5) % 23)
            #expect(check(c).firstInvalidStep == k)
        }
        // A wrong final answer.
        var wrong = s
        wrong[s.count - 2] = String((p.answer + 1) % 23)
        let w = check(wrong)
        #expect(!w.validSolution && w.firstInvalidStep == n && w.stepsChecked == n + 1)
        #expect(w.answer == (p.answer + 1) % 23 && !w.answerCorrect)
        // Truncations: mid-step and at a step boundary.
        for k in 0..<n {
            let mid = check(Array(s[..<(st[k].lowerBound + 9)]))
            #expect(!mid.validSolution && mid.firstInvalidStep == k && mid.answer == nil)
            let cut = check(Array(s[..<st[k].lowerBound]))
            #expect(!cut.validSolution && cut.firstInvalidStep == k && cut.answer == nil)
        }
        // Answer without defining the query; garbage.
        #expect(check(["Answer", ":", String(p.answer)]).firstInvalidStep == 0)
        #expect(check(["Answer", ":", String(p.answer)]).answerCorrect)
        let garbage = check(["so", "=", "Define", "+", "Lion", "Answer", ";"])
        #expect(!garbage.validSolution && garbage.firstInvalidStep == 0 && garbage.answer == nil)
        // Defining the same parameter twice.
        if n >= 1 {
            let dup = check(Array(s[st[0]]) + Array(s[st[0]]) + Array(s[st[0].upperBound...]))
            #expect(dup.firstInvalidStep == 1)
        }

        // Swapping two adjacent steps: fine when independent, invalid at the first when not.
        for k in 0..<(n - 1) {
            let defined = s[st[k].lowerBound + 5]
            var c = Array(s[..<st[k].lowerBound])
            c += s[st[k + 1]]
            c += s[st[k]]
            c += s[st[k + 1].upperBound...]
            let uses = s[st[k + 1]].dropFirst(7).contains(defined)
            let res = check(c)
            if uses { #expect(res.firstInvalidStep == k) } else { #expect(res.validSolution); sawReorder = true }
        }
        // A copy step that copies another defined parameter, values consistent: wrong reference.
        for k in 1..<max(n, 1) where st[k].count == 14 {
            let copied = s[st[k].upperBound - 4]
            guard let other = (0..<k).map({ s[st[$0].lowerBound + 5] }).first(where: { $0 != copied }),
                let j = (0..<k).first(where: { s[st[$0].lowerBound + 5] == other })
            else { continue }
            var c = s
            c[st[k].upperBound - 4] = other
            c[st[k].upperBound - 2] = s[st[j].upperBound - 2]
            let res = check(c)
            #expect(
                res.firstInvalidStep == k && res.reason?.contains("does not follow the definition") == true, "\(res)")
            sawWrongReference = true
        }
    }
    #expect(sawReorder && sawWrongReference)
}

@Test func igsmDocumentsUseTheVocabularyAndFitTheBound() throws {
    let vocab = task.vocabulary
    #expect(Set(vocab).count == vocab.count)
    #expect(
        vocab.allSatisfy { !$0.isEmpty && !$0.contains(where: \.isWhitespace) && !WordTokenizer.specials.contains($0) })
    #expect((0...22).allSatisfy { vocab.contains(String($0)) })
    #expect(vocab.count >= 150 && vocab.count <= 300)
    let tokenizer = try WordTokenizer(family: task.family, words: vocab)
    #expect(tokenizer.family == "igsm")
    let known = Set(vocab).union(["<bos>", "<eos>"])
    var longest = 0
    for i in 0..<150 {
        let d = try task.trainingDocument(seed: 77, index: i)
        #expect(d.words.allSatisfy(known.contains))
        #expect(d.words.count <= task.maxDocumentLength)
        #expect(d.words.first == "<bos>" && d.words.last == "<eos>")
        let start = d.words.firstIndex(of: "Solution")! + 2
        #expect(d.scored == d.words.indices.map { $0 >= start })
        longest = max(longest, d.words.count)
    }
    #expect(longest > 150)
    for ops in [7, 12] {
        for i in 0..<20 {
            let p = try task.problem(seed: 9, index: i, ops: ops, split: .test)
            #expect((p.prompt + p.solution).allSatisfy(known.contains))
            #expect(p.prompt.count + p.solution.count <= task.maxDocumentLength)
        }
    }
    let unmasked = try IGSMTask(config: IGSMConfig(maskQuestion: false))
    let d = try unmasked.trainingDocument(seed: 77, index: 0)
    #expect(d.scored == d.words.indices.map { $0 > 0 })
    #expect(try d.words == task.trainingDocument(seed: 77, index: 0).words)
}

@Test func igsmConfigValidation() throws {
    let c = IGSMConfig()
    #expect(c.maxOps == 6 && c.maskQuestion && c.maxEdges == 12)
    #expect(IGSMConfig(maxOps: 15).maxEdges == 20)
    var follows = IGSMConfig()
    follows.maxOps = 15  // maxEdges follows maxOps unless set
    #expect(follows.maxEdges == 20)
    try follows.validate()
    follows.maxEdges = 16
    follows.maxOps = 6
    #expect(follows.maxEdges == 16)
    #expect(task.maxDocumentLength == 16 + 20 * 12 + 20 * 12)
    try c.validate()
    #expect(throws: IGSMConfigError(message: "igsm: maxOps 0 is outside 1...15")) {
        try IGSMConfig(maxOps: 0).validate()
    }
    #expect(throws: IGSMConfigError(message: "igsm: maxOps 16 is outside 1...15")) {
        try IGSMTask(config: IGSMConfig(maxOps: 16))
    }
    #expect(throws: IGSMConfigError(message: "igsm: maxEdges 14 is outside 15...32 (for maxOps 15)")) {
        try IGSMConfig(maxOps: 15, maxEdges: 14).validate()
    }
    #expect(throws: IGSMConfigError(message: "igsm: maxEdges 33 is outside 9...32 (for maxOps 6)")) {
        try IGSMConfig(maxEdges: 33).validate()
    }
    let decoded = try JSONDecoder().decode(IGSMConfig.self, from: Data("{\"maxOps\": 15}".utf8))
    #expect(decoded == IGSMConfig(maxOps: 15, maskQuestion: true, maxEdges: 20))
    let roundTrip = try JSONDecoder().decode(
        IGSMConfig.self, from: JSONEncoder().encode(IGSMConfig(maxOps: 8, maskQuestion: false, maxEdges: 17)))
    #expect(roundTrip == IGSMConfig(maxOps: 8, maskQuestion: false, maxEdges: 17))
    var auto = try JSONDecoder().decode(IGSMConfig.self, from: JSONEncoder().encode(IGSMConfig(maxOps: 6)))
    auto.maxOps = 12
    #expect(auto.maxEdges == 18)
}

/// Settings under which the generator cannot reach an op count make it throw a TaskError that
/// the trainer reports (the job fails with the message), not trap the worker.
@Test func igsmThatCannotGenerateThrowsInsteadOfTrapping() throws {
    var task = try IGSMTask(config: IGSMConfig(maxOps: 6, maxEdges: 12))
    task.drawLimit = 3
    var config = task.config
    config.maxWords = 20  // far too few words for any problem
    var starved = try IGSMTask(config: config)
    starved.drawLimit = 2_000
    do {
        _ = try starved.problem(seed: 1, index: 0, ops: 5, split: .train)
        Issue.record("a problem was generated within 20 words")
    } catch let error as TaskError {
        #expect(
            error.description.contains("no train problem with 5 operations in 2000 draws")
                && error.description.contains("maxWords 20"))
    }
    #expect(throws: TaskError.self) { try starved.trainingDocument(seed: 1, index: 0) }
    let mixture = try TaskMixture(tasks: [starved], weights: [1])
    #expect(throws: TaskError.self) { try mixture.batch(seed: 1, cursor: 0, B: 2, T: 32) }
    #expect(throws: TaskError("igsm: ops 13 outside 1...12")) {
        try task.problem(seed: 1, index: 0, ops: 13, split: .test)
    }
}

// MARK: knobs (issue 11): modulus, symbolic rendering, ordered step symbols, no split, curriculum

@Test(arguments: [
    IGSMConfig(maxOps: 4, modulus: 7),
    IGSMConfig(maxOps: 4, modulus: 11, render: .symbolic, stepSymbols: .ordered),
    IGSMConfig(maxOps: 4, render: .symbolic),
    IGSMConfig(maxOps: 4, modulus: 5, stepSymbols: .ordered, split: .none),
    IGSMConfig(maxOps: 4, modulus: 7, render: .compact, stepSymbols: .ordered),
])
func igsmKnobsKeepAnswersOpsAndSolutionsRight(_ config: IGSMConfig) throws {
    let t = try IGSMTask(config: config)
    let vocabulary = Set(t.vocabulary + ["<bos>", "<eos>"])
    let symbolic = config.render != .text
    for ops in 1...(config.maxOps + 4) {
        for index in 0..<8 {
            let p = try t.problem(seed: 3, index: index, ops: ops, split: index % 2 == 0 ? .train : .test)
            let read = try #require(
                evaluateIndependently(p, modulus: config.modulus, render: config.render),
                "\(p.question.joined(separator: " "))")
            #expect(read.value == p.answer && read.ops == ops)
            #expect(p.answer < config.modulus)
            #expect((p.prompt + p.solution).allSatisfy(vocabulary.contains))
            #expect(p.prompt.count + p.solution.count <= t.maxDocumentLength)
            let check = t.check(p, candidate: p.solution)
            #expect(check.validSolution, "\(check.reason ?? "") in \(p.solution.joined(separator: " "))")
            // A wrong final answer is caught at the answer step.
            var wrong = p.solution
            wrong[wrong.count - 2] = String((p.answer + 1) % config.modulus)
            #expect(!t.check(p, candidate: wrong).validSolution)
            if config.stepSymbols == .ordered {
                // Symbols appear in solution order: a, b, c, ...
                var seen: [String] = []
                for (i, w) in p.solution.enumerated()
                where IGSMWords.symbols.contains(w) && i + 1 < p.solution.count
                    && (p.solution[i - 1] == "as" || (p.solution[i + 1] == "=" && p.solution[i - 1] != "so"))
                    && !seen.contains(w)
                {
                    seen.append(w)
                }
                #expect(seen == Array(IGSMWords.symbols.prefix(seen.count)) && seen.count == ops, "\(seen)")
            }
            if symbolic {
                // "Define Y X as s ;": the item, then its owner one level up.
                let item = try #require(levelOf[p.solution[1]]), owner = try #require(levelOf[p.solution[2]])
                #expect(p.solution[0] == "Define" && owner == item - 1)
                #expect(p.question.contains("=") == (config.render == .symbolic))
                if config.render == .symbolic { #expect(p.solution[3] == "as") }
            }
            if config.render == .compact {
                // "Define Y X <rhs> as s ;": the words after the name are those after it in the question.
                let at = try #require(
                    p.question.indices.first { i in
                        i + 1 < p.question.count && p.question[i] == p.solution[1] && p.question[i + 1] == p.solution[2]
                            && (i == 2 || p.question[i - 1] == ";")
                    })
                let end = try #require(p.question[at...].firstIndex(of: ";")),
                    asAt = try #require(p.solution.firstIndex(of: "as"))
                #expect(Array(p.solution[3..<asAt]) == Array(p.question[(at + 2)..<end]))
                // A copy with the wrong constant or operand is the first step's error.
                var wrongCopy = p.solution
                wrongCopy[3] = wrongCopy[3] == "1" ? "2" : "1"
                let c = t.check(p, candidate: wrongCopy)
                #expect(c.firstInvalidStep == 0 && (c.reason ?? "").contains("is copied as"), "\(c)")
            }
        }
    }
}

/// The symbolic rendering of the same problem is about half as long as the text one.
@Test func igsmSymbolicRenderingHalvesTheQuestion() throws {
    let text = try IGSMTask(config: IGSMConfig(maxOps: 6))
    let symbolic = try IGSMTask(config: IGSMConfig(maxOps: 6, render: .symbolic))
    var a = 0, b = 0
    for i in 0..<100 {
        let p = try text.problem(seed: 1, index: i, ops: 6, split: .test),
            q = try symbolic.problem(seed: 1, index: i, ops: 6, split: .test)
        #expect(p.answer == q.answer && p.parameters.count == q.parameters.count)
        a += p.question.count
        b += q.question.count
    }
    #expect(Double(b) / Double(a) < 0.6 && Double(b) / Double(a) > 0.35, "\(b) vs \(a)")
}

/// The template split no longer leaves whole kinds of problem on one side: every solution
/// skeleton at 1 and 2 operations that test problems show often, training shows too.
@Test func igsmEverySmallSkeletonOccursInBothSplits() throws {
    let t = try IGSMTask(config: IGSMConfig(maxOps: 2, maxEdges: 8))
    func solutionSkeleton(_ p: IGSMProblem) -> String {
        p.solution.map { levelOf[$0] != nil ? "N" : Int($0) != nil ? "#" : IGSMWords.symbols.contains($0) ? "s" : $0 }
            .joined(separator: " ")
    }
    for ops in 1...2 {
        var train: [String: Int] = [:], test: [String: Int] = [:]
        for i in 0..<600 {
            train[solutionSkeleton(try t.problem(seed: 9, index: i, ops: ops, split: .train)), default: 0] += 1
            test[solutionSkeleton(try t.problem(seed: 9, index: i, ops: ops, split: .test)), default: 0] += 1
        }
        for (skeleton, n) in test where n >= 6 {
            #expect(
                train[skeleton, default: 0] >= 3,
                "op \(ops): \(skeleton) \(n) in test, \(train[skeleton, default: 0]) in train")
        }
        for (skeleton, n) in train where n >= 6 {
            #expect(
                test[skeleton, default: 0] >= 3,
                "op \(ops): \(skeleton) \(n) in train, \(test[skeleton, default: 0]) in test")
        }
        // The largest test skeleton is at most about its share in training (no single skeleton dominates test alone).
        let top = test.max { $0.value < $1.value }!
        #expect(Double(top.value) / 600 < 2 * Double(train[top.key, default: 0]) / 600 + 0.05, "\(top)")
    }
}

@Test func igsmWithoutSplitDrawsEveryTemplateOnBothSides() throws {
    let t = try IGSMTask(config: IGSMConfig(maxOps: 3, split: .none))
    var trainHashes = Set<Int>(), testHashes = Set<Int>()
    for i in 0..<200 {
        trainHashes.insert(try t.problem(seed: 1, index: i, ops: 3, split: .train).templateHash)
        testHashes.insert(try t.problem(seed: 1, index: i, ops: 3, split: .test).templateHash)
    }
    #expect(trainHashes.contains { $0 >= 17 } && testHashes.contains { $0 < 17 })
}

@Test func igsmCurriculumRaisesTheOpRangeOverDocuments() throws {
    var c = IGSMConfig(maxOps: 6)
    c.curriculum = IGSMConfig.Curriculum(fromMaxOps: 1, documents: 1000)
    let t = try IGSMTask(config: c)
    #expect(
        c.maxOps(atDocument: 0) == 1 && c.maxOps(atDocument: 500) == 3 && c.maxOps(atDocument: 1000) == 6
            && c.maxOps(atDocument: 5000) == 6)
    for i in stride(from: 0, to: 1400, by: 7) {
        let p = try t.trainingProblem(seed: 2, index: i)
        #expect(p.ops <= c.maxOps(atDocument: i))
    }
    #expect((try t.trainingProblem(seed: 2, index: 3)).ops == 1)
    let late = try (1200..<1400).map { try t.trainingProblem(seed: 2, index: $0).ops }
    #expect(late.max() == 6)
    c.curriculum = IGSMConfig.Curriculum(fromMaxOps: 7, documents: 10)
    #expect(throws: IGSMConfigError(message: "igsm: curriculum.fromMaxOps 7 is outside 1...maxOps (6)")) {
        try c.validate()
    }
    var m = IGSMConfig()
    m.modulus = 24
    #expect(throws: IGSMConfigError(message: "igsm: modulus 24 is outside 2...23")) { try m.validate() }
}
