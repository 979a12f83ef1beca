// IGSMSolution.swift: rendering an iGSM-lite problem's text and solution, and checking a
// candidate solution step by step against the problem's dependency graph.
//
// Solution format (detail level 0): for each necessary parameter, in topological order,
//   Define X 's Y as s ; [t = a + b = 3 + 4 = 7 ;]* so s = <expr> = <values> = <result> .
// ("Define Y X as s ;" symbolic, "Define Y X <right-hand side> as s ;" compact)
// with one binary operation per clause (a parameter of op cost k has k clauses), then
//   Answer : v <eos>
//
// Checking (IGSMChecker). The steps are the Define sentences in order, followed by the answer
// line as one last step; `firstInvalidStep` is the index of the first step that fails, so a
// solution is valid exactly when no step fails. A Define step passes when
//  - it names a parameter of this problem not defined before, with a symbol not used before;
//  - each clause is `t = E = V [= r]` with E a literal, a symbol, or `x op y`; V substitutes the
//    current values (symbols must be parameters defined earlier or this step's intermediates);
//    r is the result mod the modulus (23 unless set); intermediates end with ";", the last clause "so s = ..." with ".";
//  - the expression the clauses build, up to commutativity and regrouping of + and ×, is the
//    parameter's definition (so the right parents, operations and constants are used; a value
//    that is right by coincidence is not enough).
// Any order of definitions is accepted as long as each step only uses parameters defined
// before it (a topological order), and defining distractors correctly is allowed. The answer
// step passes when it reads "Answer : n" (then <eos> or the end), the query has been defined,
// and n is its value. Words after the first <eos> are ignored; `answer` is the number of the
// last "Answer : n" before it.

/// The result of checking a candidate solution.
public struct IGSMCheck: Equatable, Sendable {
    /// The number in the last "Answer : n" of the candidate (before any <eos>), nil if none.
    public let answer: Int?
    public let answerCorrect: Bool
    /// Steps examined: the Define steps up to and including the first failing one (the answer
    /// line counts as the last step).
    public let stepsChecked: Int
    /// 0-based index of the first failing step (Define steps, then the answer line); nil if valid.
    public let firstInvalidStep: Int?
    public let validSolution: Bool
    /// Why the solution is invalid (nil when valid).
    public let reason: String?
}

extension IGSMForm {
    /// The value of this form for constant `c` and operand values `v` (mod `modulus`).
    func evaluate(constant c: Int, operands v: [Int], modulus: Int) -> Int {
        let r: Int
        switch self {
        case .constant: r = c
        case .copy: r = v[0]
        case .plusConst: r = c + v[0]
        case .timesConst: r = c * v[0]
        case .add, .sum3, .sum4: r = v.reduce(0, +)
        case .sub: r = v[0] - v[1]
        case .constPlusSum: r = c + v[0] + v[1]
        case .constPlusDiff: r = c + v[0] - v[1]
        case .constTimesSum: r = c * (v[0] + v[1])
        }
        return ((r % modulus) + modulus) % modulus
    }
}

// MARK: rendering

