// ActivationSites.swift: the activation sites of a block application (specs/phase.md 5(b)) and the
// one hook that reads or writes them, in forward passes (Transformer.swift) and KV-cached
// decoding (Sampling.swift) alike: what probing and steering (VLDExperiments) build on.

import VLDTensor

/// Where in a block application an activation site is (specs/phase.md 5(b)): the residual stream
/// entering the block, the attention output and the MLP output (each before it is added to the
/// stream), and the residual stream leaving the block.
public enum SiteKind: String, Sendable, CaseIterable {
    case residPre = "resid_pre", attnOut = "attn_out", mlpOut = "mlp_out", residPost = "resid_post"
}

/// Read/write access to the activations at one site of one block application (see `siteHook`).
public struct ActivationSite {
    public let kind: SiteKind
    /// Schedule position v (0..<D) of the block application.
    public let position: Int
    /// The activations (B,T,C), row n = b*T + t. Writes change the rest of the forward pass.
    public let hidden: FPtr
    public let B: Int, T: Int, C: Int
    /// Absolute position of each row (B*T), e.g. the cache length during decoding.
    public let tokenPositions: UnsafePointer<Int32>
    /// While decoding, the KV-cache row of each of the B (packed) rows; nil in a forward pass
    /// (row n is sequence n / T there).
    public let cacheRows: UnsafePointer<Int32>?

    public init(
        kind: SiteKind, position: Int, hidden: FPtr, B: Int, T: Int, C: Int, tokenPositions: UnsafePointer<Int32>,
        cacheRows: UnsafePointer<Int32>?
    ) {
        self.kind = kind
        self.position = position
        self.hidden = hidden
        self.B = B
        self.T = T
        self.C = C
        self.tokenPositions = tokenPositions
        self.cacheRows = cacheRows
    }

    /// The sequence row n belongs to.
    public func sequence(_ n: Int) -> Int { cacheRows.map { Int($0[n]) } ?? n / T }
}

extension Transformer {
    /// Calls the site hook, if any.
    @inline(__always)
    func site(
        _ kind: SiteKind, _ v: Int, _ hidden: FPtr, B: Int, T: Int, positions: UnsafePointer<Int32>,
        rows: UnsafePointer<Int32>? = nil
    ) {
        guard let hook = siteHook else { return }
        hook(
            ActivationSite(
                kind: kind, position: v, hidden: hidden, B: B, T: T, C: config.dModel, tokenPositions: positions,
                cacheRows: rows))
    }
}
