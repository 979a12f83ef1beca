// KnowledgeMetrics.swift: the K1 and K2 knowledge-capacity scores of spec 6.2, in bits.
//
// Pure functions of summed losses the evaluator measured (teacher-forced, in nats) and the
// model's parameter counts, so they are tested without an engine. Every quantity is in bits.
//
// The model's softmax covers the whole vocabulary, not just the symbols or one attribute's
// values. A predictor uniform over the n symbols (K1) or over |A_a| values (K2) therefore scores
// exactly 0 bits, and one that puts mass on impossible words can score *negative* bits: the
// unclipped formulas are kept as the spec (and Part 3.3) state them; the clipped K2 variant is
// the safer per-attribute alternative and is never negative.

import Foundation
import VLDJSON

/// K1 scores (spec 6.2): H1 = K·log2 n, H2_ce = Σ −log2 p(x_true) (the recommended primary
/// metric), H2_ent = Σ entropy of the prediction (the paper's metric), ΔH = H1 − H2 and the
/// fraction and per-parameter ratios of both.
public struct RandomTokensScore: Codable, Equatable, Sendable {
    public var H1: Double
    public var H2ce: Double
    public var H2ent: Double
    public var deltaCE: Double
    public var deltaEnt: Double
    /// ΔH / H1, the fraction of the stream memorised.
    public var fractionCE: Double
    public var fractionEnt: Double
    /// ΔH / P_total and ΔH / P_nonemb (bits per parameter).
    public var perParamTotalCE: Double
    public var perParamNonEmbCE: Double
    public var perParamTotalEnt: Double
    public var perParamNonEmbEnt: Double
    /// K, the predicted positions summed over.
    public var predictedTokens: Int
}

extension RandomTokensScore {
    /// The score for results.json, keys sorted.
    public var json: JSONValue {
        let fields: [(String, JSONValue)] = [
            ("H1", JSONValue(H1)), ("H2ce", JSONValue(H2ce)), ("H2ent", JSONValue(H2ent)),
            ("deltaCE", JSONValue(deltaCE)), ("deltaEnt", JSONValue(deltaEnt)), ("fractionCE", JSONValue(fractionCE)),
            ("fractionEnt", JSONValue(fractionEnt)), ("perParamTotalCE", JSONValue(perParamTotalCE)),
            ("perParamNonEmbCE", JSONValue(perParamNonEmbCE)), ("perParamTotalEnt", JSONValue(perParamTotalEnt)),
            ("perParamNonEmbEnt", JSONValue(perParamNonEmbEnt)), ("predictedTokens", JSONValue(predictedTokens)),
        ]
        return .object(fields.sorted { $0.0 < $1.0 })
    }
}

/// Scores K1 from the cross-entropy and the prediction entropy, each summed in nats over the K
/// predicted positions (positions 1..T−1 of every window). Parameter counts must be positive.
public func scoreRandomTokens(
    crossEntropyNats: Double, entropyNats: Double, predictedTokens K: Int, symbols n: Int,
    totalParams: Int, nonEmbeddingParams: Int
) -> RandomTokensScore {
    precondition(K > 0 && n >= 2, "scoreRandomTokens: needs K > 0 predicted tokens and n >= 2 symbols")
    precondition(totalParams > 0 && nonEmbeddingParams > 0, "scoreRandomTokens: parameter counts must be positive")
    let ln2 = log(2.0)
    let h1 = Double(K) * log2(Double(n))
    let h2ce = crossEntropyNats / ln2
    let h2ent = entropyNats / ln2
    let dce = h1 - h2ce, dent = h1 - h2ent
    let pt = Double(totalParams), pn = Double(nonEmbeddingParams)
    return RandomTokensScore(
        H1: h1, H2ce: h2ce, H2ent: h2ent, deltaCE: dce, deltaEnt: dent,
        fractionCE: dce / h1, fractionEnt: dent / h1,
        perParamTotalCE: dce / pt, perParamNonEmbCE: dce / pn,
        perParamTotalEnt: dent / pt, perParamNonEmbEnt: dent / pn,
        predictedTokens: K)
}