extension IGSMGraph {
    /// Draws names, constants and symbols for the accepted graph and renders the problem.
    func render(config: IGSMConfig, rng: inout TaskRNG) -> IGSMProblem {
        let p = config.modulus, symbolic = config.render != .text
        let hierarchy = IGSMWords.hierarchies[rng.int(IGSMWords.hierarchies.count)]
        var names: [[String]] = []
        for l in 0..<levels {
            var pool = hierarchy[l]
            for k in 0..<widths[l] { pool.swapAt(k, k + rng.int(pool.count - k)) }
            names.append(Array(pool.prefix(widths[l])))
        }
        var params: [IGSMParameter] = []
        params.reserveCapacity(count)
        for i in 0..<count {
            let f = forms[i]
            let ps = Array(parentsOf(i))
            let c = f == .constant ? rng.int(p) : (f.hasConstant ? rng.int(in: 1...(p - 1)) : 0)
            let v = f.evaluate(constant: c, operands: ps.map { params[$0].value }, modulus: p)
            params.append(
                IGSMParameter(
                    owner: names[edgeLevel[i]][edgeOwner[i]], item: names[edgeLevel[i] + 1][edgeItem[i]],
                    form: f, parents: ps, constant: c, value: v))
        }

        // Problem text: shuffled sentences, then the question.
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, rng.int(i + 1)) }
        var question = ["Question", ":"]
        for i in order {
            if symbolic {
                IGSMText.appendSymbolicSentence(params[i], params, equals: config.render == .symbolic, to: &question)
            } else {
                IGSMText.appendSentence(params[i], params, to: &question)
            }
        }
        let q = params[query]
        question +=
            symbolic ? ["How", "many", q.item, q.owner, "?"] : ["How", "many", q.item, "does", q.owner, "have", "?"]

        // Symbols: one distinct letter per clause (= per operation), random or in order.
        var letters = Array(0..<IGSMWords.symbols.count)
        if config.stepSymbols == .random {
            for k in 0..<ops { letters.swapAt(k, k + rng.int(letters.count - k)) }
        }
        var nextLetter = 0
        var symbolOf = [String](repeating: "", count: count)
        var solution: [String] = []
        var m = necessary
        while m != 0 {
            let j = m.trailingZeroBitCount
            m &= m - 1
            var clauseSymbols: [String] = []
            for _ in 0..<forms[j].cost {
                clauseSymbols.append(IGSMWords.symbols[letters[nextLetter]])
                nextLetter += 1
            }
            symbolOf[j] = clauseSymbols[0]
            IGSMText.appendStep(
                params[j], symbols: clauseSymbols, symbolOf: symbolOf, params: params, render: config.render,
                modulus: p, to: &solution)
        }
        solution += ["Answer", ":", IGSMWords.numbers[q.value], "<eos>"]
        return IGSMProblem(
            ops: ops, question: question, solution: solution, answer: q.value,
            templateHash: templateHash, modulus: p, render: config.render, parameters: params, query: query)
    }
}

enum IGSMText {
    static func appendName(_ p: IGSMParameter, to w: inout [String]) {
        w += ["each", p.owner, "'s", p.item]
    }

    /// "The number of each X 's Y equals <rhs> ."
    static func appendSentence(_ p: IGSMParameter, _ all: [IGSMParameter], to w: inout [String]) {
        w += ["The", "number", "of"]
        appendName(p, to: &w)
        w.append("equals")
        let ops = p.parents.map { all[$0] }
        let c = IGSMWords.numbers[p.constant]
        switch p.form {
        case .constant: w.append(c)
        case .copy: appendName(ops[0], to: &w)
        case .plusConst: w += [c, "more", "than"]; appendName(ops[0], to: &w)
        case .timesConst: w += [c, "times", "as", "much", "as"]; appendName(ops[0], to: &w)
        case .add, .sum3, .sum4, .sub, .constPlusSum, .constPlusDiff, .constTimesSum:
            switch p.form {
            case .constPlusSum, .constPlusDiff: w += [c, "more", "than"]
            case .constTimesSum: w += [c, "times", "as", "much", "as"]
            default: break
            }
            w += ["the", p.form == .sub || p.form == .constPlusDiff ? "difference" : "sum", "of"]
            for (k, o) in ops.enumerated() {
                if k > 0 { w.append(k == ops.count - 1 ? "and" : ",") }
                appendName(o, to: &w)
            }
        }
        w.append(".")
    }

