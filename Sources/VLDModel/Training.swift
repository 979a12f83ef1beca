// Training.swift: one optimisation step (forward, backward, clip, AdamW) and evaluation loss.

import VLDTensor

/// AdamW moments and step counter for one model; stored in optimizer.safetensors.
public final class OptimizerState {
    public let m: FloatBuffer
    public let v: FloatBuffer
    /// Completed optimizer steps (AdamW's bias correction uses step + 1 for the next update).
    public var step: Int = 0
    public var config: AdamWConfig

    public init(parameterCount: Int, config: AdamWConfig) {
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
        self.config = config
    }
}

/// What one training step measured.
public struct StepStats: Sendable {
    public let loss: Float
    /// Global gradient norm before clipping.
    public let gradNorm: Float
    public let lr: Float
}

extension Transformer {
    /// Runs forward and backward on one batch and applies AdamW with learning rate `lr`, clipping
    /// the global gradient norm to `clip` (0 disables clipping). Weight decay applies to matrices
    /// and embeddings only, as in nanoGPT's configure_optimizers.
    @discardableResult
    public func trainStep(
        inputs: [Int32], targets: [Int32], B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState,
        segments: [Int32]? = nil
    ) throws -> StepStats {
        zeroGrads()
        let loss = try forward(inputs: inputs, targets: targets, B: B, T: T, segments: segments)!
        backward()
        return applyUpdate(loss: loss, lr: lr, clip: clip, optimizer: optimizer)
    }

    /// One step with a loss of the logits other than cross-entropy (`Transformer.backward(loss:)`):
    /// forward without targets, `loss` turns the logits into their gradient and returns the mean
    /// loss, then clipping and AdamW exactly as in the cross-entropy step.
    @discardableResult
    public func trainStep(
        inputs: [Int32], B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState, segments: [Int32]? = nil,
        loss: (_ logits: FPtr, _ N: Int, _ V: Int) throws -> Float
    ) throws -> StepStats {
        zeroGrads()
        try forward(inputs: inputs, B: B, T: T, segments: segments)
        let value = try backward(loss: loss)
        return applyUpdate(loss: value, lr: lr, clip: clip, optimizer: optimizer)
    }

    /// One step with a loss of the final hidden states (`Transformer.backward(logits:hidden:)`; a
    /// process reward model's value head): forward without targets, `hidden` reads the hidden
    /// states, adds its gradient into the second buffer and returns the loss; then clipping and
    /// AdamW as in the cross-entropy step. The head's own parameters are the caller's.
    @discardableResult
    public func trainStep(
        inputs: [Int32], B: Int, T: Int, lr: Float, clip: Float, optimizer: OptimizerState, segments: [Int32]? = nil,
        hidden: (_ hidden: UnsafePointer<Float>, _ dhidden: FPtr, _ N: Int, _ C: Int) throws -> Float
    ) throws -> StepStats {
        zeroGrads()
        try forward(inputs: inputs, B: B, T: T, segments: segments)
        let value = try backward(logits: nil, hidden: hidden)
        return applyUpdate(loss: value, lr: lr, clip: clip, optimizer: optimizer)
    }

    /// Clips the gradient, takes one AdamW step and reports it.
    func applyUpdate(loss: Float, lr: Float, clip: Float, optimizer: OptimizerState) -> StepStats {
        let norm = clipGradNorm(grads.base, N: layout.count, maxNorm: clip, pool: pool)
        optimizer.step += 1
        let decayed = layout.decayedCount
        adamWUpdate(
            params: params.base, grads: grads.base, m: optimizer.m.base, v: optimizer.v.base, N: decayed, lr: lr,
            t: optimizer.step, config: optimizer.config, weightDecay: optimizer.config.weightDecay, pool: pool)
        adamWUpdate(
            params: params[decayed], grads: grads[decayed], m: optimizer.m[decayed], v: optimizer.v[decayed],
            N: layout.count - decayed, lr: lr, t: optimizer.step, config: optimizer.config, weightDecay: 0,
            pool: pool)
        return StepStats(loss: loss, gradNorm: norm, lr: lr)
    }

    /// Mean cross-entropy of a batch without touching gradients.
    public func evaluationLoss(inputs: [Int32], targets: [Int32], B: Int, T: Int, segments: [Int32]? = nil) throws
        -> Float
    {
        try forward(inputs: inputs, targets: targets, B: B, T: T, segments: segments)!
    }
}
