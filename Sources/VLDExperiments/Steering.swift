// Steering.swift: steering vectors (issue 14, part 5; specs/phase.md 5(b)): the four direction
// builders, the intervention (add or project out, in one of four scales, at a chosen set of token
// positions) as a site hook on the model, and vectors saved as safetensors with their metadata.
//
//   diffMeans        mu+ - mu- (CAA, mass-mean of "The Geometry of Truth", ITI's default)
//   pairedDiffMeans  mean_i (h(x_i+) - h(x_i-)) over matched pairs (CAA)
//   pca              PC1 of the paired differences, centered, its sign fixed so that mu+ - mu-
//                    projects positively (RepE / repeng)
//   logistic         the weight vector of an L2-regularised logistic regression (ITI's probe option,
//                    GoT's LRProbe)
//
// Scales of alpha: raw (alpha v), unit (alpha v/|v|), sigma (alpha sigma v/|v|, sigma the standard
// deviation of the fitting activations' projections on v/|v|: ITI), residNorm (alpha times the
// mean norm of the residual stream at the site, along v/|v|: alpha is a fraction of the stream's
// size, comparable across widths). Positions: every token, the tokens from the last prompt token
// on (CAA: the last prompt token produces the first generated token), or the first `a` tokens
// (ActAdd's prompt front).

import Foundation
import VLDModel
import VLDTasks

public enum SteerMethod: String, Sendable, CaseIterable {
    case diffMeans, pairedDiffMeans, pca, logistic
}

public enum SteerScale: String, Sendable, CaseIterable {
    case raw, unit, sigma, residNorm
}

public enum SteerMode: String, Sendable, CaseIterable {
    case add, projectOut
}

/// Which token positions an intervention touches.
public enum SteerPositions: Equatable, Sendable {
    case all
    /// From the last prompt token on (that token produces the first generated one): CAA.
    case afterPrompt
    /// The first `a` tokens: ActAdd.
    case front(Int)

    public var description: String {
        switch self {
        case .all: return "all"
        case .afterPrompt: return "afterPrompt"
        case let .front(a): return "front(\(a))"
        }
    }

    public init?(parsing s: String) {
        switch s {
        case "all": self = .all
        case "afterPrompt": self = .afterPrompt
        default:
            guard s.hasPrefix("front("), s.hasSuffix(")"), let a = Int(s.dropFirst(6).dropLast()), a >= 1 else {
                return nil
            }
            self = .front(a)
        }
    }

    /// Whether absolute position `t` of a sequence whose prompt has `promptLength` tokens is steered.
    public func contains(_ t: Int, promptLength: Int) -> Bool {
        switch self {
        case .all: return true
        case .afterPrompt: return t >= promptLength - 1
        case let .front(a): return t < a
        }
    }
}

enum Steering {
    /// A direction from positive and negative activations (pairs: positive[i] with negative[i]).
    static func direction(
        _ method: SteerMethod, positive: [[Double]], negative: [[Double]], seed: UInt64 = 1
    ) -> [Double] {
        let diff = zip(PhaseStats.meanVector(positive), PhaseStats.meanVector(negative)).map { $0 - $1 }
        switch method {
        case .diffMeans:
            return diff
        case .pairedDiffMeans:
            let n = min(positive.count, negative.count)
            return PhaseStats.meanVector((0..<n).map { i in zip(positive[i], negative[i]).map { $0 - $1 } })
        case .pca:
            let n = min(positive.count, negative.count)
            let diffs = (0..<n).map { i in zip(positive[i], negative[i]).map { $0 - $1 } }
            var pc = firstComponent(diffs, seed: seed)
            if zip(pc, diff).reduce(0, { $0 + $1.0 * $1.1 }) < 0 { pc = pc.map { -$0 } }
            // On the scale of the mean difference's projection, so raw alphas compare.
            let size = abs(zip(pc, diff).reduce(0) { $0 + $1.0 * $1.1 })
            return pc.map { $0 * size }
        case .logistic:
            return logisticProbe(positive: positive, negative: negative)
        }
    }

    /// PC1 of the rows after centering, by power iteration (unit length).
    static func firstComponent(_ rows: [[Double]], seed: UInt64) -> [Double] {
        guard let width = rows.first?.count else { return [] }
        let mean = PhaseStats.meanVector(rows)
        let x = rows.map { zip($0, mean).map { $0 - $1 } }
        var rng = TaskRNG(seed: seed, stream: 0x9CA, index: 0)
        var v = (0..<width).map { _ in rng.unit() - 0.5 }
        for _ in 0..<200 {
            var next = [Double](repeating: 0, count: width)
            for row in x {
                let p = zip(row, v).reduce(0) { $0 + $1.0 * $1.1 }
                for j in 0..<width { next[j] += p * row[j] }
            }
            let norm = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0 else { return v }
            v = next.map { $0 / norm }
        }
        return v
    }

