// ValueHead.swift: a scalar head on a model's final hidden states, read at chosen rows, the
// score head of a process reward model (specs/tts.md: a linear d -> 1 and a sigmoid at every step
// separator, trained with binary cross-entropy against soft targets).
//
// For each chosen row r with hidden state h_r (C floats) and target y_r in [0, 1]:
//
//   s = w . h_r + b,  p = sigmoid(s),  loss = -(y log p + (1 - y) log(1 - p)) = softplus(s) - y s
//   ds = p - y,  dh_r += ds w / R,  dw += ds h_r / R,  db += ds / R      (R rows; the loss is their mean)
//
// softplus(s) = max(s, 0) + log1p(exp(-|s|)) keeps the loss finite for any score.
// `Reference.valueHeadLoss` is the Double ground truth.

#if canImport(Glibc)
    import Glibc
#endif

/// sigmoid(w . h + b) at each of `rows` (row n of `hidden`, N x C).
public func valueHeadScores(hidden: CFPtr, C: Int, rows: [Int], weight: CFPtr, bias: Float) -> [Float] {
    rows.map { r in
        var s = bias
        for c in 0..<C { s += weight[c] * hidden[r * C + c] }
        return 1 / (1 + expf(-s))
    }
}

/// The mean binary cross-entropy of the head's scores at `rows` against `targets` (one each, in
/// [0, 1]). With `dhidden`, adds the gradient with respect to the hidden states into it (the
/// other rows untouched); with `dweight`, adds the gradient of the weight (C) and `dbias` that of
/// the bias.
@discardableResult
public func valueHeadLoss(
    hidden: CFPtr, C: Int, rows: [Int], targets: [Float], weight: CFPtr, bias: Float, dhidden: FPtr? = nil,
    dweight: FPtr? = nil, dbias: UnsafeMutablePointer<Float>? = nil
) -> Float {
    precondition(rows.count == targets.count, "one target per row")
    guard !rows.isEmpty else { return 0 }
    let scale = 1 / Float(rows.count)
    var total: Double = 0
    for (r, y) in zip(rows, targets) {
        let h = hidden + r * C
        var s = bias
        for c in 0..<C { s += weight[c] * h[c] }
        total += Double(max(s, 0) + log1pf(expf(-abs(s))) - y * s)
        let ds = (1 / (1 + expf(-s)) - y) * scale
        if let dhidden { for c in 0..<C { dhidden[r * C + c] += ds * weight[c] } }
        if let dweight { for c in 0..<C { dweight[c] += ds * h[c] } }
        dbias?.pointee += ds
    }
    return Float(total / Double(rows.count))
}

extension Reference {
    /// The value head's mean binary cross-entropy in Double (ValueHead.swift).
    public static func valueHeadLoss(
        hidden: [Double], C: Int, rows: [Int], targets: [Double], weight: [Double], bias: Double
    ) -> Double {
        guard !rows.isEmpty else { return 0 }
        var total = 0.0
        for (r, y) in zip(rows, targets) {
            var s = bias
            for c in 0..<C { s += weight[c] * hidden[r * C + c] }
            let p = 1 / (1 + exp(-s))
            total += -(y * log(p) + (1 - y) * log(1 - p))
        }
        return total / Double(rows.count)
    }
}
