// Sampling.swift: batched autoregressive sampling with a KV cache.
//
// The cache has one entry per *schedule position*, never per physical block: a reused block sees
// different inputs at each visit, so its keys and values differ per visit. Sequences of one batch
// may have prompts of different lengths; each decodes at its own position.

import VLDTensor

/// Keys and values of every schedule position for a batch of sequences.
public final class KVCache {
    public let batch: Int
    /// Maximum tokens per sequence (prompt + generated), at most the model context.
    public let capacity: Int
    /// Tokens held per sequence.
    public internal(set) var lengths: [Int32]
    let keys: [FloatBuffer]
    let values: [FloatBuffer]
    // decode scratch, (B, ...) each
    let x: FloatBuffer, ln: FloatBuffer, qkv: FloatBuffer, atty: FloatBuffer, res2: FloatBuffer
    let fch: FloatBuffer, fchAct: FloatBuffer, stats: FloatBuffer, logits: FloatBuffer
    /// A rank or wide head's inner activations (B x headWidth; empty for a full head).
    let headPre: FloatBuffer, headAct: FloatBuffer

    public init(model: Transformer, batch: Int, capacity: Int) {
        let cfg = model.config
        require(capacity >= 1 && capacity <= cfg.context, "KV cache capacity must be within the model context")
        self.batch = batch
        self.capacity = capacity
        lengths = Array(repeating: 0, count: batch)
        let per = batch * cfg.kvHeads * capacity * cfg.headSize
        keys = model.schedule.map { _ in FloatBuffer(count: per) }
        values = model.schedule.map { _ in FloatBuffer(count: per) }
        x = FloatBuffer(count: batch * cfg.dModel)
        ln = FloatBuffer(count: batch * cfg.dModel)
        qkv = FloatBuffer(count: batch * cfg.qkvWidth)
        atty = FloatBuffer(count: batch * cfg.dModel)
        res2 = FloatBuffer(count: batch * cfg.dModel)
        fch = FloatBuffer(count: batch * cfg.fcWidth)
        fchAct = FloatBuffer(count: batch * cfg.ffnHidden)
        stats = FloatBuffer(count: 2 * batch)
        logits = FloatBuffer(count: batch * cfg.vocab)
        let inner = cfg.head == .full ? 1 : batch * cfg.headWidth
        headPre = FloatBuffer(count: inner)
        headAct = FloatBuffer(count: inner)
    }

    /// Makes row `to` a copy of row `from`: the same tokens held, the same keys and values at every
    /// schedule position. Search forks a candidate this way: beam search and DVTS expand children
    /// from their parent's cached prefix instead of recomputing it.
    public func copyRow(from: Int, to: Int) {
        require(from >= 0 && from < batch && to >= 0 && to < batch, "cache rows are 0..<\(batch)")
        guard from != to else { return }
        for v in keys.indices {
            // Row b is one contiguous slab: kvHeads x capacity x headSize.
            let row = keys[v].count / batch
            keys[v][to * row].update(from: keys[v][from * row], count: row)
            values[v][to * row].update(from: values[v][from * row], count: row)
        }
        lengths[to] = lengths[from]
    }
}

extension Transformer {
    /// Runs the prompts through the model, fills `cache` (which must be empty) and returns the
    /// next-token logits of each sequence (B rows of V). Prompts of equal length run as one
    /// batch; otherwise each runs on its own.
    public func prefill(prompts: [[Int32]], cache: KVCache) throws -> [[Float]] {
        require(prompts.count == cache.batch, "one prompt per cache row")
        require(prompts.allSatisfy { !$0.isEmpty && $0.count <= cache.capacity }, "prompt length out of range")
        for prompt in prompts { try checkTokens(prompt) }
        if Set(prompts.map(\.count)).count == 1 {
            return prefillRows(prompts, rows: Array(0..<prompts.count), cache: cache)
        }
        return prompts.indices.flatMap { b in prefillRows([prompts[b]], rows: [b], cache: cache) }
    }

    /// Runs one prompt into row `row` of `cache` (its other rows untouched) and returns the
    /// next-token logits: the start of a search, whose other rows are forks of this one.
    public func prefill(_ prompt: [Int32], row: Int, cache: KVCache) throws -> [Float] {
        require(row >= 0 && row < cache.batch, "cache rows are 0..<\(cache.batch)")
        require(!prompt.isEmpty && prompt.count <= cache.capacity, "prompt length out of range")
        try checkTokens(prompt)
        return prefillRows([prompt], rows: [row], cache: cache)[0]
    }