    /// Logistic regression (L2 1e-3, full-batch gradient descent on standardised inputs, 300
    /// steps); the weights mapped back to the raw activations' coordinates.
    static func logisticProbe(positive: [[Double]], negative: [[Double]]) -> [Double] {
        let rows = positive + negative
        guard let width = rows.first?.count else { return [] }
        let y = positive.map { _ in 1.0 } + negative.map { _ in 0.0 }
        let mean = PhaseStats.meanVector(rows)
        var sd = [Double](repeating: 0, count: width)
        for r in rows { for j in 0..<width { sd[j] += (r[j] - mean[j]) * (r[j] - mean[j]) } }
        sd = sd.map { max(($0 / Double(rows.count)).squareRoot(), 1e-8) }
        let x = rows.map { r in (0..<width).map { (r[$0] - mean[$0]) / sd[$0] } }
        var w = [Double](repeating: 0, count: width)
        var b = 0.0
        let n = Double(rows.count)
        for _ in 0..<300 {
            var gw = w.map { 1e-3 * $0 }
            var gb = 0.0
            for (i, r) in x.enumerated() {
                let z = b + zip(w, r).reduce(0) { $0 + $1.0 * $1.1 }
                let e = 1 / (1 + exp(-z)) - y[i]
                for j in 0..<width { gw[j] += e * r[j] / n }
                gb += e / n
            }
            for j in 0..<width { w[j] -= 0.5 * gw[j] }
            b -= 0.5 * gb
        }
        return (0..<width).map { w[$0] / sd[$0] }
    }

    static func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// The vector added per unit of alpha: v itself (raw), v/|v| (unit), sigma v/|v| (sigma, the
    /// standard deviation of `fit`'s projections on v/|v|), or the mean norm of `fit` along v/|v|
    /// (residNorm).
    static func unitOfAlpha(_ v: [Double], scale: SteerScale, fit: [[Double]]) -> [Double] {
        let n = norm(v)
        guard n > 0 else { return v }
        let u = v.map { $0 / n }
        switch scale {
        case .raw: return v
        case .unit: return u
        case .sigma:
            let p = fit.map { h in zip(h, u).reduce(0) { $0 + $1.0 * $1.1 } }
            let m = Stats.mean(p)
            let sd = (p.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(max(1, p.count - 1))).squareRoot()
            return u.map { $0 * sd }
        case .residNorm:
            let meanNorm = Stats.mean(fit.map(norm))
            return u.map { $0 * meanNorm }
        }
    }

    /// A site hook that steers schedule position `layer` at `site`: adds `vector` (add), or
    /// removes the component along it (projectOut), at the positions chosen. `promptLengths[s]`
    /// is sequence s's prompt length (afterPrompt).
    static func hook(
        site: SiteKind, layer: Int, vector: [Float], mode: SteerMode, positions: SteerPositions,
        promptLengths: @escaping (Int) -> Int
    ) -> (ActivationSite) -> Void {
        let C = vector.count
        let normSquared = vector.reduce(0) { $0 + $1 * $1 }
        return { s in
            guard s.kind == site, s.position == layer else { return }
            precondition(s.C == C, "a steering vector of width \(C) on a model of width \(s.C)")
            for n in 0..<(s.B * s.T) {
                let t = Int(s.tokenPositions[n])
                guard positions.contains(t, promptLength: promptLengths(s.sequence(n))) else { continue }
                let h = s.hidden + n * C
                switch mode {
                case .add:
                    for c in 0..<C { h[c] += vector[c] }
                case .projectOut:
                    guard normSquared > 0 else { continue }
                    var dot: Float = 0
                    for c in 0..<C { dot += h[c] * vector[c] }
                    let k = dot / normSquared
                    for c in 0..<C { h[c] -= k * vector[c] }
                }
            }
        }
    }

    /// Saves vectors (name -> values) with their metadata as one safetensors file, written
    /// atomically.
    static func save(_ vectors: [(name: String, values: [Float])], metadata: [String: String], to url: URL) throws {
        let data = Safetensors.encode(
            vectors.map { NamedTensor(name: $0.name, shape: [$0.values.count], values: $0.values) }, metadata: metadata)
        try writeFileAtomically(data, to: url.path)
    }

    /// Loads one vector of a file `save` wrote, with the file's metadata.
    static func load(_ url: URL, name: String) throws -> (values: [Float], metadata: [String: String]) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrialError("cannot read \(url.path): \(error.localizedDescription)")
        }
        let (tensors, metadata): ([String: NamedTensor], [String: String])
        do { (tensors, metadata) = try Safetensors.decode(data, file: url.path) } catch {
            throw TrialError("\(error)")
        }
        guard let t = tensors[name] else {
            throw TrialError(
                "\(url.path) holds no vector \(name); it holds \(tensors.keys.sorted().joined(separator: ", "))")
        }
        return (t.values, metadata)
    }
}
