// Transformer.swift: a GPT-2 / Llama style decoder whose blocks are applied in the order of a
// layer schedule (virtual logical depth), with forward and backward passes in the manner of
// Karpathy's llm.c (train_gpt2.c) and the module structure of nanoGPT's model.py.
//
// Shapes: B batch, T sequence, C = dModel, NH heads, KVH kv heads, HS = C/NH, QKV = (NH+2KVH)HS,
// F = ffnHidden, FC = F (gelu) or 2F (swiglu), V vocab, D schedule length, N = B*T.
//
// Parameters live in one buffer laid out by ParameterLayout and are indexed by physical block.
// Activations live in one buffer with a slice per *schedule position*, because a reused block
// sees a different input at each visit. Backward walks the schedule in reverse and adds into the
// physical block's gradient, so reuse (like a tied embedding) needs no special case.

import VLDTensor

/// Per-position activation slices of a (B,T) forward pass.
struct PositionActs {
    var ln1 = 0, ln1Mean = 0, ln1Rstd = 0, qkv = 0, att = 0, atty = 0, res2 = 0
    var ln2 = 0, ln2Mean = 0, ln2Rstd = 0, fch = 0, fchAct = 0, geluTanh = 0, resOut = 0
}

struct ActivationLayout {
    let B: Int, T: Int
    var positions: [PositionActs] = []
    var res0 = 0, lnf = 0, lnfMean = 0, lnfRstd = 0, logits = 0, losses = 0
    var dres = 0, dln = 0, dqkv = 0, datty = 0, dfch = 0, dfchAct = 0
    /// A rank or wide head's inner activations (N x headWidth): before and after GELU (wide),
    /// GELU's tanh cache, and two gradient buffers.
    var headPre = 0, headAct = 0, headTanh = 0, dheadIn = 0, dheadPre = 0
    var count = 0

    init(_ cfg: ModelConfig, D: Int, B: Int, T: Int) {
        self.B = B
        self.T = T
        let N = B * T, C = cfg.dModel
        var offset = 0
        func take(_ n: Int) -> Int { defer { offset += n }; return offset }
        res0 = take(N * C)
        for _ in 0..<D {
            var p = PositionActs()
            p.ln1 = take(N * C); p.ln1Mean = take(N); p.ln1Rstd = take(N)
            p.qkv = take(N * cfg.qkvWidth); p.att = take(B * cfg.heads * T * T); p.atty = take(N * C)
            p.res2 = take(N * C)
            p.ln2 = take(N * C); p.ln2Mean = take(N); p.ln2Rstd = take(N)
            p.fch = take(N * cfg.fcWidth); p.fchAct = take(N * cfg.ffnHidden); p.resOut = take(N * C)
            if cfg.arch == .gpt2 { p.geluTanh = take(N * cfg.ffnHidden) }
            positions.append(p)
        }
        lnf = take(N * C); lnfMean = take(N); lnfRstd = take(N)
        if cfg.head != .full {
            let W = N * cfg.headWidth
            headPre = take(W); headAct = take(W); headTanh = take(W); dheadIn = take(W); dheadPre = take(W)
        }
        logits = take(N * cfg.vocab); losses = take(N)
        dres = take(N * C); dln = take(N * C); dqkv = take(N * cfg.qkvWidth); datty = take(N * C)
        dfch = take(N * cfg.fcWidth); dfchAct = take(N * cfg.ffnHidden)
        count = offset
    }
}

/// A decoder-only transformer with a layer schedule. Not thread-safe: one caller at a time;
/// its kernels run on the `pool` given at creation.
public final class Transformer {
    public let config: ModelConfig
    /// Physical block index at each schedule position.
    public let schedule: [Int]
    public let layout: ParameterLayout
    public let params: FloatBuffer
    public let grads: FloatBuffer
    public let pool: ThreadPool
    /// Called at every activation site of every block application, in forward passes and while
    /// decoding alike (reading activations, or steering them by writing). Inference only: the
    /// backward pass does not see what a hook writes.
    public var siteHook: ((ActivationSite) -> Void)?