    func prefillRows(_ prompts: [[Int32]], rows: [Int], cache: KVCache) -> [[Float]] {
        let cfg = config, B = prompts.count, T = prompts[0].count
        ensureActivations(B: B, T: T)
        tokenBuf = prompts.flatMap { $0 }
        setPositions(B: B, T: T, segments: nil)
        _ = runForward(B: B, T: T, targets: nil)
        let a = acts!, L = actLayout!, QKV = cfg.qkvWidth, HS = cfg.headSize, S = cache.capacity
        for v in 0..<schedule.count {
            let qkv = a[L.positions[v].qkv]
            for (i, b) in rows.enumerated() {
                for t in 0..<T {
                    for kvh in 0..<cfg.kvHeads {
                        let src = qkv + (i * T + t) * QKV
                        let dst = ((b * cfg.kvHeads + kvh) * S + t) * HS
                        cache.keys[v][dst].update(from: src + (cfg.heads + kvh) * HS, count: HS)
                        cache.values[v][dst].update(from: src + (cfg.heads + cfg.kvHeads + kvh) * HS, count: HS)
                    }
                }
                cache.lengths[b] = Int32(T)
            }
        }
        return (0..<B).map { i in logits(row: i * T + T - 1) }
    }

    /// Appends one token per sequence and returns the next-token logits (B rows of V, flat; valid
    /// until the next call). A sequence whose cache is already full is not extended: its row is
    /// computed at its last position and should be ignored (`generate` has stopped it). With
    /// `advancing`, only those rows take their token and only they are computed (packed into the
    /// first rows of the work buffers, their results moved back to their own rows afterwards):
    /// the other rows' logits and hidden states are left as they were and should be ignored, and
    /// their lengths stay. A search whose candidates end at different times pays only for the
    /// ones still writing.
    public func decode(tokens: [Int32], cache: KVCache, advancing: [Bool]? = nil) throws -> UnsafeBufferPointer<Float> {
        let cfg = config, B = cache.batch, C = cfg.dModel, S = cache.capacity, V = cfg.vocab
        require(tokens.count == B, "one token per sequence")
        require(advancing.map { $0.count == B } ?? true, "one advancing flag per sequence")
        let rows: [Int32] = (0..<B).filter { advancing?[$0] ?? true }.map(Int32.init)
        let active = rows.map { tokens[Int($0)] }
        try checkTokens(active)
        let n = rows.count
        if n == 0 { return UnsafeBufferPointer(start: cache.logits.base, count: B * V) }
        let clamped = rows.map { min(cache.lengths[Int($0)], Int32(S - 1)) }
        // A step of few rows through a small model is shorter than a fork-join of the pool costs:
        // it runs on the caller, with the same partition (so the same numbers).
        if n * config.appliedMatrixParams < Transformer.serialDecodeMultiplyAdds {
            pool.serially { decodeRows(rows: rows, active: active, clamped: clamped, cache: cache) }
        } else {
            decodeRows(rows: rows, active: active, clamped: clamped, cache: cache)
        }
        // Packed row i belongs to cache row rows[i] >= i: moved from the last down, nothing is
        // overwritten before it is read.
        for i in stride(from: n - 1, through: 0, by: -1) where Int(rows[i]) != i {
            let r = Int(rows[i])
            cache.logits[r * V].update(from: cache.logits[i * V], count: V)
            cache.ln[r * C].update(from: cache.ln[i * C], count: C)
        }
        for r in rows where Int(cache.lengths[Int(r)]) < S { cache.lengths[Int(r)] += 1 }
        return UnsafeBufferPointer(start: cache.logits.base, count: B * V)
    }

    /// Below this many multiply-adds of weight matrices per decoding step, the step runs on the
    /// calling thread alone (vld-bench on the 2-core development machine: `small`, 0.84M per row,
    /// sampled 1.2x faster at batch 1 on one thread than on two; `medium`, 4.9M, faster on two).
    public static let serialDecodeMultiplyAdds = 2_000_000