    /// "Y X = <rhs> ;": "Lion Aviary = 3 * Zebra Paddock ;", "c + ( A + B )" for the forms with a
    /// constant and a parenthesised pair; without `equals`, "Lion Aviary 3 * Zebra Paddock ;".
    static func appendSymbolicSentence(
        _ p: IGSMParameter, _ all: [IGSMParameter], equals: Bool = true, to w: inout [String]
    ) {
        w += [p.item, p.owner] + (equals ? ["="] : [])
        w += symbolicRightHandSide(p, all)
        w.append(";")
    }

    /// The right-hand side of a symbolic sentence: "3 * Zebra Paddock", "c + ( A + B )".
    static func symbolicRightHandSide(_ p: IGSMParameter, _ all: [IGSMParameter]) -> [String] {
        var w: [String] = []
        let ops = p.parents.map { [all[$0].item, all[$0].owner] }
        let c = IGSMWords.numbers[p.constant]
        switch p.form {
        case .constant: w.append(c)
        case .copy: w += ops[0]
        case .plusConst: w += [c, "+"] + ops[0]
        case .timesConst: w += [c, "*"] + ops[0]
        case .add, .sum3, .sum4: w += ops.dropFirst().reduce(ops[0]) { $0 + ["+"] + $1 }
        case .sub: w += ops[0] + ["-"] + ops[1]
        case .constPlusSum: w += [c, "+", "("] + ops[0] + ["+"] + ops[1] + [")"]
        case .constPlusDiff: w += [c, "+", "("] + ops[0] + ["-"] + ops[1] + [")"]
        case .constTimesSum: w += [c, "*", "("] + ops[0] + ["+"] + ops[1] + [")"]
        }
        return w
    }

    /// `[so] t = l op r = lv op rv = result (; | .)`; returns the result.
    @discardableResult
    static func appendClause(
        _ t: String, _ l: (String, Int), _ op: String, _ r: (String, Int), final: Bool, modulus: Int,
        to w: inout [String]
    ) -> Int {
        let v = apply(op, l.1, r.1, modulus: modulus)
        if final { w.append("so") }
        w += [t, "=", l.0, op, r.0, "=", IGSMWords.numbers[l.1], op, IGSMWords.numbers[r.1], "=", IGSMWords.numbers[v]]
        w.append(final ? "." : ";")
        return v
    }

    static func apply(_ op: String, _ a: Int, _ b: Int, modulus: Int) -> Int {
        let r: Int
        switch op {
        case "+": r = a + b
        case "-": r = a - b
        default: r = a * b
        }
        return ((r % modulus) + modulus) % modulus
    }

    /// One Define step; `symbols[0]` names the parameter, the rest its intermediates.
    static func appendStep(
        _ p: IGSMParameter, symbols: [String], symbolOf: [String], params: [IGSMParameter],
        render: IGSMConfig.Render = .text, modulus: Int = 23, to w: inout [String]
    ) {
        let s = symbols[0]
        switch render {
        case .text: w += ["Define", p.owner, "'s", p.item, "as", s, ";"]
        case .symbolic: w += ["Define", p.item, p.owner, "as", s, ";"]
        case .compact: w += ["Define", p.item, p.owner] + symbolicRightHandSide(p, params) + ["as", s, ";"]
        }
        func appendClause(
            _ t: String, _ l: (String, Int), _ op: String, _ r: (String, Int), final: Bool,
            to w: inout [String]
        ) -> Int {
            IGSMText.appendClause(t, l, op, r, final: final, modulus: modulus, to: &w)
        }
        let o = p.parents.map { (symbolOf[$0], params[$0].value) }
        let c = (IGSMWords.numbers[p.constant], p.constant)
        switch p.form {
        case .constant: w += ["so", s, "=", c.0, "."]
        case .copy: w += ["so", s, "=", o[0].0, "=", IGSMWords.numbers[o[0].1], "."]
        case .plusConst: _ = appendClause(s, c, "+", o[0], final: true, to: &w)
        case .timesConst: _ = appendClause(s, c, "*", o[0], final: true, to: &w)
        case .add: _ = appendClause(s, o[0], "+", o[1], final: true, to: &w)
        case .sub: _ = appendClause(s, o[0], "-", o[1], final: true, to: &w)
        case .sum3, .sum4:
            var acc = o[0]
            for k in 1..<(o.count - 1) {
                let t = symbols[k]
                acc = (t, appendClause(t, acc, "+", o[k], final: false, to: &w))
            }
            _ = appendClause(s, acc, "+", o[o.count - 1], final: true, to: &w)
        case .constPlusSum, .constPlusDiff, .constTimesSum:
            let t = symbols[1]
            let inner = appendClause(t, o[0], p.form == .constPlusDiff ? "-" : "+", o[1], final: false, to: &w)
            _ = appendClause(s, c, p.form == .constTimesSum ? "*" : "+", (t, inner), final: true, to: &w)
        }
    }
}

