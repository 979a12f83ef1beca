// ReferenceModel.swift: the whole forward pass in Double, composed from VLDTensor's naive
// Reference kernels and the same parameter layout, for finite-difference gradient checks.

import VLDModel
import VLDTensor

/// Mean cross-entropy of the model defined by `params` (vld's internal layout) in Double.
/// With `segments`, rows are packed: a document is a run of equal ids, with positions from 0 and
/// attention within it.
func referenceLoss(
    _ cfg: ModelConfig, layout: ParameterLayout, schedule: [Int], params p: [Double],
    inputs: [Int], targets: [Int], B: Int, T: Int, segments: [Int]? = nil, value: ValueTerm? = nil
) -> Double {
    let C = cfg.dModel, N = B * T, eps = Double(cfg.normEps)
    func slice(_ off: Int, _ n: Int) -> [Double] { Array(p[off..<(off + n)]) }
    var starts = [Int](repeating: 0, count: N)
    if let segments {
        for n in 0..<N where n % T > 0 { starts[n] = segments[n] == segments[n - 1] ? starts[n - 1] : n % T }
    }
    let positions = (0..<N).map { $0 % T - starts[$0] }
    var x = Reference.embedding(
        tokens: inputs, positions: positions, wte: slice(layout.wte, cfg.vocab * C),
        wpe: layout.wpe.map { slice($0, cfg.context * C) }, C: C)
    func norm(_ h: [Double], _ w: Int, _ b: Int?) -> [Double] {
        if let b { return Reference.layerNorm(h, w: slice(w, C), b: slice(b, C), C: C, eps: eps) }
        return Reference.rmsNorm(h, w: slice(w, C), C: C, eps: eps)
    }
    func linear(_ h: [Double], _ w: Int, _ b: Int?, _ inC: Int, _ outC: Int) -> [Double] {
        Reference.linear(h, w: slice(w, outC * inC), b: b.map { slice($0, outC) }, M: N, C: inC, OC: outC)
    }
    for l in schedule {
        let s = layout.blocks[l]
        var qkv = linear(norm(x, s.norm1W, s.norm1B), s.qkvW, s.qkvB, C, cfg.qkvWidth)
        if cfg.arch == .llama {
            qkv = Reference.rope(
                qkv, positions: positions, NH: cfg.heads, KVH: cfg.kvHeads, HS: cfg.headSize, theta: cfg.ropeTheta)
        }
        let y = Reference.attention(
            qkv, B: B, T: T, NH: cfg.heads, KVH: cfg.kvHeads, HS: cfg.headSize,
            starts: segments == nil ? nil : starts)
        let attnOut = linear(y, s.projW, s.projB, C, C)
        let res2 = zip(x, attnOut).map { $0 + $1 }
        let h = linear(norm(res2, s.norm2W, s.norm2B), s.fcW, s.fcB, C, cfg.fcWidth)
        let act = cfg.arch == .gpt2 ? Reference.gelu(h) : Reference.swiglu(h, M: N, F: cfg.ffnHidden)
        let mlpOut = linear(act, s.fcProjW, s.fcProjB, cfg.ffnHidden, C)
        x = zip(res2, mlpOut).map { $0 + $1 }
    }
    let final = norm(x, layout.normFW, layout.normFB)
    // The head: a rank head's down-projection or a wide head's GELU layer, then the vocabulary
    // matrix, times the output multiplier.
    var headInput = final
    if let inner = layout.headInner {
        let pre = linear(final, inner, nil, C, cfg.headWidth)
        if case .wide = cfg.head { headInput = Reference.gelu(pre) } else { headInput = pre }
    }
    let logits = linear(headInput, layout.head, nil, cfg.headWidth, cfg.vocab).map { $0 * Double(cfg.outputMultiplier) }
    let lm = Reference.crossEntropy(logits: logits, targets: targets, V: cfg.vocab)
    guard let value else { return lm }
    let bce = Reference.valueHeadLoss(
        hidden: final, C: C, rows: value.rows, targets: value.targets, weight: value.weight, bias: value.bias)
    return (value.withLM ? lm : 0) + bce
}

/// A value head's binary cross-entropy on the final hidden states, added to (or, without
/// `withLM`, replacing) the language-model loss of `referenceLoss`.
struct ValueTerm {
    var rows: [Int]
    var targets: [Double]
    var weight: [Double]
    var bias: Double
    var withLM: Bool
}