    private func decodeRows(rows: [Int32], active: [Int32], clamped: [Int32], cache: KVCache) {
        let cfg = config, B = cache.batch, C = cfg.dModel, n = rows.count
        let p = params
        active.withUnsafeBufferPointer { tok in
            clamped.withUnsafeBufferPointer { lens in
                rows.withUnsafeBufferPointer { map in
                    let pos = lens.baseAddress!
                    embeddingForward(
                        out: cache.x.base, tokens: tok.baseAddress!, positions: pos, wte: p[layout.wte],
                        wpe: layout.wpe.map { p[$0] }, N: n, C: C, pool: pool)
                    for (v, l) in schedule.enumerated() {
                        site(.residPre, v, cache.x.base, B: n, T: 1, positions: pos, rows: map.baseAddress!)
                        decodeBlock(
                            v: v, block: layout.blocks[l], cache: cache, positions: pos, rows: map.baseAddress!, n: n)
                        site(.residPost, v, cache.x.base, B: n, T: 1, positions: pos, rows: map.baseAddress!)
                    }
                    let st = cache.stats
                    finalNorm(out: cache.ln.base, mean: st.base, rstd: st[B], inp: cache.x.base, N: n)
                    headForward(
                        logits: cache.logits.base, hidden: cache.ln.base, pre: cache.headPre.base,
                        act: cache.headAct.base, tanh: nil, N: n)
                }
            }
        }
    }

    /// One block application for `n` packed rows: packed row i is cache row rows[i] at position
    /// positions[i].
    func decodeBlock(
        v: Int, block s: BlockSlots, cache k: KVCache, positions: UnsafePointer<Int32>, rows: UnsafePointer<Int32>,
        n B: Int
    ) {
        let cfg = config, C = cfg.dModel, HS = cfg.headSize, QKV = cfg.qkvWidth, S = k.capacity
        let p = params, st = k.stats
        norm(out: k.ln.base, mean: st.base, rstd: st[B], inp: k.x.base, w: s.norm1W, b: s.norm1B, N: B)
        linearForward(
            out: k.qkv.base, inp: k.ln.base, weight: p[s.qkvW], bias: s.qkvB.map { p[$0] }, M: B, C: C,
            OC: QKV, pool: pool)
        if let rope {
            ropeApply(
                qkv: k.qkv.base, positions: positions, table: rope, N: B, NH: cfg.heads, KVH: cfg.kvHeads, HS: HS,
                inverse: false, pool: pool)
        }
        for b in 0..<B where Int(k.lengths[Int(rows[b])]) < S {
            let t = Int(positions[b]), r = Int(rows[b])
            for kvh in 0..<cfg.kvHeads {
                let src = k.qkv[b * QKV]
                let dst = ((r * cfg.kvHeads + kvh) * S + t) * HS
                k.keys[v][dst].update(from: src + (cfg.heads + kvh) * HS, count: HS)
                k.values[v][dst].update(from: src + (cfg.heads + cfg.kvHeads + kvh) * HS, count: HS)
            }
        }
        attentionDecode(
            out: k.atty.base, q: k.qkv.base, qStride: QKV, kCache: k.keys[v].base, vCache: k.values[v].base,
            lengths: positions, B: B, NH: cfg.heads, KVH: cfg.kvHeads, HS: HS, S: S, pool: pool, rows: rows)
        linearForward(
            out: k.res2.base, inp: k.atty.base, weight: p[s.projW], bias: s.projB.map { p[$0] }, M: B, C: C,
            OC: C, pool: pool)
        site(.attnOut, v, k.res2.base, B: B, T: 1, positions: positions, rows: rows)
        addInPlace(k.res2.base, k.x.base, B * C)
        norm(out: k.ln.base, mean: st.base, rstd: st[B], inp: k.res2.base, w: s.norm2W, b: s.norm2B, N: B)
        linearForward(
            out: k.fch.base, inp: k.ln.base, weight: p[s.fcW], bias: s.fcB.map { p[$0] }, M: B, C: C,
            OC: cfg.fcWidth, pool: pool)
        if cfg.arch == .gpt2 {
            geluForward(out: k.fchAct.base, inp: k.fch.base, N: B * cfg.ffnHidden, pool: pool)
        } else {
            swigluForward(out: k.fchAct.base, inp: k.fch.base, M: B, F: cfg.ffnHidden, pool: pool)
        }
        linearForward(
            out: k.x.base, inp: k.fchAct.base, weight: p[s.fcProjW], bias: s.fcProjB.map { p[$0] }, M: B,
            C: cfg.ffnHidden, OC: C, pool: pool)
        site(.mlpOut, v, k.x.base, B: B, T: 1, positions: positions, rows: rows)
        addInPlace(k.x.base, k.res2.base, B * C)
    }
}

/// How to choose each next token.
public struct SamplingOptions: Codable, Equatable, Sendable {
    public var maxNewTokens: Int
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens (0 = off).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    public var topP: Float
    /// Generation of a sequence ends after one of these; it is not included in the output.
    public var stopTokens: [Int32]

