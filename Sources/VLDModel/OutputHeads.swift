// OutputHeads.swift: the output head's forward and backward for every ModelConfig.OutputHead
// (issue 14, part 3; specs/phase.md 5(c)): the full vocabulary matrix, a rank-r factorisation,
// a wider trained head with GELU, each times the output multiplier. Gradients are checked against
// finite differences (GradientTests).

import VLDTensor

extension Transformer {
    /// The output head: logits (N x V) from the final hidden states, through a rank head's
    /// down-projection or a wide head's GELU layer (their activations in `pre` and `act`, GELU's
    /// tanh cache in `tanh`), times the output multiplier.
    func headForward(logits: FPtr, hidden: CFPtr, pre: FPtr, act: FPtr, tanh: FPtr?, N: Int) {
        let cfg = config, p = params, W = cfg.headWidth
        var input = hidden
        if let inner = layout.headInner {
            linearForward(out: pre, inp: hidden, weight: p[inner], bias: nil, M: N, C: cfg.dModel, OC: W, pool: pool)
            if case .wide = cfg.head {
                geluForward(out: act, inp: pre, N: N * W, pool: pool, tanhCache: tanh)
                input = UnsafePointer(act)
            } else {
                input = UnsafePointer(pre)
            }
        }
        linearForward(out: logits, inp: input, weight: p[layout.head], bias: nil, M: N, C: W, OC: cfg.vocab, pool: pool)
        if cfg.outputMultiplier != 1 {
            let m = cfg.outputMultiplier
            for i in 0..<(N * cfg.vocab) { logits[i] *= m }
        }
    }

    /// The LM head's backward: its weight's gradient, and the gradient of the final hidden states
    /// into dln (overwritten).
    func headBackward() {
        let cfg = config, L = actLayout!, a = acts!, g = grads, p = params
        let N = L.B * L.T, W = cfg.headWidth
        if cfg.outputMultiplier != 1 {
            let m = cfg.outputMultiplier, d = a[L.logits]
            for i in 0..<(N * cfg.vocab) { d[i] *= m }
        }
        guard let inner = layout.headInner else {
            linearBackward(
                dinp: a[L.dln], dweight: g[layout.head], dbias: nil, dout: a[L.logits], inp: a[L.lnf],
                weight: p[layout.head], M: N, C: cfg.dModel, OC: cfg.vocab, pool: pool, overwriteInput: true)
            return
        }
        let wide: Bool
        if case .wide = cfg.head { wide = true } else { wide = false }
        linearBackward(
            dinp: a[L.dheadIn], dweight: g[layout.head], dbias: nil, dout: a[L.logits],
            inp: a[wide ? L.headAct : L.headPre], weight: p[layout.head], M: N, C: W, OC: cfg.vocab, pool: pool,
            overwriteInput: true)
        var dpre = a[L.dheadIn]
        if wide {
            a.zero(L.dheadPre, N * W)
            geluBackward(
                dinp: a[L.dheadPre], inp: a[L.headPre], cached: a[L.headTanh], dout: a[L.dheadIn], N: N * W, pool: pool)
            dpre = a[L.dheadPre]
        }
        linearBackward(
            dinp: a[L.dln], dweight: g[inner], dbias: nil, dout: dpre, inp: a[L.lnf], weight: p[inner], M: N,
            C: cfg.dModel, OC: W, pool: pool, overwriteInput: true)
    }
}
