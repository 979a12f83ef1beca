// StepLabelsTests.swift: a process reward model's step labels (StepLabels.swift) on hand-built
// candidates of one k = 3 trace problem: right, wrong at a step, right steps with a wrong answer,
// stopped early; oracle, orm, and mc_soft / mc_hard with hand-written rollouts.

import Testing
import VLDTasks

private func problem() throws -> ChainProblem {
    let task = try ChainTask(config: ChainConfig(format: .cot, modulus: 7, maxK: 3, statements: 5))
    return try task.problem(seed: 4, index: 0, k: 3, split: .test)
}

/// Steps joined with separators, then "answer a <eos>".
private func written(_ steps: [[String]], answer: Int) -> [String] {
    steps.flatMap { $0 + ["|"] } + ["answer", String(answer), "<eos>"]
}

private func bump(_ w: String) -> String { String((Int(w)! + 1) % 7) }

@Test func oracleAndOutcomeLabelsOfHandBuiltCandidates() throws {
    let p = try problem()
    let steps = p.steps
    #expect(steps.count == 5)
    var cost = StepLabeling()
    // The right solution: every step and the end labelled 1; 5 separators and the <eos>.
    let right = written(steps, answer: p.answer)
    let r = p.label(right, kind: .oracle, cost: &cost)
    #expect(r.positions == ChainProblem.scoredPositions(right) && r.positions.count == 6)
    #expect(r.positions.dropLast().allSatisfy { right[$0] == "|" } && right[r.positions.last!] == "<eos>")
    #expect(r.labels == [1, 1, 1, 1, 1, 1])
    // A wrong result at step 3: steps 0-2 right, then 0 from step 3 on, whatever follows.
    var wrong = steps
    wrong[3][5] = bump(wrong[3][5])
    #expect(p.label(written(wrong, answer: p.answer), kind: .oracle, cost: &cost).labels == [1, 1, 1, 0, 0, 0])
    // Right steps, wrong answer: the steps keep their 1s, the end is 0; the ORM sees only the end.
    let badAnswer = written(steps, answer: (p.answer + 1) % 7)
    #expect(p.label(badAnswer, kind: .oracle, cost: &cost).labels == [1, 1, 1, 1, 1, 0])
    let orm = p.label(badAnswer, kind: .orm, cost: &cost)
    #expect(orm.labels == [0] && orm.positions == [badAnswer.count - 1])
    #expect(p.label(right, kind: .orm, cost: &cost).labels == [1])
    // Stopped after two steps (no answer, no <eos>): two separators and the last word.
    let stopped = Array(steps[0] + ["|"] + steps[1] + ["|"] + ["b"])
    let s = p.label(stopped, kind: .oracle, cost: &cost)
    #expect(s.positions == [steps[0].count, steps[0].count + steps[1].count + 1, stopped.count - 1])
    #expect(s.labels == [1, 1, 0])
    // Words after <eos> are not part of the candidate.
    #expect(p.label(right + ["|", "x"], kind: .oracle, cost: &cost) == r)
    // Neither needed a rollout.
    #expect(cost == StepLabeling())
}

@Test func monteCarloLabelsCountTheRolloutsThatReachTheGoldAnswer() throws {
    let p = try problem()
    let steps = p.steps
    let candidate = written(steps, answer: p.answer)
    var asked: [[String]] = []
    // The policy's continuations: from the prefix through separator i, R = 4 rollouts of which
    // i + 1 finish the right solution (capped at 4) and the rest answer wrongly.
    func rollout(_ prefix: [String], _ R: Int) -> [[String]] {
        asked.append(prefix)
        let done = prefix.filter { $0 == "|" }.count
        let rest = Array(written(steps, answer: p.answer).dropFirst(prefix.count))
        let wrongEnd = Array(rest.dropLast(2)) + [String((p.answer + 3) % 7), "<eos>"]
        return (0..<R).map { $0 < min(done, R) ? rest : wrongEnd }
    }
    var cost = StepLabeling()
    let soft = p.label(candidate, kind: .mcSoft, rollouts: 4, cost: &cost, rollout: rollout)
    #expect(soft.labels == [0.25, 0.5, 0.75, 1, 1, 1])
    #expect(asked.count == 5 && asked.allSatisfy { $0.last == "|" })
    #expect(asked[2] == Array(candidate[...soft.positions[2]]))
    #expect(cost.rollouts == 20)
    let generated = asked.reduce(0) { $0 + 4 * (candidate.count - $1.count) }
    #expect(cost.generatedWords == generated)
    // mc_hard: any rollout reaching the answer; a policy that never does gives 0s but the end.
    let hard = p.label(candidate, kind: .mcHard, rollouts: 4, cost: &cost) { prefix, R in
        Array(repeating: ["answer", String((p.answer + 1) % 7), "<eos>"], count: R)
    }
    #expect(hard.labels == [0, 0, 0, 0, 0, 1])
    #expect(p.label(candidate, kind: .mcHard, rollouts: 4, cost: &cost, rollout: rollout).labels == [1, 1, 1, 1, 1, 1])
}