/// K2 scores (spec 6.2), in bits summed over the N people.
public struct BiosScore: Codable, Equatable, Sendable {
    /// bits_attr = Σ_persons [log2 S0 − p2/ln 2], S0 = Π_a |A_a|, p2 = Σ_a CE (nats) of the
    /// person's value words. Can be negative (see the file comment).
    public var bitsAttributes: Double
    /// Σ_persons [log2 N0 − p1/ln 2], p1 = CE (nats) summed over the name words; nil when the
    /// evaluator did not measure the names.
    public var bitsName: Double?
    /// Σ_persons Σ_a max(0, log2 |A_a| − CE_bits(a)): the per-attribute clipped variant (our
    /// choice, not in the paper); attributes only, never negative.
    public var bitsClipped: Double
    /// N·log2 S0: what a model that knows every attribute scores.
    public var maxBitsAttributes: Double
    /// N·log2(N0/N): the bound on the name term (names are N distinct draws from N0).
    public var maxBitsName: Double
    /// R = (bits_attr + (bits_name ?? 0)) / P_total and / P_nonemb.
    public var perParamTotal: Double
    public var perParamNonEmb: Double
    /// bits_clipped / P_total and / P_nonemb.
    public var perParamClippedTotal: Double
    public var perParamClippedNonEmb: Double
    /// Clipped bits of each attribute, summed over the people, keyed by attribute name.
    public var perAttributeBits: [String: Double]
}

extension BiosScore {
    /// The score for results.json, keys sorted (bitsName only when measured).
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("bitsAttributes", JSONValue(bitsAttributes)), ("bitsClipped", JSONValue(bitsClipped)),
            ("maxBitsAttributes", JSONValue(maxBitsAttributes)), ("maxBitsName", JSONValue(maxBitsName)),
            ("perParamTotal", JSONValue(perParamTotal)), ("perParamNonEmb", JSONValue(perParamNonEmb)),
            ("perParamClippedTotal", JSONValue(perParamClippedTotal)),
            ("perParamClippedNonEmb", JSONValue(perParamClippedNonEmb)),
            (
                "perAttributeBits",
                .object(perAttributeBits.sorted { $0.key < $1.key }.map { ($0.key, JSONValue($0.value)) })
            ),
        ]
        if let bitsName { fields.append(("bitsName", JSONValue(bitsName))) }
        return .object(fields.sorted { $0.0 < $1.0 })
    }
}

/// Scores K2 from the teacher-forced cross-entropy (nats) of every person's attribute value
/// words, `attributeCrossEntropyNats[person][attribute]` in `attributeNames` order, and
/// optionally of their name words (summed per person). `namePool` is N0 = F·M·S. Shapes must
/// agree and parameter counts must be positive.
public func scoreBios(
    attributeCrossEntropyNats: [[Double]], nameCrossEntropyNats: [Double]?, attributeSizes: [Int],
    attributeNames: [String], namePool N0: Int, totalParams: Int,
    nonEmbeddingParams: Int
) -> BiosScore {
    let people = attributeCrossEntropyNats.count
    let A = attributeSizes.count
    precondition(people > 0 && A > 0 && attributeNames.count == A, "scoreBios: one name per attribute size, N > 0")
    precondition(attributeCrossEntropyNats.allSatisfy { $0.count == A }, "scoreBios: one CE per attribute per person")
    precondition(attributeSizes.allSatisfy { $0 >= 1 } && N0 >= people, "scoreBios: sizes >= 1 and N0 >= N")
    precondition(nameCrossEntropyNats.map { $0.count == people } ?? true, "scoreBios: one name CE per person")
    precondition(totalParams > 0 && nonEmbeddingParams > 0, "scoreBios: parameter counts must be positive")

    let ln2 = log(2.0)
    let attributeBits = attributeSizes.map { log2(Double($0)) }
    let log2S0 = attributeBits.reduce(0, +)
    let n = Double(people)

    var bitsAttributes = 0.0, bitsClipped = 0.0
    var perAttribute = [Double](repeating: 0, count: A)
    for row in attributeCrossEntropyNats {
        let p2: Double = row.reduce(0, +)
        bitsAttributes += log2S0 - p2 / ln2
        for a in 0..<A {
            let gained: Double = max(0, attributeBits[a] - row[a] / ln2)
            perAttribute[a] += gained
            bitsClipped += gained
        }
    }
    let log2N0 = log2(Double(N0))
    let bitsName = nameCrossEntropyNats.map { ces in ces.reduce(0.0) { $0 + (log2N0 - $1 / ln2) } }
    let maxBitsName: Double = n * log2(Double(N0) / n)

    let total = bitsAttributes + (bitsName ?? 0)
    let pt = Double(totalParams), pn = Double(nonEmbeddingParams)
    var byName: [String: Double] = [:]
    for (a, name) in attributeNames.enumerated() { byName[name] = perAttribute[a] }
    return BiosScore(
        bitsAttributes: bitsAttributes, bitsName: bitsName, bitsClipped: bitsClipped,
        maxBitsAttributes: n * log2S0, maxBitsName: maxBitsName,
        perParamTotal: total / pt, perParamNonEmb: total / pn,
        perParamClippedTotal: bitsClipped / pt, perParamClippedNonEmb: bitsClipped / pn,
        perAttributeBits: byName)
}
