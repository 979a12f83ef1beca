// Task.swift: what every synthetic task provides, and the generator they all draw from.
//
// A task is a pure function from (seed, document index) to a document, so a training run's data
// position is one integer (the data cursor in state.json) and resuming needs no stored data.
// Documents are words of the task's closed vocabulary plus a mask of which tokens are scored in
// the training loss (e.g. iGSM scores the solution and answer, not the question).

/// A deterministic random generator for data generation: SplitMix64 (Steele, Lea and Flood,
/// "Fast splittable pseudorandom number generators", 2014). VLDTasks has no engine dependency,
/// so it carries its own; streams are derived with `TaskRNG(seed:stream:index:)`.
public struct TaskRNG: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for item `index` of stream `stream` under `seed`: distinct (seed, stream,
    /// index) triples give unrelated sequences.
    public init(seed: UInt64, stream: UInt64, index: Int) {
        var s = TaskRNG(seed: seed ^ 0x6A09_E667_F3BC_C909)
        let a = s.next() ^ (stream &* 0xD1B5_4A32_D192_ED03)
        var t = TaskRNG(seed: a)
        state = t.next() ^ (UInt64(bitPattern: Int64(index)) &* 0x9E37_79B9_7F4A_7C15)
        _ = next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform integer in 0..<n (n > 0), without modulo bias.
    public mutating func int(_ n: Int) -> Int { Int.random(in: 0..<n, using: &self) }

    /// Uniform integer in the closed range.
    public mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// Uniform double in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

/// One training document: words of the task's vocabulary (special tokens such as `<bos>` and
/// `<eos>` included by the task where it wants them) and, for each word, whether predicting it
/// from the words before counts in the training loss. `scored[0]` is never used (nothing
/// precedes the first word).
public struct Document: Equatable, Sendable {
    public var words: [String]
    public var scored: [Bool]

    public init(words: [String], scored: [Bool]) {
        precondition(words.count == scored.count, "Document: words and scored differ in length")
        self.words = words
        self.scored = scored
    }
}

/// A task whose settings cannot produce a document (say, an iGSM op count that the edge and
/// word budgets never reach): the run fails with this message instead of the worker crashing.
public struct TaskError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A seeded synthetic task: a closed vocabulary and an endless, random-access document stream.
public protocol SyntheticTask: Sendable {
    /// Task family name, e.g. "igsm" (used in tokenizer.json and in reports).
    var family: String { get }
    /// The task's vocabulary without the special tokens, in a fixed order.
    var vocabulary: [String] { get }
    /// Training document `index` of the stream for `seed`; a pure function of both. Throws
    /// `TaskError` when the task's settings cannot produce it (a reported error, never a trap).
    func trainingDocument(seed: UInt64, index: Int) throws -> Document
    /// An upper bound on the words of any training document (checked against the context).
    var maxDocumentLength: Int { get }
}
