// KnowledgeMetricsTests.swift: the K1 and K2 bit counts on cases computed by hand.

import Foundation
import Testing
import VLDTasks

private func close(_ a: Double, _ b: Double, tol: Double = 1e-9) -> Bool { abs(a - b) <= tol * max(1, abs(b)) }

@Test func randomTokensUniformPredictorScoresZero() {
    // K = 1000 predicted tokens over n = 64 symbols: a uniform predictor has CE = entropy = K ln n.
    let k = 1000, n = 64
    let nats: Double = Double(k) * log(Double(n))
    let s = scoreRandomTokens(
        crossEntropyNats: nats, entropyNats: nats, predictedTokens: k, symbols: n,
        totalParams: 3000, nonEmbeddingParams: 1500)
    #expect(s.H1 == 6000)  // K log2 64
    #expect(close(s.H2ce, 6000) && close(s.H2ent, 6000))
    #expect(abs(s.deltaCE) < 1e-9 * s.H1 && abs(s.deltaEnt) < 1e-9 * s.H1)
    #expect(abs(s.fractionCE) < 1e-9 && abs(s.perParamTotalCE) < 1e-9)
    #expect(s.predictedTokens == 1000)
}

@Test func randomTokensOracleAndPerParameterRatios() {
    // An oracle (CE 0, entropy 0) has memorised all H1 = K log2 n = 1000 · 6 bits.
    let s = scoreRandomTokens(
        crossEntropyNats: 0, entropyNats: 0, predictedTokens: 1000, symbols: 64,
        totalParams: 3000, nonEmbeddingParams: 1500)
    #expect(s.H1 == 6000 && s.H2ce == 0 && s.H2ent == 0)
    #expect(s.deltaCE == 6000 && s.deltaEnt == 6000)
    #expect(s.fractionCE == 1 && s.fractionEnt == 1)
    #expect(s.perParamTotalCE == 2 && s.perParamNonEmbCE == 4)
    #expect(s.perParamTotalEnt == 2 && s.perParamNonEmbEnt == 4)

    // A confidently wrong model: entropy 0 (H2_ent claims everything memorised) but CE of
    // 3 bits a token (half of log2 64): ΔH_ce = 6000 − 3000 = 3000 bits, 1 bit/param of 3000.
    let ln2 = log(2.0)
    let wrong = scoreRandomTokens(
        crossEntropyNats: 3000 * ln2, entropyNats: 0, predictedTokens: 1000, symbols: 64,
        totalParams: 3000, nonEmbeddingParams: 1500)
    #expect(close(wrong.deltaCE, 3000) && wrong.deltaEnt == 6000)
    #expect(close(wrong.fractionCE, 0.5) && close(wrong.perParamTotalCE, 1) && close(wrong.perParamNonEmbCE, 2))
    // Worse than uniform (mass on words outside the symbols) is negative, as the spec defines it.
    let worse = scoreRandomTokens(
        crossEntropyNats: 7000 * ln2, entropyNats: 7000 * ln2, predictedTokens: 1000,
        symbols: 64, totalParams: 3000, nonEmbeddingParams: 1500)
    #expect(close(worse.deltaCE, -1000) && close(worse.deltaEnt, -1000))
}

@Test func biosUniformAndOracle() {
    // 2 persons, attribute sizes [2, 4]: S0 = 8, log2 S0 = 3 bits a person.
    let ln2 = log(2.0), ln4 = log(4.0)
    let uniform = scoreBios(
        attributeCrossEntropyNats: [[ln2, ln4], [ln2, ln4]], nameCrossEntropyNats: nil,
        attributeSizes: [2, 4], attributeNames: ["g", "c"], namePool: 8, totalParams: 10,
        nonEmbeddingParams: 5)
    #expect(abs(uniform.bitsAttributes) < 1e-12 && abs(uniform.bitsClipped) < 1e-12)
    #expect(uniform.bitsName == nil)
    #expect(uniform.maxBitsAttributes == 6 && uniform.maxBitsName == 4)  // 2 log2 8; 2 log2(8 / 2)
    #expect(abs(uniform.perParamTotal) < 1e-12)

    let oracle = scoreBios(
        attributeCrossEntropyNats: [[0, 0], [0, 0]], nameCrossEntropyNats: [0, 0],
        attributeSizes: [2, 4], attributeNames: ["g", "c"], namePool: 8, totalParams: 10,
        nonEmbeddingParams: 5)
    #expect(oracle.bitsAttributes == 6 && oracle.bitsClipped == 6)
    #expect(oracle.bitsName == 6)  // 2 · log2 8: beyond the N log2(N0/N) = 4 bound, which is the caller's to check
    #expect(oracle.perAttributeBits == ["g": 2, "c": 4])
    #expect(oracle.perParamTotal == 1.2 && oracle.perParamNonEmb == 2.4)  // (6 + 6) / 10 and / 5
    #expect(oracle.perParamClippedTotal == 0.6 && oracle.perParamClippedNonEmb == 1.2)
}

