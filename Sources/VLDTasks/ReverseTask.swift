// ReverseTask.swift: the sequence-reversal task, a deterministic smoke test for training.
//
// Each example is  a_1 .. a_n SEP a_n .. a_1  over symbols 2..<vocab (0 is padding, 1 is SEP),
// n = `length`. Only the positions that predict the reversed half count in the loss, so a model
// that has learned the task reaches near-zero loss and reverses unseen strings exactly.

/// A seeded stream of reversal examples.
public struct ReverseTask: Sendable {
    public static let pad: Int32 = 0
    public static let sep: Int32 = 1
    public let vocab: Int
    public let length: Int

    public init(vocab: Int, length: Int) {
        precondition(vocab >= 3 && length >= 1, "reverse needs vocab >= 3 and length >= 1")
        self.vocab = vocab
        self.length = length
    }

    /// Tokens per training sequence (input side): 2n (the last reversed symbol is only a target).
    public var sequenceLength: Int { 2 * length }

    /// The symbols of example `index` of the stream with `seed` (a pure function of both).
    public func symbols(seed: UInt64, index: Int) -> [Int32] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9
        return (0..<length).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int32(2 + Int((state >> 33) % UInt64(vocab - 2)))
        }
    }

    /// Input and target rows (each `sequenceLength`) for one example; targets are -1 (ignored)
    /// where the next token is not part of the reversed half.
    public func example(_ symbols: [Int32]) -> (inputs: [Int32], targets: [Int32]) {
        let full = symbols + [ReverseTask.sep] + symbols.reversed()
        let inputs = Array(full.prefix(sequenceLength))
        var targets = Array(full.dropFirst())
        for i in 0..<length { targets[i] = -1 }
        return (inputs, targets)
    }

    /// A batch of `batch` consecutive examples starting at stream position `cursor`, flattened.
    public func batch(seed: UInt64, cursor: Int, batch: Int) -> (inputs: [Int32], targets: [Int32]) {
        var inputs: [Int32] = [], targets: [Int32] = []
        for b in 0..<batch {
            let e = example(symbols(seed: seed, index: cursor + b))
            inputs += e.inputs
            targets += e.targets
        }
        return (inputs, targets)
    }
}
