// RNG.swift: the one random number generator of vld.
//
// xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2018),
// seeded through SplitMix64. The state is four explicit words so that a checkpoint can store it
// and a resumed run draws exactly the numbers an uninterrupted run would have drawn. There is no
// global generator anywhere in vld: every random draw takes one of these by `inout`.

/// A seeded, serialisable pseudo-random generator (xoshiro256**).
public struct SeededRNG: RandomNumberGenerator, Codable, Equatable, Sendable {
    /// The full generator state; restoring it restores the stream.
    public var state: [UInt64]

    /// Creates a generator whose stream is a pure function of `seed`.
    public init(seed: UInt64) {
        var sm = seed
        var s = [UInt64](repeating: 0, count: 4)
        for i in 0..<4 { s[i] = SeededRNG.splitMix(&sm) }
        state = s
    }

    /// Restores a generator from a state captured with `state`.
    public init(state: [UInt64]) {
        require(state.count == 4 && state.contains { $0 != 0 }, "xoshiro256** state must be 4 words, not all zero")
        self.state = state
    }

    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = SeededRNG.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = SeededRNG.rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 bits of precision.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 bits of precision.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform integer in 0..<n (Lemire's nearly divisionless method through the stdlib).
    public mutating func nextInt(_ n: Int) -> Int { Int.random(in: 0..<n, using: &self) }

    /// Standard normal draw (Box-Muller; one value per call so the stream stays simple to reason about).
    public mutating func nextNormal() -> Double {
        var u1 = nextDouble()
        while u1 <= 0 { u1 = nextDouble() }
        let u2 = nextDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }

    /// An independent generator derived from this one's next output (for per-purpose streams).
    public mutating func fork() -> SeededRNG { SeededRNG(seed: next()) }
}

#if canImport(Glibc)
    import Glibc
    @inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
    import Foundation
    @inline(__always) func _log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