    let rope: RopeTable?
    var acts: FloatBuffer?
    var actLayout: ActivationLayout?
    var tokenBuf: [Int32] = []
    var targetBuf: [Int32] = []
    var positionBuf: [Int32] = []
    /// First position of each token's document in its row (B*T), for packed rows; empty when
    /// every row is one sequence (plain causal attention).
    var startBuf: [Int32] = []
    /// Number of rows counted by the loss of the last forward with targets.
    var lastCount = 0

    /// Creates a model with freshly initialised weights: N(0, 0.02) for matrices and embeddings,
    /// output projections scaled by 1/sqrt(2D) (GPT-2's residual scaling), norms 1, biases 0.
    public convenience init(config: ModelConfig, pool: ThreadPool, rng: inout SeededRNG) throws {
        try self.init(config: config, pool: pool)
        let projStd = 0.02 / Double(2 * schedule.count).squareRoot()
        for slot in layout.tensors {
            let p = params[slot.offset]
            if slot.shape.count == 1 {
                let one: Float =
                    slot.name.hasSuffix("norm1.weight") || slot.name.hasSuffix("norm2.weight")
                        || slot.name == "norm_f.weight" ? 1 : 0
                p.update(repeating: one, count: slot.count)
            } else {
                let std = slot.name.hasSuffix(".proj.weight") || slot.name.hasSuffix("fc_proj.weight") ? projStd : 0.02
                for i in 0..<slot.count { p[i] = Float(rng.nextNormal() * std) }
            }
        }
    }

    /// Creates a model with all parameters zero (checkpoint loading fills them).
    init(config: ModelConfig, pool: ThreadPool) throws {
        try config.validate()
        self.config = config
        self.pool = pool
        schedule = try config.schedule.indices(layers: config.layers)
        layout = ParameterLayout(config)
        params = FloatBuffer(count: layout.count)
        grads = FloatBuffer(count: layout.count)
        rope =
            config.arch == .llama
            ? RopeTable(headSize: config.headSize, positions: config.context, theta: config.ropeTheta) : nil
    }

    /// Total parameters stored (P_total).
    public var parameterCount: Int { layout.count }

    public func zeroGrads() { grads.zero() }

