// Reference.swift: naive Double-precision kernels, the ground truth for the fast ones.
//
// Each function is the textbook formula with plain loops, no BLAS, no threads, no caching
// tricks. Tests compare the fast Float kernels against these, and check these against finite
// differences, so a wrong derivation cannot hide in both places at once.

#if canImport(Glibc)
    import Glibc
#endif

public enum Reference {
    // MARK: embedding

    public static func embedding(tokens: [Int], positions: [Int], wte: [Double], wpe: [Double]?, C: Int) -> [Double] {
        var out = [Double](repeating: 0, count: tokens.count * C)
        for n in 0..<tokens.count {
            for c in 0..<C {
                out[n * C + c] = wte[tokens[n] * C + c] + (wpe.map { $0[positions[n] * C + c] } ?? 0)
            }
        }
        return out
    }

    public static func embeddingBackward(
        dout: [Double], tokens: [Int], positions: [Int], V: Int, P: Int, C: Int
    ) -> (dwte: [Double], dwpe: [Double]) {
        var dwte = [Double](repeating: 0, count: V * C), dwpe = [Double](repeating: 0, count: P * C)
        for n in 0..<tokens.count {
            for c in 0..<C {
                dwte[tokens[n] * C + c] += dout[n * C + c]
                dwpe[positions[n] * C + c] += dout[n * C + c]
            }
        }
        return (dwte, dwpe)
    }

    // MARK: norms

