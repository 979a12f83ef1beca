// ModelConfig.swift: the architecture of a vld model and its parameter accounting.

/// The two supported architectures, matching Hugging Face's GPT2LMHeadModel and LlamaForCausalLM.
public enum Arch: String, Codable, Sendable, CaseIterable {
    /// Pre-LayerNorm, learned absolute positions, fused QKV with biases, GELU(tanh) MLP, tied head.
    case gpt2
    /// Pre-RMSNorm, RoPE, no biases, SwiGLU MLP, grouped-query attention, untied head by default.
    case llama
}

/// The output head (issue 14, part 3; specs/phase.md 5(c) "model-side width levers"): the usual
/// vocab x d matrix, a rank-r factorisation W_U = A B (A vocab x r, B r x d: a bottleneck on
/// purpose), or a wider trained head W_U GELU(W_h h) with W_h (k d x d) and W_U (vocab x k d).
public enum OutputHead: Codable, Equatable, Sendable, CustomStringConvertible {
    case full
    case rank(Int)
    case wide(Int)

    public var description: String {
        switch self {
        case .full: return "full"
        case let .rank(r): return "rank(\(r))"
        case let .wide(k): return "wide(\(k))"
        }
    }

    /// "full", "rank(<r>)" or "wide(<k>)".
    public init?(parsing s: String) {
        if s == "full" {
            self = .full
            return
        }
        for (prefix, make) in [("rank(", OutputHead.rank), ("wide(", OutputHead.wide)] {
            if s.hasPrefix(prefix), s.hasSuffix(")"), let n = Int(s.dropFirst(prefix.count).dropLast()), n >= 1 {
                self = make(n)
                return
            }
        }
        return nil
    }
}