@Test func biosMixedCaseByHand() {
    // 2 persons, sizes [2, 4] (1 + 2 bits), N0 = 8 (3 bits a name), P_total 4, P_nonemb 2.
    // person 0: CE = [0, ln 4]      -> 0 and 2 bits: knows attribute 0, uniform on attribute 1.
    //           unclipped 3 − (0 + 2) = 1;   clipped max(0, 1 − 0) + max(0, 2 − 2) = 1 + 0 = 1.
    // person 1: CE = [2 ln 2, 0]   -> 2 and 0 bits: worse than uniform on attribute 0, knows 1.
    //           unclipped 3 − (2 + 0) = 1;   clipped max(0, 1 − 2) + max(0, 2 − 0) = 0 + 2 = 2.
    // bits_attr = 2, bits_clipped = 3, per attribute clipped: g = 1 + 0 = 1, c = 0 + 2 = 2.
    // names: CE = [ln 8, ln 2] -> (3 − 3) + (3 − 1) = 2 bits; max N log2(N0/N) = 2 log2 4 = 4.
    // R_total = (2 + 2) / 4 = 1, R_nonemb = 4 / 2 = 2; clipped 3 / 4 = 0.75 and 3 / 2 = 1.5.
    let ln2 = log(2.0), ln4 = log(4.0), ln8 = log(8.0)
    let s = scoreBios(
        attributeCrossEntropyNats: [[0, ln4], [2 * ln2, 0]], nameCrossEntropyNats: [ln8, ln2],
        attributeSizes: [2, 4], attributeNames: ["g", "c"], namePool: 8, totalParams: 4,
        nonEmbeddingParams: 2)
    #expect(close(s.bitsAttributes, 2) && close(s.bitsClipped, 3))
    #expect(close(s.perAttributeBits["g"]!, 1) && close(s.perAttributeBits["c"]!, 2))
    #expect(close(s.bitsName!, 2) && s.maxBitsName == 4 && s.maxBitsAttributes == 6)
    #expect(close(s.perParamTotal, 1) && close(s.perParamNonEmb, 2))
    #expect(close(s.perParamClippedTotal, 0.75) && close(s.perParamClippedNonEmb, 1.5))

    // Spreading mass over the whole vocabulary: unclipped bits go negative, clipped stay at 0.
    let bad = scoreBios(
        attributeCrossEntropyNats: [[ln8, ln8], [ln8, ln8]], nameCrossEntropyNats: nil,
        attributeSizes: [2, 4], attributeNames: ["g", "c"], namePool: 8, totalParams: 4,
        nonEmbeddingParams: 2)
    #expect(close(bad.bitsAttributes, -6) && bad.bitsClipped == 0)  // 2 · (3 − 6)
    #expect(close(bad.perParamTotal, -1.5))
}

@Test func biosClippedIsNeverNegativeAndBoundsUnclipped() {
    let sizes = [2, 24, 20, 16, 12, 20], names = BiosConfig.attributeNames
    var rng = TaskRNG(seed: 42)
    for _ in 0..<50 {
        let ce = (0..<30).map { _ in sizes.map { _ in rng.unit() * 6 } }
        let s = scoreBios(
            attributeCrossEntropyNats: ce, nameCrossEntropyNats: nil, attributeSizes: sizes,
            attributeNames: names, namePool: 1152, totalParams: 1000, nonEmbeddingParams: 500)
        #expect(s.bitsClipped >= 0 && s.perAttributeBits.values.allSatisfy { $0 >= 0 })
        #expect(s.bitsClipped >= s.bitsAttributes - 1e-9)
        #expect(s.bitsClipped <= s.maxBitsAttributes + 1e-9)
        #expect(close(s.perAttributeBits.values.reduce(0, +), s.bitsClipped))
    }
}

@Test func scoresRoundTripThroughJSON() throws {
    let b = scoreBios(
        attributeCrossEntropyNats: [[0.1, 0.2]], nameCrossEntropyNats: nil, attributeSizes: [2, 4],
        attributeNames: ["g", "c"], namePool: 8, totalParams: 4, nonEmbeddingParams: 2)
    #expect(try JSONDecoder().decode(BiosScore.self, from: JSONEncoder().encode(b)) == b)
    let r = scoreRandomTokens(
        crossEntropyNats: 10, entropyNats: 9, predictedTokens: 20, symbols: 8, totalParams: 7,
        nonEmbeddingParams: 3)
    #expect(try JSONDecoder().decode(RandomTokensScore.self, from: JSONEncoder().encode(r)) == r)
}
