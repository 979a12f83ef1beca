// RandomTokens.swift: K1, memorising a fixed stream of IID uniform random tokens (spec 6.2, after
// VLD §3.1).
//
// The stream holds k symbols drawn IID uniformly from s0..s{n-1} and is cut into floor(k/T)
// fixed, non-overlapping windows of the model context T (a remainder shorter than T is dropped).
// Training and evaluation read the *same* windows; the paper's code used 768 for one and 1024
// for the other, which the spec calls out as inconsistent. Window i is generated from its own
// TaskRNG(seed, stream, i), so any window is available without materialising the stream; the
// concatenated windows are still one IID uniform stream, which is all the K1 metric assumes.
// Nothing in a window is predictable except by memorising it, so whatever the model gains over
// log2 n bits per predicted token is stored in its parameters (scored by `scoreRandomTokens`).

/// The size of the K1 stream.
public struct RandomTokensConfig: Codable, Equatable, Sendable {
    /// n, the alphabet size: symbols s0..s{n-1}, each one token. Keep it small so the embedding
    /// does not dominate the parameter count (spec 6.2 "embedding confound").
    public var symbols: Int
    /// k, the stream length in tokens before it is cut into windows.
    public var tokens: Int

    public static let symbolRange = 2...4096
    public static let maxTokens = 1 << 30

    public init(symbols: Int = 64, tokens: Int = 32768) {
        self.symbols = symbols
        self.tokens = tokens
    }

    enum CodingKeys: String, CodingKey { case symbols, tokens }

    /// Missing keys take the defaults, so a manifest may name only what it changes.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = RandomTokensConfig()
        self.init(
            symbols: try c.decodeIfPresent(Int.self, forKey: .symbols) ?? d.symbols,
            tokens: try c.decodeIfPresent(Int.self, forKey: .tokens) ?? d.tokens)
    }

    /// Checks the sizes against the model context `window` (T); the message names the field and
    /// the accepted range.
    public func validate(window: Int) throws {
        func fail(_ m: String) -> RandomTokensConfigError { RandomTokensConfigError(message: "random-tokens: " + m) }
        guard RandomTokensConfig.symbolRange.contains(symbols) else {
            throw fail("symbols must be in \(RandomTokensConfig.symbolRange), got \(symbols)")
        }
        guard window >= 2 else {
            throw fail("window (the model context) must be at least 2 so a window has a predicted token, got \(window)")
        }
        guard window <= RandomTokensConfig.maxTokens, (window...RandomTokensConfig.maxTokens).contains(tokens) else {
            throw fail(
                "tokens must be in \(window)...\(RandomTokensConfig.maxTokens) (at least one window of "
                    + "\(window)), got \(tokens)")
        }
    }
}

/// An invalid K1 configuration.
public struct RandomTokensConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// K1: the fixed windows of one random stream, served as training documents in a cycle.
public struct RandomTokensTask: SyntheticTask {
    public let config: RandomTokensConfig
    /// T, the window length (the model context).
    public let windowLength: Int
    /// floor(tokens / T): the number of distinct windows.
    public let windowCount: Int
    public let vocabulary: [String]

    /// TaskRNG stream of the symbols ("K1").
    static let stream: UInt64 = 0x4B31

    public init(config: RandomTokensConfig, window: Int) throws {
        try config.validate(window: window)
        self.config = config
        windowLength = window
        windowCount = config.tokens / window
        vocabulary = (0..<config.symbols).map { "s\($0)" }
    }

    public var family: String { "random-tokens" }
    public var maxDocumentLength: Int { windowLength }

    /// K = windowCount·(T − 1): positions 1..T−1 of every window are predicted, position 0 never.
    public var predictedTokens: Int { windowCount * (windowLength - 1) }

    /// The symbol indices (0..<n) of window `i` (0..<windowCount) of the stream for `seed`.
    public func windowSymbols(seed: UInt64, _ i: Int) -> [Int] {
        precondition(i >= 0 && i < windowCount, "random-tokens: window \(i) outside 0..<\(windowCount)")
        var rng = TaskRNG(seed: seed, stream: RandomTokensTask.stream, index: i)
        return (0..<windowLength).map { _ in rng.int(config.symbols) }
    }

    /// Window `i` (0..<windowCount) of the stream for `seed` as words: identical on every call,
    /// for training and for evaluation.
    public func window(seed: UInt64, _ i: Int) -> [String] {
        windowSymbols(seed: seed, i).map { vocabulary[$0] }
    }

    /// Window (index mod windowCount), every token scored: each pass over the windows is one
    /// exposure of the whole stream.
    public func trainingDocument(seed: UInt64, index: Int) throws -> Document {
        let i = ((index % windowCount) + windowCount) % windowCount
        return Document(words: window(seed: seed, i), scored: Array(repeating: true, count: windowLength))
    }
}
