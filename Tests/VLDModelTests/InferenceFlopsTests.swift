// InferenceFlopsTests.swift: the generation and scoring FLOPs formulas (InferenceFlops.swift)
// against sums written out by hand on a tiny config, and Snell's multiplier.

import Testing
import VLDModel

@Test func generationAndScoringFlopsOnAHandComputedCase() throws {
    // d 4, gelu MLP of 16, 2 blocks looped once (4 applications), vocab 10.
    let cfg = ModelConfig(
        arch: .gpt2, dModel: 4, layers: 2, heads: 2, ffnHidden: 16, context: 32, vocab: 10,
        schedule: try LayerSchedule(parsing: "cyc(1)"))
    #expect(cfg.applications == 4)
    // Block matrices: qkv 4x12, proj 4x4, fc 4x16, fc_proj 16x4 = 48 + 16 + 64 + 64 = 192.
    #expect(cfg.blockMatrixParams == 192)
    func block(_ t: Int) -> Double { 2 * 192 + 4 * Double(t) * 4 }
    #expect(cfg.trunkFlops(attending: 3) == 4 * block(3))
    #expect(cfg.headFlops == 80)
    #expect(cfg.trunkFlops(attending: 5) + cfg.headFlops == cfg.forwardFlopsPerToken(attending: 5))
    // A 3-token prompt, then 2 tokens: trunk at 1, 2, 3, head once; trunk and head at 4 and 5.
    let byHand = 4 * (block(1) + block(2) + block(3)) + 80 + 4 * (block(4) + block(5)) + 2 * 80
    #expect(cfg.generationFlops(prompt: 3, generated: 2) == byHand)
    // A continuation from a cached prefix of 5: one new prompt token at 6, then 1 generated at 7.
    #expect(cfg.generationFlops(cached: 5, prompt: 1, generated: 1) == 4 * block(6) + 80 + 4 * block(7) + 80)
    // Sharing the prefix costs less than recomputing it.
    #expect(
        cfg.generationFlops(cached: 5, prompt: 1, generated: 1) < cfg.generationFlops(prompt: 6, generated: 1))
    #expect(cfg.generationFlops(prompt: 0, generated: 0) == 0)
    // Scoring 3 new tokens after 4 cached ones, 2 of them separators: trunk at 5, 6, 7 and 2 x 2d.
    #expect(cfg.scoringFlops(cached: 4, tokens: 3, scored: 2) == 4 * (block(5) + block(6) + block(7)) + 2 * 8)
    #expect(cfg.trunkFlops(positions: 3, through: 2) == 0)
}

@Test func snellMultiplierMatchesItsDefinition() {
    // 10x the parameters at R = 1: K = 10 + 3 * 9 = 37; at R = 22 the pretraining term shrinks.
    #expect(snellMultiplier(paramsRatio: 10, inferenceToPretraining: 1) == 37)
    #expect(abs(snellMultiplier(paramsRatio: 10, inferenceToPretraining: 22) - (10 + 27.0 / 22)) < 1e-12)
    #expect(snellMultiplier(paramsRatio: 1, inferenceToPretraining: 0.16) == 1)
}