/// A decoder-only transformer: `layers` physical blocks applied in the order of `schedule`.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var arch: Arch
    public var dModel: Int
    /// Physical blocks (parameters are sized by these).
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var ffnHidden: Int
    /// Maximum sequence length (learned positions for gpt2, RoPE table for llama).
    public var context: Int
    public var vocab: Int
    public var tiedEmbeddings: Bool
    public var normEps: Float
    public var ropeTheta: Double
    public var schedule: LayerSchedule
    /// The output head (full, a rank-r factorisation, or a wider trained head).
    public var head: OutputHead = .full
    /// A muP-style output multiplier: logits = m W_U h (m = d_base / d under muP; 1 is off).
    public var outputMultiplier: Float = 1

    public init(
        arch: Arch, dModel: Int, layers: Int, heads: Int, kvHeads: Int? = nil, ffnHidden: Int? = nil,
        context: Int, vocab: Int, tiedEmbeddings: Bool? = nil, normEps: Float = 1e-5, ropeTheta: Double = 10000,
        schedule: LayerSchedule = .base
    ) {
        self.arch = arch
        self.dModel = dModel
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.ffnHidden = ffnHidden ?? ModelConfig.defaultFFNHidden(arch: arch, dModel: dModel)
        self.context = context
        self.vocab = vocab
        self.tiedEmbeddings = tiedEmbeddings ?? (arch == .gpt2)
        self.normEps = normEps
        self.ropeTheta = ropeTheta
        self.schedule = schedule
    }

    /// 4d for gpt2; round_up(8d/3, 32) for llama's SwiGLU (same parameter count as 4d GELU).
    public static func defaultFFNHidden(arch: Arch, dModel d: Int) -> Int {
        arch == .gpt2 ? 4 * d : ((8 * d / 3 + 31) / 32) * 32
    }

    public var headSize: Int { dModel / heads }
    /// The input width of the vocabulary matrix: d, r (rank head) or k d (wide head).
    public var headWidth: Int {
        switch head {
        case .full: return dModel
        case let .rank(r): return r
        case let .wide(k): return k * dModel
        }
    }
    /// Parameters of the head's first matrix (rank: r x d; wide: k d x d; full: none).
    public var headInnerParams: Int { head == .full ? 0 : headWidth * dModel }
    /// Weight parameters of the output head as applied per token (the tied embedding counted).
    public var headMatrixParams: Int { vocab * headWidth + headInnerParams }
    /// Whether a Hugging Face GPT2LMHeadModel / LlamaForCausalLM can hold the model: not with a
    /// factorised or wider head or an output multiplier (their checkpoints are vld-only).
    public var isHuggingFaceCompatible: Bool { head == .full && outputMultiplier == 1 }
    /// Width of the fused q,k,v projection: (heads + 2 kvHeads) * headSize.
    public var qkvWidth: Int { (heads + 2 * kvHeads) * headSize }
    /// Output width of the first MLP matrix: ffnHidden (GELU) or 2 ffnHidden (SwiGLU gate+up).
    public var fcWidth: Int { arch == .gpt2 ? ffnHidden : 2 * ffnHidden }

    /// Checks the invariants the engine relies on; every message names the field.
    public func validate() throws {
        func fail(_ m: String) -> ConfigError { ConfigError(message: m) }
        guard dModel >= 1 && dModel <= 65536 else { throw fail("dModel must be in 1...65536, got \(dModel)") }
        guard context <= 1 << 20 else { throw fail("context must be <= 1048576, got \(context)") }
        guard vocab <= 1 << 24 else { throw fail("vocab must be <= 16777216, got \(vocab)") }
        guard ffnHidden <= 1 << 20 else { throw fail("ffnHidden must be <= 1048576, got \(ffnHidden)") }
        guard layers <= LayerSchedule.maxApplications else {
            throw fail("layers must be <= \(LayerSchedule.maxApplications), got \(layers)")
        }
        guard layers >= 1 else { throw fail("layers must be >= 1, got \(layers)") }
        guard heads >= 1, dModel % heads == 0 else { throw fail("heads (\(heads)) must divide dModel (\(dModel))") }
        guard kvHeads >= 1, heads % kvHeads == 0 else {
            throw fail("kvHeads (\(kvHeads)) must divide heads (\(heads))")
        }
        if arch == .gpt2 && kvHeads != heads {
            throw fail("kvHeads must equal heads for gpt2 (grouped-query attention is llama only)")
        }
        if arch == .llama && headSize % 2 != 0 { throw fail("dModel/heads must be even for RoPE, got \(headSize)") }
        guard ffnHidden >= 1 else { throw fail("ffnHidden must be >= 1, got \(ffnHidden)") }
        guard context >= 1 else { throw fail("context must be >= 1, got \(context)") }
        guard vocab >= 2 else { throw fail("vocab must be >= 2, got \(vocab)") }
        guard normEps > 0 else { throw fail("normEps must be > 0") }
        guard ropeTheta > 0 else { throw fail("ropeTheta must be > 0") }
        switch head {
        case .full: break
        case let .rank(r):
            guard r >= 1 && r <= 65536 else { throw fail("head: rank must be in 1...65536, got \(r)") }
        case let .wide(k):
            guard k >= 1 && k <= 16 else { throw fail("head: wide(k) needs k in 1...16, got \(k)") }
        }
        if head != .full && tiedEmbeddings {
            throw fail(
                "head \(head) has its own vocabulary matrix; it cannot be tied to the embedding (tiedEmbeddings false)")
        }
        guard outputMultiplier > 0, outputMultiplier.isFinite else {
            throw fail("outputMultiplier must be > 0, got \(outputMultiplier)")
        }
        do { _ = try schedule.indices(layers: layers) } catch let e as ScheduleError {
            throw fail("schedule: \(e.message)")
        }
        // With the bounds above the products fit in Int; cap the total at 2^33 floats (32 GiB).
        guard Double(totalParams) <= 8_589_934_592 else {
            throw fail("the model would have \(totalParams) parameters; the limit is 2^33")
        }
    }

    // MARK: accounting (specs/vld.md 6.1, specs/tts.md 8.5)

    /// Weight-matrix parameters of one block (QKV, output projection, MLP); no norms or biases.
    public var blockMatrixParams: Int { dModel * qkvWidth + dModel * dModel + dModel * fcWidth + ffnHidden * dModel }

    /// All parameters of one physical block, norms and biases included.
    public var blockParams: Int {
        let vectors = arch == .gpt2 ? (4 * dModel + qkvWidth + dModel + fcWidth + dModel) : 2 * dModel
        return blockMatrixParams + vectors
    }

    /// Token embedding, learned positions (gpt2), and an untied output head.
    public var embeddingParams: Int {
        vocab * dModel + (arch == .gpt2 ? context * dModel : 0) + (tiedEmbeddings ? 0 : headMatrixParams)
    }

    /// P_total: every stored parameter, counted once (a reused block counts once).
    public var totalParams: Int { embeddingParams + layers * blockParams + (arch == .gpt2 ? 2 * dModel : dModel) }

    /// P_non-embedding: P_total without token/position embeddings and the output head.
    public var nonEmbeddingParams: Int { totalParams - embeddingParams }

    /// D: block applications per token (the schedule length).
    public var applications: Int { (try? schedule.indices(layers: layers).count) ?? layers }

    /// D_VLD = D - L: applications added by reuse.
    public var vldDepth: Int { applications - layers }

    /// N_applied = D * (block matrix params) + the head's (V d for a full head): matrix parameters
    /// as applied per token.
    public var appliedMatrixParams: Int { applications * blockMatrixParams + headMatrixParams }

    /// Forward FLOPs for one token attending to `t` positions (specs/tts.md 8.5):
    /// D * (2 * blockMatrixParams + 4 t d) + 2 d V (2 times the head's matrices in general).
    public func forwardFlopsPerToken(attending t: Int) -> Double {
        Double(applications) * (2 * Double(blockMatrixParams) + 4 * Double(t) * Double(dModel))
            + 2 * Double(headMatrixParams)
    }

    /// Training FLOPs of one step of B sequences of T tokens, with the convention of
    /// shared/bench/torch_gpt_bench.py: 6 N_applied BT + 12 D d T BT (full T x T attention).
    public func trainFlopsPerStep(batch B: Int, seqLen T: Int) -> Double {
        let tokens = Double(B * T)
        return 6 * Double(appliedMatrixParams) * tokens + 12 * Double(applications) * Double(dModel) * Double(T)
            * tokens
    }
}

/// An invalid model configuration; the message names the field.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
