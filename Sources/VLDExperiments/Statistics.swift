// Statistics.swift: the small statistics more than one analysis needs: rank AUC, Pearson and
// partial correlation, least squares, percentiles, cosine. Plain functions of arrays, tested on
// inputs with known answers (StatisticsTests).

import Foundation

enum Stats {
    /// Area under the ROC curve by the rank sum (Mann-Whitney U), average ranks for ties; nil
    /// without both a positive and a negative.
    static func auc(scores: [Double], labels: [Bool]) -> Double? {
        precondition(scores.count == labels.count, "one label per score")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] { rankSum += rank }
            i = j + 1
        }
        let positives = Double(labels.filter { $0 }.count), negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return nil }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    static func mean(_ x: [Double]) -> Double { x.isEmpty ? .nan : x.reduce(0, +) / Double(x.count) }

    /// Pearson's r; NaN when either side is constant or there are fewer than 3 points.
    static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        precondition(x.count == y.count, "pearson needs pairs")
        guard x.count >= 3 else { return .nan }
        let mx = mean(x), my = mean(y)
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            sxy += (x[i] - mx) * (y[i] - my)
            sxx += (x[i] - mx) * (x[i] - mx)
            syy += (y[i] - my) * (y[i] - my)
        }
        // A sum of squares at rounding level (relative to the values' size) is a constant.
        let ex = x.reduce(0) { $0 + $1 * $1 }, ey = y.reduce(0) { $0 + $1 * $1 }
        guard sxx > 1e-20 * ex, syy > 1e-20 * ey, sxx > 0, syy > 0 else { return .nan }
        return sxy / (sxx * syy).squareRoot()
    }

    /// Ordinary least squares of y on the columns (an intercept is added): the coefficients,
    /// intercept first; nil when the design is singular.
    static func leastSquares(_ y: [Double], columns: [[Double]]) -> [Double]? {
        let n = y.count, p = columns.count + 1
        func x(_ i: Int, _ j: Int) -> Double { j == 0 ? 1 : columns[j - 1][i] }
        // Normal equations, solved by Gaussian elimination with partial pivoting.
        var a = [[Double]](repeating: [Double](repeating: 0, count: p + 1), count: p)
        for r in 0..<p {
            for c in 0..<p { a[r][c] = (0..<n).reduce(0) { $0 + x($1, r) * x($1, c) } }
            a[r][p] = (0..<n).reduce(0) { $0 + x($1, r) * y[$1] }
        }
        let scale = a.map { $0[0..<p].map(abs).max() ?? 0 }.max() ?? 0
        for c in 0..<p {
            guard let pivot = (c..<p).max(by: { abs(a[$0][c]) < abs(a[$1][c]) }),
                abs(a[pivot][c]) > 1e-12 * Swift.max(scale, 1e-300)
            else { return nil }
            a.swapAt(c, pivot)
            for r in 0..<p where r != c {
                let f = a[r][c] / a[c][c]
                if f != 0 { for k in c...p { a[r][k] -= f * a[c][k] } }
            }
        }
        return (0..<p).map { a[$0][p] / a[$0][$0] }
    }

    /// y minus its least-squares fit on the columns (with an intercept).
    static func residuals(_ y: [Double], on columns: [[Double]]) -> [Double]? {
        guard let b = leastSquares(y, columns: columns) else { return nil }
        return y.indices.map { i in y[i] - b[0] - columns.indices.reduce(0) { $0 + b[$1 + 1] * columns[$1][i] } }
    }

    /// Partial correlation of x and y given the columns: the r of their residuals. NaN unless
    /// the residuals keep at least 3 degrees of freedom over distinct rows (with fewer, r is
    /// +-1 or nearly so whatever the data).
    static func partialR(_ x: [Double], _ y: [Double], given columns: [[Double]]) -> Double {
        let distinct = Set(x.indices.map { i in [x[i], y[i]] + columns.map { $0[i] } }).count
        guard distinct >= columns.count + 4, let rx = residuals(x, on: columns), let ry = residuals(y, on: columns)
        else { return .nan }
        return pearson(rx, ry)
    }

    /// The r of x and y after each is demeaned within its group (a within-family correlation).
    static func withinGroupR(_ x: [Double], _ y: [Double], groups: [Int]) -> Double {
        func demeaned(_ v: [Double]) -> [Double] {
            var sums: [Int: (Double, Int)] = [:]
            for (i, g) in groups.enumerated() { sums[g, default: (0, 0)].0 += v[i]; sums[g, default: (0, 0)].1 += 1 }
            return v.indices.map { v[$0] - sums[groups[$0]]!.0 / Double(sums[groups[$0]]!.1) }
        }
        return pearson(demeaned(x), demeaned(y))
    }

    /// The q-quantile (0...1) of sorted values, by linear interpolation.
    static func quantile(sorted v: [Double], _ q: Double) -> Double {
        guard !v.isEmpty else { return .nan }
        let h = q * Double(v.count - 1)
        let lo = Int(h.rounded(.down)), hi = Swift.min(lo + 1, v.count - 1)
        return v[lo] + (h - Double(lo)) * (v[hi] - v[lo])
    }

    /// The 95% percentile interval of replicates (NaNs dropped); nil with fewer than 20.
    static func interval95(_ replicates: [Double]) -> (Double, Double)? {
        let v = replicates.filter { $0.isFinite }.sorted()
        guard v.count >= 20 else { return nil }
        return (quantile(sorted: v, 0.025), quantile(sorted: v, 0.975))
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for i in a.indices {
            ab += a[i] * b[i]
            aa += a[i] * a[i]
            bb += b[i] * b[i]
        }
        return aa > 0 && bb > 0 ? ab / (aa * bb).squareRoot() : .nan
    }
}