    public static func layerNorm(_ x: [Double], w: [Double], b: [Double], C: Int, eps: Double) -> [Double] {
        var out = x
        for n in 0..<(x.count / C) {
            let row = Array(x[(n * C)..<((n + 1) * C)])
            let m = row.reduce(0, +) / Double(C)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C)
            for c in 0..<C { out[n * C + c] = (row[c] - m) / (v + eps).squareRoot() * w[c] + b[c] }
        }
        return out
    }

    public static func layerNormBackward(
        dout: [Double], x: [Double], w: [Double], C: Int, eps: Double
    ) -> (dx: [Double], dw: [Double], db: [Double]) {
        var dx = x, dw = [Double](repeating: 0, count: C), db = dw
        for n in 0..<(x.count / C) {
            let row = Array(x[(n * C)..<((n + 1) * C)]), g = Array(dout[(n * C)..<((n + 1) * C)])
            let m = row.reduce(0, +) / Double(C)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(C)
            let r = 1 / (v + eps).squareRoot()
            let norm = row.map { ($0 - m) * r }
            let dnorm = (0..<C).map { w[$0] * g[$0] }
            let a = dnorm.reduce(0, +) / Double(C)
            let bb = (0..<C).map { dnorm[$0] * norm[$0] }.reduce(0, +) / Double(C)
            for c in 0..<C {
                dx[n * C + c] = (dnorm[c] - a - norm[c] * bb) * r
                dw[c] += norm[c] * g[c]
                db[c] += g[c]
            }
        }
        return (dx, dw, db)
    }

    public static func rmsNorm(_ x: [Double], w: [Double], C: Int, eps: Double) -> [Double] {
        var out = x
        for n in 0..<(x.count / C) {
            let ms = (0..<C).map { x[n * C + $0] * x[n * C + $0] }.reduce(0, +) / Double(C)
            let r = 1 / (ms + eps).squareRoot()
            for c in 0..<C { out[n * C + c] = x[n * C + c] * r * w[c] }
        }
        return out
    }

    public static func rmsNormBackward(dout: [Double], x: [Double], w: [Double], C: Int, eps: Double) -> (
        dx: [Double], dw: [Double]
    ) {
        var dx = x, dw = [Double](repeating: 0, count: C)
        for n in 0..<(x.count / C) {
            let ms = (0..<C).map { x[n * C + $0] * x[n * C + $0] }.reduce(0, +) / Double(C)
            let r = 1 / (ms + eps).squareRoot()
            var dot = 0.0
            for c in 0..<C { dot += w[c] * dout[n * C + c] * x[n * C + c] * r }
            dot /= Double(C)
            for c in 0..<C {
                let norm = x[n * C + c] * r
                dx[n * C + c] = r * (w[c] * dout[n * C + c] - norm * dot)
                dw[c] += norm * dout[n * C + c]
            }
        }
        return (dx, dw)
    }

    // MARK: linear

    /// out (M,OC) = x (M,C) W(OC,C)^T + b.
    public static func linear(_ x: [Double], w: [Double], b: [Double]?, M: Int, C: Int, OC: Int) -> [Double] {
        var out = [Double](repeating: 0, count: M * OC)
        for m in 0..<M {
            for o in 0..<OC {
                var s = b?[o] ?? 0
                for c in 0..<C { s += x[m * C + c] * w[o * C + c] }
                out[m * OC + o] = s
            }
        }
        return out
    }

    public static func linearBackward(
        dout: [Double], x: [Double], w: [Double], M: Int, C: Int, OC: Int
    ) -> (dx: [Double], dw: [Double], db: [Double]) {
        var dx = [Double](repeating: 0, count: M * C), dw = [Double](repeating: 0, count: OC * C)
        var db = [Double](repeating: 0, count: OC)
        for m in 0..<M {
            for o in 0..<OC {
                let g = dout[m * OC + o]
                db[o] += g
                for c in 0..<C {
                    dx[m * C + c] += g * w[o * C + c]
                    dw[o * C + c] += g * x[m * C + c]
                }
            }
        }
        return (dx, dw, db)
    }

    // MARK: attention

    /// Causal GQA attention on qkv (B,T,(NH+2KVH)HS); returns out (B,T,NH*HS). With `starts`
    /// (B*T), token t of row b attends to positions starts[b*T+t]...t only.
    public static func attention(
        _ qkv: [Double], B: Int, T: Int, NH: Int, KVH: Int, HS: Int,
        starts: [Int]? = nil
    ) -> [Double] {
        let QKV = (NH + 2 * KVH) * HS, C = NH * HS, group = NH / KVH
        var out = [Double](repeating: 0, count: B * T * C)
        for b in 0..<B {
            for h in 0..<NH {
                let kvh = h / group
                for t in 0..<T {
                    let first = starts?[b * T + t] ?? 0
                    var s = [Double](repeating: -Double.infinity, count: t + 1)
                    for j in first...t {
                        s[j] = 0
                        for d in 0..<HS {
                            s[j] += qkv[(b * T + t) * QKV + h * HS + d] * qkv[(b * T + j) * QKV + (NH + kvh) * HS + d]
                        }
                        s[j] /= Double(HS).squareRoot()
                    }
                    let mx = s.max()!
                    let e = s.map { exp($0 - mx) }
                    let z = e.reduce(0, +)
                    for j in 0...t {
                        for d in 0..<HS {
                            out[(b * T + t) * C + h * HS + d] +=
                                e[j] / z * qkv[(b * T + j) * QKV + (NH + KVH + kvh) * HS + d]
                        }
                    }
                }
            }
        }
        return out
    }

    /// Rotate-half RoPE on the query and key heads of qkv, positions per token.
    public static func rope(_ qkv: [Double], positions: [Int], NH: Int, KVH: Int, HS: Int, theta: Double) -> [Double] {
        let QKV = (NH + 2 * KVH) * HS, half = HS / 2
        var out = qkv
        for n in 0..<positions.count {
            for head in 0..<(NH + KVH) {
                for i in 0..<half {
                    let invFreq = 1 / pow(theta, Double(2 * i) / Double(HS))
                    let ang = Double(positions[n]) * invFreq
                    let a = qkv[n * QKV + head * HS + i], b = qkv[n * QKV + head * HS + i + half]
                    out[n * QKV + head * HS + i] = a * cos(ang) - b * sin(ang)
                    out[n * QKV + head * HS + i + half] = b * cos(ang) + a * sin(ang)
                }
            }
        }
        return out
    }

    // MARK: activations

    public static func gelu(_ x: [Double]) -> [Double] {
        x.map { 0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
    }

    public static func geluGrad(_ x: [Double]) -> [Double] {
        let s = (2 / Double.pi).squareRoot()
        return x.map { x in
            let t = tanh(s * (x + 0.044715 * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * s * (1 + 3 * 0.044715 * x * x)
        }
    }

    public static func swiglu(_ x: [Double], M: Int, F: Int) -> [Double] {
        var out = [Double](repeating: 0, count: M * F)
        for m in 0..<M {
            for i in 0..<F {
                let g = x[m * 2 * F + i], u = x[m * 2 * F + F + i]
                out[m * F + i] = g / (1 + exp(-g)) * u
            }
        }
        return out
    }

    // MARK: loss

    /// Mean cross-entropy over positions whose target is >= 0.
    public static func crossEntropy(logits: [Double], targets: [Int], V: Int) -> Double {
        var sum = 0.0, count = 0
        for n in 0..<targets.count where targets[n] >= 0 {
            let row = Array(logits[(n * V)..<((n + 1) * V)])
            let mx = row.max()!
            let lse = log(row.map { exp($0 - mx) }.reduce(0, +)) + mx
            sum += lse - row[targets[n]]
            count += 1
        }
        return count > 0 ? sum / Double(count) : 0
    }

    /// The mean distillation loss over counted positions (Distillation.swift), written from the
    /// definitions: softmax, KL and the mixture computed directly, no fused gradient.
    public static func distillation(
        _ kind: DistillationLoss, student: [Double], teacher: [Double], targets: [Int], V: Int
    ) -> Double {
        func softmax(_ x: [Double], _ T: Double = 1) -> [Double] {
            let m = x.map { $0 / T }.max()!
            let e = x.map { exp($0 / T - m) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
        func kl(_ a: [Double], _ b: [Double]) -> Double {
            zip(a, b).map { $0 > 0 ? $0 * log($0 / $1) : 0 }.reduce(0, +)
        }
        var sum = 0.0, count = 0
        for n in 0..<targets.count where targets[n] >= 0 {
            let zs = Array(student[(n * V)..<((n + 1) * V)]), zt = Array(teacher[(n * V)..<((n + 1) * V)])
            let p = softmax(zs), q = softmax(zt), y = targets[n]
            let ce = -log(p[y])
            switch kind {
            case .ce:
                sum += ce
            case let .kdForward(T, lambda):
                sum += (1 - lambda) * ce + lambda * T * T * kl(softmax(zt, T), softmax(zs, T))
            case let .kdReverse(T, lambda):
                sum += (1 - lambda) * ce + lambda * T * T * kl(softmax(zs, T), softmax(zt, T))
            case let .jsd(beta):
                if beta == 0 {
                    sum += kl(q, p)
                } else if beta == 1 {
                    sum += kl(p, q)
                } else {
                    let m = zip(q, p).map { beta * $0 + (1 - beta) * $1 }
                    sum += beta * kl(q, m) + (1 - beta) * kl(p, m)
                }
            case .topK, .sampledK:
                var support: [Int] = []
                if case let .topK(k) = kind {
                    let order = (0..<V).sorted { zt[$0] > zt[$1] || (zt[$0] == zt[$1] && $0 < $1) }
                    support = Array(order.prefix(min(max(k, 1), V)))
                } else if case let .sampledK(k, seed) = kind {
                    // The draw is data here (the same helper); the loss over it is what is checked.
                    support = zt.map(Float.init).withUnsafeBufferPointer {
                        sampledSupport($0.baseAddress!, V, k, seed: seed, row: n)
                    }
                }
                let qs = support.map { q[$0] }, ps = support.map { p[$0] }
                let qn = qs.reduce(0, +), pn = ps.reduce(0, +)
                sum += -zip(qs, ps).map { ($0 / qn) * log($1 / pn) }.reduce(0, +)
            case .logitMSE:
                let ms = zs.reduce(0, +) / Double(V), mt = zt.reduce(0, +) / Double(V)
                sum += zip(zs, zt).map { (($0 - ms) - ($1 - mt)) * (($0 - ms) - ($1 - mt)) }.reduce(0, +)
            }
            count += 1
        }
        return count > 0 ? sum / Double(count) : 0
    }

    public static func crossEntropyBackward(logits: [Double], targets: [Int], V: Int) -> [Double] {
        var d = [Double](repeating: 0, count: logits.count)
        let count = Double(targets.filter { $0 >= 0 }.count)
        for n in 0..<targets.count where targets[n] >= 0 {
            let row = Array(logits[(n * V)..<((n + 1) * V)])
            let mx = row.max()!
            let e = row.map { exp($0 - mx) }
            let z = e.reduce(0, +)
            for v in 0..<V { d[n * V + v] = (e[v] / z - (v == targets[n] ? 1 : 0)) / count }
        }
        return d
    }

    // MARK: optimizer

    /// One AdamW step in Double; returns the new (params, m, v).
    public static func adamW(
        params: [Double], grads: [Double], m: [Double], v: [Double], lr: Double, t: Int,
        beta1: Double, beta2: Double, eps: Double, weightDecay: Double
    ) -> ([Double], [Double], [Double]) {
        var p = params, mm = m, vv = v
        for i in 0..<p.count {
            mm[i] = beta1 * m[i] + (1 - beta1) * grads[i]
            vv[i] = beta2 * v[i] + (1 - beta2) * grads[i] * grads[i]
            let mh = mm[i] / (1 - pow(beta1, Double(t))), vh = vv[i] / (1 - pow(beta2, Double(t)))
            p[i] -= lr * (mh / (vh.squareRoot() + eps) + weightDecay * params[i])
        }
        return (p, mm, vv)
    }
}
