// FloatBuffer.swift: one owned, zero-initialised allocation of Floats (one per role: params,
// grads, Adam m, Adam v, activations), addressed by offset views.

/// An owned array of Floats with a stable address for the lifetime of the object.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let base: FPtr

    public init(count: Int) {
        self.count = count
        base = FPtr.allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { base.deallocate() }

    /// Pointer to element `offset`.
    @inline(__always) public subscript(_ offset: Int) -> FPtr { base + offset }

    public func zero() { base.update(repeating: 0, count: count) }

    public func zero(_ offset: Int, _ n: Int) { (base + offset).update(repeating: 0, count: n) }

    /// A copy of `n` elements from `offset`.
    public func array(_ offset: Int = 0, _ n: Int? = nil) -> [Float] {
        Array(UnsafeBufferPointer(start: base + offset, count: n ?? count - offset))
    }

    public func load(_ values: [Float], at offset: Int = 0) {
        require(offset + values.count <= count, "FloatBuffer.load: \(values.count) values at \(offset) exceed \(count)")
        values.withUnsafeBufferPointer { (base + offset).update(from: $0.baseAddress!, count: values.count) }
    }
}

/// A precondition that stays in every build. The numeric modules compile with -Ounchecked (about
/// 10-20% faster training, measured with vld-bench), which removes `precondition`; the checks
/// that guard memory safety against caller mistakes (token ids, lengths, capacities) use this.
@inline(__always) public func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}