    public init(maxNewTokens: Int, temperature: Float = 1, topK: Int = 0, topP: Float = 1, stopTokens: [Int32] = []) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.stopTokens = stopTokens
    }

    public static func greedy(maxNewTokens: Int, stopTokens: [Int32] = []) -> SamplingOptions {
        SamplingOptions(maxNewTokens: maxNewTokens, temperature: 0, stopTokens: stopTokens)
    }
}

/// Chooses one token from a row of logits under `options`.
public func sampleToken(logits: UnsafeBufferPointer<Float>, options: SamplingOptions, rng: inout SeededRNG) -> Int32 {
    let V = logits.count
    if options.temperature <= 0 {
        var best = 0
        for i in 1..<V where logits[i] > logits[best] { best = i }
        return Int32(best)
    }
    if options.topK <= 0 || options.topK >= V, options.topP >= 1 {
        // Plain sampling: the weights come from one vectorised pass into a temporary buffer (no
        // heap allocation per token); the sum and the walk stay sequential in Double.
        let invT = 1 / options.temperature
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: V) { w -> Int32 in
            let k = Kernels.active, x = logits.baseAddress!
            k.scaledExp(w.baseAddress!, x, scale: invT, shift: k.max(x, V) * invT, V)
            var sum: Double = 0
            for i in 0..<V { sum += Double(w[i]) }
            var u = rng.nextDouble() * sum
            for i in 0..<V {
                u -= Double(w[i])
                if u < 0 { return Int32(i) }
            }
            return Int32(V - 1)
        }
    }
    var probs = [Float](repeating: 0, count: V)
    let invT = 1 / options.temperature
    var mx = -Float.infinity
    for i in 0..<V { probs[i] = logits[i] * invT; mx = max(mx, probs[i]) }
    var candidates = Array(0..<V)
    if options.topK > 0 && options.topK < V || options.topP < 1 {
        candidates.sort { probs[$0] > probs[$1] || (probs[$0] == probs[$1] && $0 < $1) }
        if options.topK > 0 && options.topK < V { candidates.removeLast(V - options.topK) }
    }
    var e = [Float](repeating: 0, count: V)
    Kernels.active.scaledExp(&e, logits.baseAddress!, scale: invT, shift: mx, V)
    var sum: Double = 0
    var weights = candidates.map { i -> Double in
        sum += Double(e[i])
        return Double(e[i])
    }
    if options.topP < 1 {
        var acc: Double = 0
        var keep = weights.count
        for (j, w) in weights.enumerated() {
            acc += w / sum
            if acc >= Double(options.topP) { keep = j + 1; break }
        }
        candidates.removeLast(candidates.count - keep)
        weights.removeLast(weights.count - keep)
        sum = weights.reduce(0, +)
    }
    var u = rng.nextDouble() * sum
    for (j, w) in weights.enumerated() {
        u -= w
        if u < 0 { return Int32(candidates[j]) }
    }
    return Int32(candidates[candidates.count - 1])
}

extension Transformer {
    /// Generates up to `options.maxNewTokens` tokens after each prompt, with one KV-cached batch.
    /// A sequence stops at a stop token or when the context is full (a prompt of P tokens gets
    /// at most context - P + 1 new ones: the last is predicted from position context - 1).
    /// Returns the new tokens of each sequence (stop token excluded).
    public func generate(prompts: [[Int32]], options: SamplingOptions, rng: inout SeededRNG) throws -> [[Int32]] {
        let B = prompts.count, V = config.vocab
        let capacity = min(config.context, (prompts.map(\.count).max() ?? 0) + options.maxNewTokens)
        let cache = KVCache(model: self, batch: B, capacity: capacity)
        let first = try prefill(prompts: prompts, cache: cache)
        var out = Array(repeating: [Int32](), count: B)
        var done = Array(repeating: options.maxNewTokens <= 0, count: B)
        var next = [Int32](repeating: 0, count: B)
        let stops = Set(options.stopTokens)
        func pick(_ b: Int, _ row: UnsafeBufferPointer<Float>) {
            let t = sampleToken(logits: row, options: options, rng: &rng)
            next[b] = t
            if stops.contains(t) { done[b] = true; return }
            out[b].append(t)
            if out[b].count >= options.maxNewTokens || Int(cache.lengths[b]) >= capacity { done[b] = true }
        }
        for b in 0..<B where !done[b] { first[b].withUnsafeBufferPointer { pick(b, $0) } }
        while done.contains(false) {
            // Finished sequences are not computed.
            let logits = try decode(tokens: next, cache: cache, advancing: done.map { !$0 })
            for b in 0..<B where !done[b] { pick(b, UnsafeBufferPointer(rebasing: logits[(b * V)..<((b + 1) * V)])) }
        }
        return out
    }
}