    /// Token ids reach the model from outside the engine (a tokenizer, a checkpoint of another
    /// vocabulary, `vldctl checkpoint logits --tokens`): one out of range would index past the
    /// embedding table, so every entry point checks them and throws instead.
    public func checkTokens<C: Collection<Int32>>(_ tokens: C) throws {
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocab }) {
            throw TokenError(token: bad, vocab: config.vocab)
        }
    }

    func ensureActivations(B: Int, T: Int) {
        require(T <= config.context, "sequence length \(T) exceeds the model context \(config.context)")
        if let l = actLayout, l.B == B, l.T == T { return }
        let l = ActivationLayout(config, D: schedule.count, B: B, T: T)
        actLayout = l
        acts = FloatBuffer(count: l.count)
    }

    // MARK: forward

    /// Runs the forward pass on `inputs` (B*T token ids, row-major). With `targets` (B*T ids,
    /// negative = ignored) returns the mean cross-entropy and leaves probabilities for backward;
    /// without, leaves raw logits readable through `logits(row:)` and returns nil.
    /// Throws `TokenError` when a token id is outside the vocabulary (nothing is computed).
    ///
    /// `segments` (B*T), when given, packs several documents into a row: a document is a run of
    /// equal ids, its positions start again at 0 (learned positions and RoPE alike) and its
    /// tokens attend only within it, so a packed row computes what its documents would compute
    /// one per row.
    @discardableResult
    public func forward(inputs: [Int32], targets: [Int32]? = nil, B: Int, T: Int, segments: [Int32]? = nil) throws
        -> Float?
    {
        require(inputs.count == B * T, "inputs must hold B*T tokens")
        try checkTokens(inputs)
        ensureActivations(B: B, T: T)
        tokenBuf = inputs
        setPositions(B: B, T: T, segments: segments)
        let loss = runForward(B: B, T: T, targets: targets)
        return loss
    }

    /// Positions (and, for packed rows, document starts) of a (B,T) batch.
    func setPositions(B: Int, T: Int, segments: [Int32]?) {
        guard let segments else {
            positionBuf = (0..<(B * T)).map { Int32($0 % T) }
            startBuf = []
            return
        }
        require(segments.count == B * T, "segments must hold B*T ids")
        positionBuf = [Int32](repeating: 0, count: B * T)
        startBuf = [Int32](repeating: 0, count: B * T)
        for b in 0..<B {
            var start = 0
            for t in 0..<T {
                let n = b * T + t
                if t > 0 && segments[n] != segments[n - 1] { start = t }
                startBuf[n] = Int32(start)
                positionBuf[n] = Int32(t - start)
            }
        }
    }

    func runForward(B: Int, T: Int, targets: [Int32]?) -> Float? {
        let cfg = config, N = B * T, C = cfg.dModel, V = cfg.vocab
        let a = acts!, L = actLayout!, p = params
        tokenBuf.withUnsafeBufferPointer { tok in
            positionBuf.withUnsafeBufferPointer { pos in
                embeddingForward(
                    out: a[L.res0], tokens: tok.baseAddress!, positions: pos.baseAddress!,
                    wte: p[layout.wte], wpe: layout.wpe.map { p[$0] }, N: N, C: C, pool: pool)
                var input = a[L.res0]
                for (v, l) in schedule.enumerated() {
                    site(.residPre, v, input, B: B, T: T, positions: pos.baseAddress!)
                    blockForward(
                        L.positions[v], input: input, block: layout.blocks[l], B: B, T: T,
                        positions: pos.baseAddress!, v: v)
                    input = a[L.positions[v].resOut]
                    site(.residPost, v, input, B: B, T: T, positions: pos.baseAddress!)
                }
                finalNorm(out: a[L.lnf], mean: a[L.lnfMean], rstd: a[L.lnfRstd], inp: input, N: N)
                headForward(
                    logits: a[L.logits], hidden: a[L.lnf], pre: a[L.headPre], act: a[L.headAct], tanh: a[L.headTanh],
                    N: N)
            }
        }
        guard let targets else { return nil }
        require(targets.count == N, "targets must hold B*T tokens")
        targetBuf = targets
        let (loss, count) = targetBuf.withUnsafeBufferPointer { t in
            crossEntropyForward(
                losses: a[L.losses], probs: a[L.logits], logits: a[L.logits], targets: t.baseAddress!,
                N: N, V: V, pool: pool)
        }
        lastCount = count
        return loss
    }

    func finalNorm(out: FPtr, mean: FPtr, rstd: FPtr, inp: CFPtr, N: Int) {
        let p = params
        if config.arch == .gpt2 {
            layerNormForward(
                out: out, mean: mean, rstd: rstd, inp: inp, weight: p[layout.normFW], bias: p[layout.normFB!],
                N: N, C: config.dModel, eps: config.normEps, pool: pool)
        } else {
            rmsNormForward(
                out: out, rrms: rstd, inp: inp, weight: p[layout.normFW], N: N, C: config.dModel,
                eps: config.normEps, pool: pool)
        }
    }

    func norm(out: FPtr, mean: FPtr, rstd: FPtr, inp: CFPtr, w: Int, b: Int?, N: Int) {
        let p = params
        if let b {
            layerNormForward(
                out: out, mean: mean, rstd: rstd, inp: inp, weight: p[w], bias: p[b], N: N,
                C: config.dModel, eps: config.normEps, pool: pool)
        } else {
            rmsNormForward(
                out: out, rrms: rstd, inp: inp, weight: p[w], N: N, C: config.dModel, eps: config.normEps,
                pool: pool)
        }
    }

    /// One block application: res2 = x + attn(norm1(x)); out = res2 + mlp(norm2(res2)).
    func blockForward(
        _ P: PositionActs, input x: CFPtr, block s: BlockSlots, B: Int, T: Int,
        positions: UnsafePointer<Int32>, v: Int = 0
    ) {
        let cfg = config, N = B * T, C = cfg.dModel, a = acts!, p = params
        norm(out: a[P.ln1], mean: a[P.ln1Mean], rstd: a[P.ln1Rstd], inp: x, w: s.norm1W, b: s.norm1B, N: N)
        linearForward(
            out: a[P.qkv], inp: a[P.ln1], weight: p[s.qkvW], bias: s.qkvB.map { p[$0] }, M: N, C: C,
            OC: cfg.qkvWidth, pool: pool)
        if let rope {
            ropeApply(
                qkv: a[P.qkv], positions: positions, table: rope, N: N, NH: cfg.heads, KVH: cfg.kvHeads,
                HS: cfg.headSize, inverse: false, pool: pool)
        }
        startBuf.withUnsafeBufferPointer { st in
            attentionForward(
                out: a[P.atty], att: a[P.att], qkv: a[P.qkv], B: B, T: T, NH: cfg.heads, KVH: cfg.kvHeads,
                HS: cfg.headSize, pool: pool, starts: st.isEmpty ? nil : st.baseAddress)
        }
        linearForward(
            out: a[P.res2], inp: a[P.atty], weight: p[s.projW], bias: s.projB.map { p[$0] }, M: N, C: C,
            OC: C, pool: pool)
        site(.attnOut, v, a[P.res2], B: B, T: T, positions: positions)
        addInPlace(a[P.res2], x, N * C)
        norm(out: a[P.ln2], mean: a[P.ln2Mean], rstd: a[P.ln2Rstd], inp: a[P.res2], w: s.norm2W, b: s.norm2B, N: N)
        mlpForward(P, block: s, N: N)
        site(.mlpOut, v, a[P.resOut], B: B, T: T, positions: positions)
        addInPlace(a[P.resOut], a[P.res2], N * C)
    }

    func mlpForward(_ P: PositionActs, block s: BlockSlots, N: Int) {
        let cfg = config, C = cfg.dModel, a = acts!, p = params
        linearForward(
            out: a[P.fch], inp: a[P.ln2], weight: p[s.fcW], bias: s.fcB.map { p[$0] }, M: N, C: C,
            OC: cfg.fcWidth, pool: pool)
        if cfg.arch == .gpt2 {
            geluForward(out: a[P.fchAct], inp: a[P.fch], N: N * cfg.ffnHidden, pool: pool, tanhCache: a[P.geluTanh])
        } else {
            swigluForward(out: a[P.fchAct], inp: a[P.fch], M: N, F: cfg.ffnHidden, pool: pool)
        }
        linearForward(
            out: a[P.resOut], inp: a[P.fchAct], weight: p[s.fcProjW], bias: s.fcProjB.map { p[$0] }, M: N,
            C: cfg.ffnHidden, OC: C, pool: pool)
    }

    /// out += x, the residual connection (the residual kernel with its output aliasing an input).
    func addInPlace(_ out: FPtr, _ x: CFPtr, _ n: Int) {
        residualForward(out: out, a: out, b: x, N: n, pool: pool)
    }

    /// The logits of the last forward pass without targets (B*T rows of V; probabilities after
    /// a forward with targets), valid until the next forward.
    public var logitsBuffer: UnsafePointer<Float> { UnsafePointer(acts![actLayout!.logits]) }

    /// Logits (or, after a forward with targets, probabilities) of row n = b*T + t.
    public func logits(row n: Int) -> [Float] {
        acts!.array(actLayout!.logits + n * config.vocab, config.vocab)
    }

    // MARK: backward

    /// Adds the gradient of the last forward's mean loss to `grads` (call `zeroGrads` first).
    public func backward() {
        let L = actLayout!, a = acts!
        let N = L.B * L.T, V = config.vocab
        require(targetBuf.count == N, "backward needs a forward pass with targets")
        targetBuf.withUnsafeBufferPointer { t in
            crossEntropyBackward(
                dlogits: a[L.logits], probs: a[L.logits], targets: t.baseAddress!,
                scale: lastCount > 0 ? 1 / Float(lastCount) : 0, N: N, V: V, pool: pool)
        }
        backwardFromLogitGradient()
    }

    /// After a forward pass without targets: `loss` reads the logits (N = B*T rows of V) and
    /// overwrites them with the gradient of its scalar loss with respect to them; the gradient of
    /// the parameters is then added to `grads` (call `zeroGrads` first). Any loss of the logits
    /// trains this way (distillation among them); `backward` is the cross-entropy case.
    @discardableResult
    public func backward(loss: (_ logits: FPtr, _ N: Int, _ V: Int) throws -> Float) rethrows -> Float {
        let L = actLayout!
        let value = try loss(acts![L.logits], L.B * L.T, config.vocab)
        backwardFromLogitGradient()
        return value
    }

    /// The final normalised hidden states of the last forward pass (B*T rows of C): the input of
    /// the LM head, and of a value head (a process reward model's scores). Valid until the next
    /// forward or backward.
    public var hiddenBuffer: UnsafePointer<Float> { UnsafePointer(acts![actLayout!.lnf]) }

    /// After a forward pass without targets, the gradient of a loss of the final hidden states
    /// (`hidden` reads them, N rows of C, and adds the gradient of its scalar loss into the second
    /// buffer, which holds 0s or the LM head's gradient) plus, when `logits` is given, of a loss of
    /// the logits as in `backward(loss:)`; the gradient of the parameters of the sum is added to
    /// `grads` (call `zeroGrads` first). Returns the two losses summed. A process reward model
    /// trains its value head this way, with or without keeping its language-model loss.
    @discardableResult
    public func backward(
        logits: ((_ logits: FPtr, _ N: Int, _ V: Int) throws -> Float)?,
        hidden: (_ hidden: UnsafePointer<Float>, _ dhidden: FPtr, _ N: Int, _ C: Int) throws -> Float
    ) throws -> Float {
        let L = actLayout!, a = acts!
        let N = L.B * L.T, C = config.dModel
        var value: Float = 0
        if let logits {
            value += try logits(a[L.logits], N, config.vocab)
            headBackward()
        } else {
            a.zero(L.dln, N * C)
        }
        value += try hidden(UnsafePointer(a[L.lnf]), a[L.dln], N, C)
        trunkBackward()
        return value
    }

    /// Backpropagates the gradient that the logits buffer holds.
    func backwardFromLogitGradient() {
        headBackward()
        trunkBackward()
    }

    /// Backward from the gradient of the final hidden states (dln) through the final norm, the
    /// schedule and the embeddings.
    func trunkBackward() {
        let cfg = config, L = actLayout!, a = acts!, g = grads
        let B = L.B, T = L.T, N = B * T, C = cfg.dModel
        a.zero(L.dres, N * C)
        let last = schedule.isEmpty ? a[L.res0] : a[L.positions[schedule.count - 1].resOut]
        normBackward(
            dinp: a[L.dres], dout: a[L.dln], inp: last, mean: a[L.lnfMean], rstd: a[L.lnfRstd],
            w: layout.normFW, b: layout.normFB, N: N)
        for v in stride(from: schedule.count - 1, through: 0, by: -1) {
            let input = v == 0 ? a[L.res0] : a[L.positions[v - 1].resOut]
            blockBackward(L.positions[v], input: input, block: layout.blocks[schedule[v]], B: B, T: T)
        }
        tokenBuf.withUnsafeBufferPointer { tok in
            positionBuf.withUnsafeBufferPointer { pos in
                embeddingBackward(
                    dwte: g[layout.wte], dwpe: layout.wpe.map { g[$0] }, dout: a[L.dres],
                    tokens: tok.baseAddress!, positions: pos.baseAddress!, N: N, C: C)
            }
        }
    }

    func normBackward(dinp: FPtr, dout: CFPtr, inp: CFPtr, mean: CFPtr, rstd: CFPtr, w: Int, b: Int?, N: Int) {
        let g = grads, p = params
        if let b {
            layerNormBackward(
                dinp: dinp, dweight: g[w], dbias: g[b], dout: dout, inp: inp, weight: p[w], mean: mean,
                rstd: rstd, N: N, C: config.dModel, pool: pool)
        } else {
            rmsNormBackward(
                dinp: dinp, dweight: g[w], dout: dout, inp: inp, weight: p[w], rrms: rstd, N: N,
                C: config.dModel, pool: pool)
        }
    }

    /// Backward of one block application. On entry dres holds d(out); on exit d(input).
    func blockBackward(_ P: PositionActs, input x: CFPtr, block s: BlockSlots, B: Int, T: Int) {
        let cfg = config, L = actLayout!, a = acts!, g = grads, p = params
        let N = B * T, C = cfg.dModel, F = cfg.ffnHidden
        // MLP branch
        linearBackward(
            dinp: a[L.dfchAct], dweight: g[s.fcProjW], dbias: s.fcProjB.map { g[$0] }, dout: a[L.dres],
            inp: a[P.fchAct], weight: p[s.fcProjW], M: N, C: F, OC: C, pool: pool, overwriteInput: true)
        if cfg.arch == .gpt2 {
            geluBackward(
                dinp: a[L.dfch], inp: a[P.fch], cached: a[P.geluTanh], dout: a[L.dfchAct], N: N * F, pool: pool,
                overwrite: true)
        } else {
            swigluBackward(
                dinp: a[L.dfch], inp: a[P.fch], dout: a[L.dfchAct], M: N, F: F, pool: pool, overwrite: true)
        }
        linearBackward(
            dinp: a[L.dln], dweight: g[s.fcW], dbias: s.fcB.map { g[$0] }, dout: a[L.dfch], inp: a[P.ln2],
            weight: p[s.fcW], M: N, C: C, OC: cfg.fcWidth, pool: pool, overwriteInput: true)
        normBackward(
            dinp: a[L.dres], dout: a[L.dln], inp: a[P.res2], mean: a[P.ln2Mean], rstd: a[P.ln2Rstd],
            w: s.norm2W, b: s.norm2B, N: N)
        // attention branch
        linearBackward(
            dinp: a[L.datty], dweight: g[s.projW], dbias: s.projB.map { g[$0] }, dout: a[L.dres],
            inp: a[P.atty], weight: p[s.projW], M: N, C: C, OC: C, pool: pool, overwriteInput: true)
        attentionBackward(
            dqkv: a[L.dqkv], dout: a[L.datty], qkv: a[P.qkv], att: a[P.att], B: B, T: T, NH: cfg.heads,
            KVH: cfg.kvHeads, HS: cfg.headSize, pool: pool, overwrite: true)
        if let rope {
            positionBuf.withUnsafeBufferPointer { pos in
                ropeApply(
                    qkv: a[L.dqkv], positions: pos.baseAddress!, table: rope, N: N, NH: cfg.heads,
                    KVH: cfg.kvHeads, HS: cfg.headSize, inverse: true, pool: pool)
            }
        }
        linearBackward(
            dinp: a[L.dln], dweight: g[s.qkvW], dbias: s.qkvB.map { g[$0] }, dout: a[L.dqkv],
            inp: a[P.ln1], weight: p[s.qkvW], M: N, C: C, OC: cfg.qkvWidth, pool: pool, overwriteInput: true)
        normBackward(
            dinp: a[L.dres], dout: a[L.dln], inp: x, mean: a[P.ln1Mean], rstd: a[P.ln1Rstd], w: s.norm1W,
            b: s.norm1B, N: N)
    }
}

/// A token id outside the model's vocabulary.
public struct TokenError: Error, CustomStringConvertible, Equatable, Sendable {
    public let token: Int32
    public let vocab: Int
    public init(token: Int32, vocab: Int) {
        self.token = token
        self.vocab = vocab
    }
    public var description: String { "token \(token) is outside the vocabulary 0..<\(vocab)" }
}
