// StepLabels.swift: the targets a process reward model (PRM) learns, one per step of a candidate
// chain `cot` solution (specs/tts.md 8.6).
//
// A candidate is the words a policy wrote after the prompt. Its scored positions are each step
// separator "|" and the last word it wrote (`<eos>`, or wherever it stopped): the PRM's value head
// is read there. Labels, per scored position i (steps 0..i written):
//
//   oracle   1 iff steps 0..i are all right (ChainChecker); after the first wrong step every label
//            is 0 (Lightman et al. 2023's first-error rule). The last position: 1 iff the whole
//            solution is valid (every step right and the right answer).
//   mc_soft  the fraction of R policy rollouts from the prefix through position i that reach the
//            gold answer (Snell et al. 2024; Math-Shepherd's soft estimate). The last position: 1
//            iff the candidate's own answer is right.
//   mc_hard  1 iff any of those rollouts reaches it (Math-Shepherd's hard estimate).
//   orm      only the last position, labelled with the answer's correctness (an outcome reward
//            model; TRL's train_on_last_step_only).
//
// Rollouts come from a closure, so the labels are a pure function of the candidate and what the
// policy wrote; `StepLabeling` counts the rollouts and the words they generated, whose FLOPs the
// study's compute account must include.

/// How a candidate's steps are labelled.
public enum StepLabelKind: String, Sendable, CaseIterable {
    case oracle
    case mcSoft = "mc_soft"
    case mcHard = "mc_hard"
    case orm
}

/// One candidate with its PRM targets.
public struct LabeledSolution: Equatable, Sendable {
    /// The candidate's words (after the prompt).
    public var words: [String]
    /// Indices into `words` where the value head is read, in order.
    public var positions: [Int]
    /// One target in [0, 1] per position.
    public var labels: [Double]
    /// The checker's verdict on the whole candidate.
    public var check: ChainCheck

    public init(words: [String], positions: [Int], labels: [Double], check: ChainCheck) {
        self.words = words
        self.positions = positions
        self.labels = labels
        self.check = check
    }
}

/// What labelling cost: policy rollouts and the words they generated.
public struct StepLabeling: Equatable, Sendable {
    public var rollouts = 0
    public var generatedWords = 0
    public init() {}
}

extension ChainProblem {
    /// The positions a PRM scores in `words` (a candidate after the prompt): every "|" before
    /// `<eos>`, and the last word (the `<eos>` itself when there is one).
    public static func scoredPositions(_ words: [String]) -> [Int] {
        let end = words.firstIndex(of: "<eos>") ?? (words.count - 1)
        guard end >= 0 else { return [] }
        var out = (0..<end).filter { words[$0] == "|" }
        out.append(end)
        return out
    }

    /// Labels `words` (a candidate after the prompt) by oracle or orm, which need no rollouts
    /// (mc_soft and mc_hard without a policy label every step 0).
    public func label(_ words: [String], kind: StepLabelKind, cost: inout StepLabeling) -> LabeledSolution {
        label(words, kind: kind, rollouts: 0, cost: &cost) { _, _ in [] }
    }

    /// Labels `words` (a candidate after the prompt) by `kind`. `rollout(prefix, R)` returns R
    /// continuations of the candidate's first words (the prefix ends with a "|"), each a list of
    /// words; only mc_soft and mc_hard call it.
    public func label(
        _ words: [String], kind: StepLabelKind, rollouts R: Int, cost: inout StepLabeling,
        rollout: ([String], Int) throws -> [[String]]
    ) rethrows -> LabeledSolution {
        let end = words.firstIndex(of: "<eos>").map { $0 + 1 } ?? words.count
        let candidate = Array(words[..<end])
        let check = ChainChecker.check(self, candidate: candidate)
        let positions = ChainProblem.scoredPositions(candidate)
        guard let last = positions.last else {
            return LabeledSolution(words: candidate, positions: [], labels: [], check: check)
        }
        var labels: [Double] = []
        switch kind {
        case .orm:
            return LabeledSolution(
                words: candidate, positions: [last], labels: [check.answerCorrect ? 1 : 0], check: check)
        case .oracle:
            for (i, _) in positions.dropLast().enumerated() {
                labels.append(check.firstError.map { i < $0 } ?? true ? 1 : 0)
            }
            labels.append(check.valid ? 1 : 0)
        case .mcSoft, .mcHard:
            for p in positions.dropLast() {
                let prefix = Array(candidate[...p])
                let continuations = try rollout(prefix, R)
                cost.rollouts += continuations.count
                cost.generatedWords += continuations.reduce(0) { $0 + $1.count }
                let reached = continuations.filter {
                    ChainChecker.check(self, candidate: prefix + $0).answerCorrect
                }.count
                if kind == .mcHard {
                    labels.append(reached > 0 ? 1 : 0)
                } else {
                    labels.append(continuations.isEmpty ? 0 : Double(reached) / Double(continuations.count))
                }
            }
            labels.append(check.answerCorrect ? 1 : 0)
        }
        return LabeledSolution(words: candidate, positions: positions, labels: labels, check: check)
    }
}
