// ParameterLayout.swift: where every parameter tensor lives in the one flat parameter buffer.
//
// A pure function of the config: matrices (weight-decayed) first, then vectors (norms, biases;
// not decayed), so AdamW runs as two contiguous calls. Parameters are sized by physical block;
// a schedule that reuses a block reads the same slots again. Internal weights are stored
// (out, in) like torch.nn.Linear; q, k, v are fused into one matrix with rows [q; k; v], and
// llama's gate and up projections into one with rows [gate; up].

/// One tensor: its internal name, shape (row-major) and offset in the parameter buffer.
public struct TensorSlot: Equatable, Sendable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Offsets of one physical block's tensors (nil where the architecture has none).
public struct BlockSlots: Sendable {
    public var norm1W = 0, norm1B: Int?
    public var qkvW = 0, qkvB: Int?
    public var projW = 0, projB: Int?
    public var norm2W = 0, norm2B: Int?
    public var fcW = 0, fcB: Int?
    public var fcProjW = 0, fcProjB: Int?
}

public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorSlot] = []
    public private(set) var blocks: [BlockSlots]
    public private(set) var wte = 0
    public private(set) var wpe: Int?
    /// The output head's vocabulary matrix (vocab x headWidth): the token embedding when tied.
    public private(set) var head = 0
    /// A rank head's down-projection (r x d) or a wide head's hidden matrix (k d x d).
    public private(set) var headInner: Int?
    public private(set) var normFW = 0
    public private(set) var normFB: Int?
    /// Parameters [0, decayedCount) are matrices (weight decay applies), the rest vectors.
    public private(set) var decayedCount = 0
    public private(set) var count = 0

    public init(_ cfg: ModelConfig) {
        let C = cfg.dModel, gpt2 = cfg.arch == .gpt2
        blocks = Array(repeating: BlockSlots(), count: cfg.layers)
        var offset = 0
        func add(_ name: String, _ shape: [Int]) -> Int {
            let slot = TensorSlot(name: name, shape: shape, offset: offset)
            tensors.append(slot)
            offset += slot.count
            return slot.offset
        }
        wte = add("wte", [cfg.vocab, C])
        if gpt2 { wpe = add("wpe", [cfg.context, C]) }
        head = cfg.tiedEmbeddings ? wte : add("lm_head", [cfg.vocab, cfg.headWidth])
        switch cfg.head {
        case .full: break
        case .rank: headInner = add("lm_head.down", [cfg.headWidth, C])
        case .wide: headInner = add("lm_head.hidden", [cfg.headWidth, C])
        }
        for l in 0..<cfg.layers {
            blocks[l].qkvW = add("h.\(l).qkv.weight", [cfg.qkvWidth, C])
            blocks[l].projW = add("h.\(l).proj.weight", [C, C])
            blocks[l].fcW = add("h.\(l).fc.weight", [cfg.fcWidth, C])
            blocks[l].fcProjW = add("h.\(l).fc_proj.weight", [C, cfg.ffnHidden])
        }
        decayedCount = offset
        for l in 0..<cfg.layers {
            blocks[l].norm1W = add("h.\(l).norm1.weight", [C])
            blocks[l].norm2W = add("h.\(l).norm2.weight", [C])
            if gpt2 {
                blocks[l].norm1B = add("h.\(l).norm1.bias", [C])
                blocks[l].norm2B = add("h.\(l).norm2.bias", [C])
                blocks[l].qkvB = add("h.\(l).qkv.bias", [cfg.qkvWidth])
                blocks[l].projB = add("h.\(l).proj.bias", [C])
                blocks[l].fcB = add("h.\(l).fc.bias", [cfg.fcWidth])
                blocks[l].fcProjB = add("h.\(l).fc_proj.bias", [C])
            }
        }
        normFW = add("norm_f.weight", [C])
        if gpt2 { normFB = add("norm_f.bias", [C]) }
        count = offset
    }

    public func slot(named name: String) -> TensorSlot? { tensors.first { $0.name == name } }
}
