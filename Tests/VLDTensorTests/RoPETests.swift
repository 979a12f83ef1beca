// RoPETests.swift: ropeApply against Reference.rope (forward), and the inverse rotation (the
// backward pass) against central differences of Reference.rope composed with a random linear
// functional: the gradient of sum(w * R x) is R^T w.

import Testing
import VLDTensor

private let valueTol = Tolerance(abs: 2e-6, rel: 2e-6)
private let gradTol = Tolerance(abs: 2e-6, rel: 2e-6)
private let theta = 10_000.0

/// (N, NH, KVH, HS); the last has N >= 128 rows so two threads split it.
private let ropeShapes: [(Int, Int, Int, Int)] = [(10, 2, 1, 4), (10, 4, 2, 8), (130, 2, 1, 8)]

@Test(arguments: threadCounts, [0, 1, 2])
func ropeMatchesReference(threads: Int, shape: Int) {
    let (N, NH, KVH, HS) = ropeShapes[shape]
    let QKV = (NH + 2 * KVH) * HS, P = 24
    var rng = SeededRNG(seed: 401 + UInt64(shape))
    let table = RopeTable(headSize: HS, positions: P, theta: theta)
    let positions = (0..<N).map { _ in Int32(rng.nextInt(P)) }
    let x = randn(N * QKV, &rng)
    let p = pool(threads)

    var y = x
    ropeApply(qkv: &y, positions: positions, table: table, N: N, NH: NH, KVH: KVH, HS: HS, inverse: false, pool: p)
    let ref = Reference.rope(x.d, positions: positions.map(Int.init), NH: NH, KVH: KVH, HS: HS, theta: theta)
    expectClose(y, ref, valueTol, "rope forward N \(N) NH \(NH) KVH \(KVH) HS \(HS)")
    // Value heads pass through untouched.
    for n in 0..<N {
        let v = (n * QKV + (NH + KVH) * HS)..<((n + 1) * QKV)
        #expect(y[v] == x[v], "value heads of token \(n) unchanged")
    }

    // The inverse undoes the forward rotation.
    ropeApply(qkv: &y, positions: positions, table: table, N: N, NH: NH, KVH: KVH, HS: HS, inverse: true, pool: p)
    expectClose(y, x.d, valueTol, "rope inverse(forward(x)) == x")

    // Backward: inverse rotation of the upstream gradient equals d/dx sum(w * rope(x)).
    if N <= 10 {
        let w = randn(N * QKV, &rng)
        let fd = numericGradient(x.d) {
            dot(w.d, Reference.rope($0, positions: positions.map(Int.init), NH: NH, KVH: KVH, HS: HS, theta: theta))
        }
        var g = w
        ropeApply(qkv: &g, positions: positions, table: table, N: N, NH: NH, KVH: KVH, HS: HS, inverse: true, pool: p)
        expectClose(g, fd, gradTol, "rope backward (inverse) vs finite differences")
    }
}

/// Position 0 is the identity rotation.
@Test func ropeAtPositionZeroIsIdentity() {
    var rng = SeededRNG(seed: 404)
    let (N, NH, KVH, HS) = (3, 2, 1, 8)
    let x = randn(N * (NH + 2 * KVH) * HS, &rng)
    var y = x
    ropeApply(
        qkv: &y, positions: [Int32](repeating: 0, count: N), table: RopeTable(headSize: HS, positions: 4, theta: theta),
        N: N, NH: NH, KVH: KVH, HS: HS, inverse: false, pool: pool(1))
    #expect(y == x)
}