// MARK: checking

/// An expression over parameters and constants, normalised so that + and × are flat and
/// unordered (children sorted by their canonical text).
indirect enum IGSMExpr {
    case const(Int), param(Int), sum([IGSMExpr]), diff(IGSMExpr, IGSMExpr), product([IGSMExpr])

    static func combine(_ op: String, _ a: IGSMExpr, _ b: IGSMExpr) -> IGSMExpr {
        switch op {
        case "+": return .sum(a.terms(ofSum: true) + b.terms(ofSum: true))
        case "*": return .product(a.terms(ofSum: false) + b.terms(ofSum: false))
        default: return .diff(a, b)
        }
    }

    private func terms(ofSum: Bool) -> [IGSMExpr] {
        switch self {
        case .sum(let t) where ofSum: return t
        case .product(let t) where !ofSum: return t
        default: return [self]
        }
    }

    var canonical: String {
        switch self {
        case .const(let c): return "c\(c)"
        case .param(let p): return "p\(p)"
        case .sum(let t): return "(+ " + t.map(\.canonical).sorted().joined(separator: " ") + ")"
        case .product(let t): return "(* " + t.map(\.canonical).sorted().joined(separator: " ") + ")"
        case .diff(let a, let b): return "(- " + a.canonical + " " + b.canonical + ")"
        }
    }

    /// The definition of parameter `p` as an expression.
    static func definition(_ p: IGSMParameter) -> IGSMExpr {
        let o = p.parents.map { IGSMExpr.param($0) }
        let c = IGSMExpr.const(p.constant)
        switch p.form {
        case .constant: return c
        case .copy: return o[0]
        case .plusConst: return combine("+", c, o[0])
        case .timesConst: return combine("*", c, o[0])
        case .add, .sum3, .sum4: return o.dropFirst().reduce(o[0]) { combine("+", $0, $1) }
        case .sub: return combine("-", o[0], o[1])
        case .constPlusSum: return combine("+", c, combine("+", o[0], o[1]))
        case .constPlusDiff: return combine("+", c, combine("-", o[0], o[1]))
        case .constTimesSum: return combine("*", c, combine("+", o[0], o[1]))
        }
    }
}

enum IGSMChecker {
    static let numberValue: [String: Int] = Dictionary(
        uniqueKeysWithValues: IGSMWords.numbers.enumerated().map { ($1, $0) })
    static let symbolSet = Set(IGSMWords.symbols)

    struct Failure: Error { let reason: String }

