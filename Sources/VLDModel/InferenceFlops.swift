// InferenceFlops.swift: the FLOPs of generating and scoring (specs/tts.md 8.5), the units of a
// test-time-scaling study's compute account. One multiply-add is 2 FLOPs; a token at position t
// (1-based) attends to t positions, itself included; a block application costs
// 2 * (its matrix parameters) + 4 t d; the LM head 2 d V where logits are computed.

extension ModelConfig {
    /// One token through every block application at position t, without the LM head.
    public func trunkFlops(attending t: Int) -> Double {
        Double(applications) * (2 * Double(blockMatrixParams) + 4 * Double(t) * Double(dModel))
    }

    /// Σ trunkFlops(t) for t in from...to (0 when the range is empty), in closed form.
    public func trunkFlops(positions from: Int, through to: Int) -> Double {
        guard to >= from else { return 0 }
        let n = Double(to - from + 1), sumT = (Double(from) + Double(to)) * n / 2
        return Double(applications) * (2 * Double(blockMatrixParams) * n + 4 * Double(dModel) * sumT)
    }

    /// The LM head on one position.
    public var headFlops: Double { 2 * Double(dModel) * Double(vocab) }

    /// KV-cached generation of `generated` tokens after `cached` positions already in the cache
    /// and `prompt` new prompt positions: the prompt's prefill (the trunk at each of its positions,
    /// the head at its last, whose logits give the first new token), then each generated token
    /// through the trunk and the head (specs/tts.md 8.5: prefill + Σ F_token over the new tokens).
    /// Candidates that share a cached prefix pass `cached` and pay only for what they add.
    public func generationFlops(cached: Int = 0, prompt: Int, generated: Int) -> Double {
        let prefill = trunkFlops(positions: cached + 1, through: cached + prompt) + (prompt > 0 ? headFlops : 0)
        let start = cached + prompt + 1
        return prefill + trunkFlops(positions: start, through: start + generated - 1) + Double(generated) * headFlops
    }

    /// A PRM (this model with a scalar value head) scoring `tokens` new positions after `cached`
    /// ones, read at `scored` of them: the trunk at each new position, 2 d per score (specs/tts.md
    /// 8.5; no LM head). Rescoring a whole prefix is `cached: 0` with its full length.
    public func scoringFlops(cached: Int = 0, tokens: Int, scored: Int) -> Double {
        trunkFlops(positions: cached + 1, through: cached + tokens) + 2 * Double(dModel) * Double(scored)
    }
}

/// Snell et al. 2024's FLOPs-matching multiplier: a model with `paramsRatio` times the parameters
/// costs as much as this many samples of the small one, given the ratio R of inference to
/// pretraining tokens: K = M + 3 (D_pretrain / D_inference) (M - 1).
public func snellMultiplier(paramsRatio M: Double, inferenceToPretraining R: Double) -> Double {
    M + 3 * (1 / R) * (M - 1)
}
