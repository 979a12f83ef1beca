// Mixture.swift: several tasks in one training run, and packing documents into training rows.
//
// A mixture draws the task of document i from the weights with a generator keyed by (seed, i),
// so the stream stays random-access: the data cursor of a checkpoint is one document index. The
// tokenizer is the union of the tasks' vocabularies in task order (shared words such as "." or
// numbers get one id), so one model reads every task.

/// Weighted tasks sharing one vocabulary.
public struct TaskMixture: Sendable {
    public let tasks: [any SyntheticTask]
    /// Normalised weights, one per task.
    public let weights: [Double]
    public let tokenizer: WordTokenizer

    public init(tasks: [any SyntheticTask], weights: [Double]) throws {
        guard !tasks.isEmpty && tasks.count == weights.count else {
            throw TaskError("a task mixture needs tasks, and one weight per task")
        }
        guard weights.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw TaskError("task weights must be positive") }
        self.tasks = tasks
        let total = weights.reduce(0, +)
        self.weights = weights.map { $0 / total }
        var seen = Set(WordTokenizer.specials), words: [String] = []
        for t in tasks { for w in t.vocabulary where seen.insert(w).inserted { words.append(w) } }
        tokenizer = try WordTokenizer(family: tasks.map(\.family).joined(separator: "+"), words: words)
    }

    /// Which task document `index` comes from.
    public func taskIndex(seed: UInt64, index: Int) -> Int {
        if tasks.count == 1 { return 0 }
        var rng = TaskRNG(seed: seed, stream: 0x4D49_58, index: index)
        var u = rng.unit()
        for (k, w) in weights.enumerated() {
            u -= w
            if u < 0 { return k }
        }
        return tasks.count - 1
    }

    /// Document `index` of the mixed stream, encoded. Each task sees its own document index
    /// `index` (so a task's documents do not depend on the other tasks' weights).
    public func document(seed: UInt64, index: Int) throws -> (task: Int, tokens: [Int32], scored: [Bool]) {
        let k = taskIndex(seed: seed, index: index)
        let doc = try tasks[k].trainingDocument(seed: seed, index: index)
        let tokens: [Int32]
        do { tokens = try tokenizer.encodeStrict(doc.words.joined(separator: " ")) } catch {
            throw TaskError("task \(tasks[k].family) produced a word outside its vocabulary: \(error)")
        }
        return (k, tokens, doc.scored)
    }

    /// The longest document any task can produce.
    public var maxDocumentLength: Int { tasks.map(\.maxDocumentLength).max() ?? 0 }
}

/// One packed training batch.
public struct PackedBatch: Sendable {
    /// (B, T) input ids, row-major; padding is `<pad>`.
    public var inputs: [Int32]
    /// (B, T) next-token targets; -1 where the position is padding or not scored.
    public var targets: [Int32]
    /// (B, T) the document each input position belongs to, numbered from 0 in each row; the
    /// padding after a row's last document is one more. The model keeps documents apart with
    /// these (attention within a document, positions from 0 in each).
    public var segments: [Int32]
    /// Data cursor after this batch (the first document not consumed).
    public var nextCursor: Int
    /// Documents consumed per task.
    public var documents: [Int]
    /// Scored target positions.
    public var scoredTokens: Int
}

extension TaskMixture {
    /// Packs whole documents, from document `cursor` on, into B rows of T inputs (each row holds
    /// T + 1 tokens: inputs and the shifted targets), with the segment of each input position
    /// so that documents sharing a row do not attend to one another. A document that does not fit in the rest of
    /// a row starts the next row; documents longer than T + 1 tokens are cut to fit (validation
    /// keeps that from happening by checking `maxDocumentLength` against the context). A
    /// document is consumed only when it was placed, so batches are a pure function of
    /// (seed, cursor, B, T).
    public func batch(seed: UInt64, cursor: Int, B: Int, T: Int) throws -> PackedBatch {
        var inputs = [Int32](repeating: WordTokenizer.pad, count: B * T)
        var targets = [Int32](repeating: -1, count: B * T)
        var segments = [Int32](repeating: 0, count: B * T)
        var documents = [Int](repeating: 0, count: tasks.count)
        var cur = cursor, scoredTokens = 0
        var pending = try document(seed: seed, index: cur)
        for b in 0..<B {
            var used = 0  // tokens placed in this row (row capacity T + 1)
            var segment: Int32 = 0
            defer {
                // The padding after the last document is a segment of its own.
                for p in min(used, T)..<T { segments[b * T + p] = segment }
            }
            while true {
                var tokens = pending.tokens, scored = pending.scored
                if tokens.count > T + 1 { tokens = Array(tokens.prefix(T + 1)); scored = Array(scored.prefix(T + 1)) }
                guard used + tokens.count <= T + 1 || (used == 0) else { break }
                for (j, tok) in tokens.enumerated() {
                    let p = used + j  // position of this token in the row
                    if p < T {
                        inputs[b * T + p] = tok
                        segments[b * T + p] = segment
                    }
                    if p >= 1, j >= 1, scored[j] {
                        targets[b * T + p - 1] = tok
                        scoredTokens += 1
                    }
                }
                used += tokens.count
                segment += 1
                documents[pending.task] += 1
                cur += 1
                pending = try document(seed: seed, index: cur)
                if used >= T + 1 { break }
            }
        }
        return PackedBatch(
            inputs: inputs, targets: targets, segments: segments, nextCursor: cur, documents: documents,
            scoredTokens: scoredTokens)
    }
}