    static func check(_ problem: IGSMProblem, candidate: [String]) -> IGSMCheck {
        let words = Array(candidate.prefix { $0 != "<eos>" })
        let answer = lastAnswer(words)
        let answerCorrect = answer == problem.answer
        var state = State(problem: problem)
        var pos = 0, step = 0
        func result(_ failure: String?) -> IGSMCheck {
            IGSMCheck(
                answer: answer, answerCorrect: answerCorrect, stepsChecked: step + 1,
                firstInvalidStep: failure == nil ? nil : step, validSolution: failure == nil, reason: failure)
        }
        do {
            while pos < words.count, words[pos] == "Define" {
                try state.defineStep(words, &pos)
                step += 1
            }
            guard pos < words.count else { throw Failure(reason: "the solution ends before its answer") }
            guard words[pos] == "Answer" else {
                throw Failure(reason: "expected Define or Answer, found \"\(words[pos])\"")
            }
            guard pos + 2 < words.count, words[pos + 1] == ":", let n = numberValue[words[pos + 2]] else {
                throw Failure(reason: "malformed answer line")
            }
            guard pos + 3 == words.count else { throw Failure(reason: "words after the answer") }
            let q = problem.parameters[problem.query]
            guard state.defined.contains(problem.query) else {
                throw Failure(reason: "answer given before the query each \(q.owner) 's \(q.item) is defined")
            }
            guard n == q.value else { throw Failure(reason: "answer \(n), but the query's value is \(q.value)") }
            return result(nil)
        } catch let f as Failure {
            return result(f.reason)
        } catch {
            return result("\(error)")
        }
    }

    /// The number of the last "Answer : n" in `words`.
    static func lastAnswer(_ words: [String]) -> Int? {
        var i = words.count - 3
        while i >= 0 {
            if words[i] == "Answer", words[i + 1] == ":", let n = numberValue[words[i + 2]] { return n }
            i -= 1
        }
        return nil
    }

    struct State {
        let problem: IGSMProblem
        var defined = Set<Int>()
        var paramOfSymbol: [String: Int] = [:]
        var used = Set<String>()

        /// Parses and verifies one "Define ... ." step starting at `pos` (which it advances).
        mutating func defineStep(_ w: [String], _ pos: inout Int) throws {
            // "Define X 's Y as s ;" (text), "Define Y X as s ;" (symbolic) or "Define Y X <rhs>
            // as s ;" (compact, the right-hand side copied from the question).
            let text = problem.render == .text
            var copied: [String] = []
            if problem.render == .compact, pos + 3 < w.count, let as_ = w[(pos + 3)...].firstIndex(of: "as") {
                copied = Array(w[(pos + 3)..<as_])
            }
            let header = (text ? 7 : 6) + copied.count
            guard pos + header - 1 < w.count else { throw Failure(reason: "truncated Define") }
            if text {
                guard w[pos + 2] == "'s", w[pos + 4] == "as", w[pos + 6] == ";" else {
                    throw Failure(reason: "malformed Define")
                }
            } else {
                guard w[pos + header - 3] == "as", w[pos + header - 1] == ";" else {
                    throw Failure(reason: "malformed Define")
                }
            }
            let owner = text ? w[pos + 1] : w[pos + 2], item = text ? w[pos + 3] : w[pos + 1], s = w[pos + header - 2]
            guard let index = problem.parameters.firstIndex(where: { $0.owner == owner && $0.item == item }) else {
                throw Failure(reason: "no parameter each \(owner) 's \(item) in this problem")
            }
            if problem.render == .compact {
                let right = IGSMText.symbolicRightHandSide(problem.parameters[index], problem.parameters)
                guard copied == right else {
                    throw Failure(
                        reason:
                            "the statement of \(item) \(owner) is copied as \"\(copied.joined(separator: " "))\", not \"\(right.joined(separator: " "))\""
                    )
                }
            }
            guard !defined.contains(index) else { throw Failure(reason: "each \(owner) 's \(item) is defined twice") }
            try claim(s)
            pos += header
            var local: [String: (value: Int, expr: IGSMExpr)] = [:]
            while true {
                guard let end = w[pos...].firstIndex(where: { $0 == ";" || $0 == "." }) else {
                    throw Failure(reason: "truncated step")
                }
                let final = w[pos] == "so"
                let clause = Array(w[(final ? pos + 1 : pos)..<end])
                let terminator = w[end]
                pos = end + 1
                guard clause.count >= 3, clause[1] == "=" else { throw Failure(reason: "malformed clause") }
                let t = clause[0]
                let (value, expr) = try evaluate(Array(clause[2...]), local)
                if final {
                    guard t == s, terminator == "." else {
                        throw Failure(reason: "the last clause must be \"so \(s) = ... .\"")
                    }
                    let param = problem.parameters[index]
                    guard expr.canonical == IGSMExpr.definition(param).canonical else {
                        throw Failure(
                            reason: "the computation of \(s) does not follow the definition of each \(owner) 's \(item)"
                        )
                    }
                    guard value == param.value else { throw Failure(reason: "\(s) is \(param.value), not \(value)") }
                    defined.insert(index)
                    paramOfSymbol[s] = index
                    return
                }
                guard terminator == ";" else { throw Failure(reason: "an intermediate clause must end with \";\"") }
                try claim(t)
                local[t] = (value, expr)
            }
        }

