// PRMData.swift: the labelled solutions a prm trial learns from (PRMKind.swift): the policy's
// sampled solutions of the training and held-out problems, each step labelled (StepLabels.swift;
// mc labels from rollouts sampled in big batches first, then read back in order), and what the
// sampling cost. Kept in the trial's labels.json for audit and read back on resume.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

/// The labelled solutions of a prm trial (labels.json).
struct PRMData {
    struct Item {
        var problem: Int
        var prompt: [Int32]
        var solution: LabeledSolution
    }
    var train: [Item]
    var heldOut: [Item]
    /// Policy tokens generated (solutions and rollouts) and their FLOPs; rollouts run.
    var generatedTokens: Int
    var flops: Double
    var rollouts: Int
    var seconds: Double

    static let fileName = "labels.json"
}

extension PRMData {
    /// Samples and labels the training and held-out solutions.
    static func label(body: PRMBody, policy: Transformer, task: ChainTask, setup: HookSetup) throws -> PRMData {
        let spec = body.prm
        let start = Date()
        var sampler = PolicySampler(policy: policy, tokenizer: setup.mixture.tokenizer, temperature: spec.temperature)
        var rng = SeededRNG(seed: setup.evaluator.seed &+ 0x9A3B)
        let seed = setup.evaluator.seed
        let trainProblems = try ProblemSet.prmTraining(spec.problems).problems(task: task, seed: seed)
        let heldProblems = try ProblemSet.prmHeldOut(spec.heldOutProblems).problems(task: task, seed: seed)
        setup.log(
            "sampling \(spec.samples) solutions of \(spec.problems) training and \(spec.heldOutProblems) held-out "
                + "problems from the policy (temperature \(formatNumber(spec.temperature, significant: 3)))")
        let trainSolutions = try sampler.solutions(trainProblems, samples: spec.samples, task: task, rng: &rng)
        let heldSolutions = try sampler.solutions(heldProblems, samples: spec.samples, task: task, rng: &rng)
        var cost = StepLabeling()
        // Rollouts for mc labels: every step prefix of every solution, R continuations each,
        // sampled in big batches first; labelling then reads them back in order.
        var continuations: [[String]] = []
        if spec.labels == .mcSoft || spec.labels == .mcHard {
            var prompts: [[String]] = [], maxNew: [Int] = []
            for s in trainSolutions {
                let p = trainProblems[s.problem]
                for pos in ChainProblem.scoredPositions(s.words).dropLast() {
                    let prompt = p.prompt(.cot) + s.words[...pos]
                    for _ in 0..<spec.rollouts {
                        prompts.append(prompt)
                        maxNew.append(max(1, task.maxDocumentLength(k: p.k) - prompt.count + 2))
                    }
                }
            }
            setup.log("rolling out \(prompts.count) continuations (\(spec.rollouts) per step prefix)")
            continuations = try sampler.continue_(prompts, maxNew: maxNew, rng: &rng)
        }
        var next = 0
        var train: [PRMData.Item] = []
        for s in trainSolutions {
            let p = trainProblems[s.problem]
            let labelled = p.label(s.words, kind: spec.labels, rollouts: spec.rollouts, cost: &cost) { _, r in
                defer { next += r }
                return Array(continuations[next..<(next + r)])
            }
            train.append(PRMData.Item(problem: s.problem, prompt: sampler.encode(p.prompt(.cot)), solution: labelled))
        }
        var none = StepLabeling()
        let heldOut = heldSolutions.map { s in
            let p = heldProblems[s.problem]
            return PRMData.Item(
                problem: s.problem, prompt: sampler.encode(p.prompt(.cot)),
                solution: p.label(s.words, kind: .oracle, cost: &none))
        }
        let seconds = Date().timeIntervalSince(start)
        setup.log(
            "labelled \(train.count) solutions (\(spec.labels.rawValue)) in \(formatDuration(seconds)): "
                + "\(sampler.generated) policy tokens, \(cost.rollouts) rollouts")
        return PRMData(
            train: train, heldOut: heldOut, generatedTokens: sampler.generated, flops: sampler.flops,
            rollouts: cost.rollouts, seconds: seconds)
    }

    // MARK: labels.json

    static func json(_ d: PRMData, tokenizer: WordTokenizer) -> JSONValue {
        func items(_ list: [PRMData.Item]) -> JSONValue {
            .array(
                list.map { i in
                    .object([
                        ("problem", JSONValue(i.problem)), ("prompt", .string(tokenizer.decode(i.prompt))),
                        ("solution", .string(i.solution.words.joined(separator: " "))),
                        ("positions", .array(i.solution.positions.map { JSONValue($0) })),
                        ("labels", .array(i.solution.labels.map { JSONValue($0) })),
                        ("steps", JSONValue(i.solution.check.steps)),
                        ("firstError", i.solution.check.firstError.map { JSONValue($0) } ?? .null),
                        ("answerCorrect", .bool(i.solution.check.answerCorrect)),
                    ])
                })
        }
        return .object([
            ("generatedTokens", JSONValue(d.generatedTokens)), ("flops", JSONValue(d.flops)),
            ("rollouts", JSONValue(d.rollouts)), ("seconds", JSONValue(d.seconds)),
            ("train", items(d.train)), ("heldOut", items(d.heldOut)),
        ])
    }

    static func load(_ url: URL, tokenizer: WordTokenizer) throws -> PRMData {
        let j = try JSONValue.parse(Data(contentsOf: url))
        func items(_ v: JSONValue?) throws -> [PRMData.Item] {
            guard case let .array(list)? = v else { throw TrialError("\(url.path): damaged") }
            return try list.map { e in
                guard case let .number(p)? = e["problem"], case let .string(prompt)? = e["prompt"],
                    case let .string(words)? = e["solution"], case let .array(pos)? = e["positions"],
                    case let .array(lab)? = e["labels"], case let .number(steps)? = e["steps"],
                    case let .bool(right)? = e["answerCorrect"]
                else { throw TrialError("\(url.path): damaged") }
                let first: Int? = { if case let .number(f)? = e["firstError"] { return Int(f) } else { return nil } }()
                let positions = pos.compactMap { v -> Int? in
                    if case let .number(n) = v { return Int(n) } else { return nil }
                }
                let labels = lab.compactMap { v -> Double? in
                    if case let .number(n) = v { return n } else { return nil }
                }
                return PRMData.Item(
                    problem: Int(p), prompt: tokenizer.encode(prompt),
                    solution: LabeledSolution(
                        words: words.split(separator: " ").map(String.init), positions: positions, labels: labels,
                        check: ChainCheck(steps: Int(steps), firstError: first, answerCorrect: right)))
            }
        }
        guard case let .number(g)? = j["generatedTokens"], case let .number(f)? = j["flops"],
            case let .number(r)? = j["rollouts"], case let .number(s)? = j["seconds"]
        else { throw TrialError("\(url.path): damaged") }
        return PRMData(
            train: try items(j["train"]), heldOut: try items(j["heldOut"]), generatedTokens: Int(g), flops: f,
            rollouts: Int(r), seconds: s)
    }
}