        private mutating func claim(_ s: String) throws {
            guard IGSMChecker.symbolSet.contains(s) else { throw Failure(reason: "\"\(s)\" is not a symbol") }
            guard used.insert(s).inserted else { throw Failure(reason: "symbol \(s) is used twice") }
        }

        /// `E = V [= r]` → the value and expression; checks substitutions and arithmetic.
        private func evaluate(_ rhs: [String], _ local: [String: (value: Int, expr: IGSMExpr)]) throws -> (
            Int, IGSMExpr
        ) {
            let parts = rhs.split(separator: "=", omittingEmptySubsequences: false).map(Array.init)
            func operand(_ x: String) throws -> (Int, IGSMExpr) {
                if let n = IGSMChecker.numberValue[x] { return (n, .const(n)) }
                if let l = local[x] { return l }
                if let p = paramOfSymbol[x] { return (problem.parameters[p].value, .param(p)) }
                throw Failure(
                    reason: IGSMChecker.symbolSet.contains(x) ? "symbol \(x) is not defined" : "unexpected \"\(x)\"")
            }
            func number(_ x: String) throws -> Int {
                guard let n = IGSMChecker.numberValue[x] else {
                    throw Failure(reason: "expected a number, found \"\(x)\"")
                }
                return n
            }
            switch parts.count {
            case 1:  // t = c
                guard parts[0].count == 1, let n = IGSMChecker.numberValue[parts[0][0]] else {
                    throw Failure(reason: "malformed clause")
                }
                return (n, .const(n))
            case 2:  // t = a = v
                guard parts[0].count == 1, parts[1].count == 1, IGSMChecker.numberValue[parts[0][0]] == nil else {
                    throw Failure(reason: "malformed clause")
                }
                let (v, e) = try operand(parts[0][0])
                let claimed = try number(parts[1][0])
                guard claimed == v else { throw Failure(reason: "\(parts[0][0]) is \(v), not \(claimed)") }
                return (v, e)
            case 3:  // t = a op b = va op vb = r
                let e = parts[0], n = parts[1]
                guard e.count == 3, n.count == 3, parts[2].count == 1, ["+", "-", "*"].contains(e[1]), n[1] == e[1]
                else {
                    throw Failure(reason: "malformed clause")
                }
                let (a, ea) = try operand(e[0]), (b, eb) = try operand(e[2])
                let na = try number(n[0]), nb = try number(n[2]), r = try number(parts[2][0])
                guard na == a else { throw Failure(reason: "\(e[0]) is \(a), not \(na)") }
                guard nb == b else { throw Failure(reason: "\(e[2]) is \(b), not \(nb)") }
                let v = IGSMText.apply(e[1], a, b, modulus: problem.modulus)
                guard r == v else { throw Failure(reason: "\(a) \(e[1]) \(b) = \(v), not \(r)") }
                return (v, IGSMExpr.combine(e[1], ea, eb))
            default:
                throw Failure(reason: "malformed clause")
            }
        }
    }
}
