// IGSMGraph.swift: drawing one iGSM-lite problem (structure, dependency DAG, op count, split and
// length checks), its vocabulary, and the stable template hash. IGSM.swift holds the task API;
// IGSMSolution.swift renders and checks solutions.

/// FNV-1a (64-bit), a stable hash (Swift's Hasher is seeded per process); also the key and the
/// batch check of distillation's teacher cache.
public struct FNV1a {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    /// Mixes the low byte of `x`.
    public mutating func mix(_ x: Int) {
        value ^= UInt64(truncatingIfNeeded: x) & 0xFF
        value = value &* 0x0000_0100_0000_01B3
    }
    /// Mixes every byte of `bytes`.
    public mutating func mix(bytes: UnsafeRawBufferPointer) {
        for b in bytes {
            value ^= UInt64(b)
            value = value &* 0x0000_0100_0000_01B3
        }
    }
}

/// The fixed words of the task and the vocabulary.
enum IGSMWords {
    static let function = [
        "Question", ":", "The", "number", "of", "each", "'s", "equals", "more", "than",
        "times", "as", "much", "the", "sum", ",", "and", "difference", ".", "How", "many",
        "does", "have", "?", "Solution", "Define", ";", "so", "=", "+", "-", "*", "Answer",
    ]
    static let numbers = (0..<23).map { String($0) }
    static let symbols = (Array("abcdefghijklmnopqrstuvwxyz") + Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")).map { String($0) }

    /// Four 4-level hierarchies (levels 0..3), six single-word items per level.
    static let hierarchies: [[[String]]] = [
        // region → zoo → enclosure → animal
        [
            ["Northvale", "Eastmoor", "Southbay", "Westridge", "Highland", "Lowmarsh"],
            ["Riverzoo", "Hillzoo", "Lakezoo", "Forestzoo", "Valleyzoo", "Canyonzoo"],
            ["Aviary", "Aquarium", "Terrarium", "Paddock", "Jungle", "Savanna"],
            ["Lion", "Zebra", "Parrot", "Turtle", "Penguin", "Otter"],
        ],
        // district → school → classroom → supply
        [
            ["Ashford", "Brookton", "Claymont", "Dunmore", "Everton", "Fairhill"],
            ["Riverview", "Lakeside", "Hilltop", "Greenwood", "Sunnyside", "Parkview"],
            ["Library", "Gym", "Lab", "Studio", "Cafeteria", "Auditorium"],
            ["Backpack", "Pencil", "Notebook", "Ruler", "Eraser", "Crayon"],
        ],
        // city → market → shop → fruit
        [
            ["Oakton", "Pinecrest", "Stonebridge", "Maplewood", "Redcliff", "Silverlake"],
            ["Bazaar", "Mall", "Souk", "Arcade", "Emporium", "Plaza"],
            ["Bakery", "Grocery", "Deli", "Pantry", "Creamery", "Fishmonger"],
            ["Apple", "Banana", "Cherry", "Mango", "Peach", "Plum"],
        ],
        // fleet → ship → deck → cargo
        [
            ["Armada", "Flotilla", "Squadron", "Convoy", "Navy", "Regatta"],
            ["Galleon", "Frigate", "Schooner", "Clipper", "Trawler", "Ferry"],
            ["Bridge", "Galley", "Hold", "Cabin", "Quarterdeck", "Forecastle"],
            ["Barrel", "Crate", "Rope", "Lantern", "Anchor", "Cannon"],
        ],
    ]

    static let vocabulary: [String] = function + numbers + symbols + hierarchies.flatMap { $0.flatMap { $0 } }
}

/// Scratch state for drawing one problem's graph (reused across rejected draws).
struct IGSMGraph {
    static let maxParents = 4
    var levels = 0
    var widths: [Int] = []
    var edgeLevel: [Int] = [], edgeOwner: [Int] = [], edgeItem: [Int] = []  // per parameter
    var forms: [IGSMForm] = []
    var parents: [Int] = []  // maxParents slots per parameter
    private var necForms: [IGSMForm] = []
    private var necParents: [Int] = []
    var query = 0
    var necessary: UInt64 = 0
    var templateHash = 0
    var ops = 0
    private var pairs: [Int] = []

    var count: Int { forms.count }

    func parentsOf(_ i: Int) -> ArraySlice<Int> {
        parents[i * IGSMGraph.maxParents..<i * IGSMGraph.maxParents + forms[i].parentCount]
    }

    /// One rejection-sampling draw; true when it produced a graph whose query has op == target,
    /// whose template lies in `split` and whose document fits the length budget.
    ///
    /// The necessary set is drawn first: forms are drawn in order (the first is necessarily a
    /// constant) until their costs reach the target, and the draw is rejected on overshoot. Each
    /// necessary parameter takes its parents among the earlier necessary ones, uniformly except
    /// that parameters still without a child are picked when otherwise some could never get one
    /// (so every necessary parameter is an ancestor of the last one, the query). Then the
    /// structure is drawn with E ≥ |necessary| edges, the necessary parameters are placed at
    /// random positions of the topological order, and the other (distractor) positions get
    /// random forms over any earlier parameters. Distractors are never ancestors of the query,
    /// so op(query) is exactly the sum of the necessary costs.
    mutating func draw(target: Int, config: IGSMConfig, split: IGSMSplit, lengthBudget: Int, rng: inout TaskRNG) -> Bool
    {
        let P = IGSMGraph.maxParents, maxEdges = config.maxEdges
        // 1. Necessary forms with costs summing to the target.
        necForms.removeAll(keepingCapacity: true)
        var total = 0
        while total < target {
            let f = IGSMGraph.drawForm(available: necForms.count, rng: &rng)
            necForms.append(f)
            total += f.cost
        }
        let n = necForms.count
        guard total == target, n <= maxEdges else { return false }

        // 2. Necessary parents (necessary indices); every non-last parameter gets a child.
        necParents.removeAll(keepingCapacity: true)
        necParents.append(contentsOf: repeatElement(-1, count: P))
        var later = 0
        for f in necForms.dropFirst() { later += f.parentCount }
        var uncovered: UInt64 = n > 1 ? 1 : 0
        for k in 1..<max(n, 1) {
            let slots = necForms[k].parentCount
            later -= slots
            let capacity = later - max(0, n - 2 - k)
            let open = uncovered.nonzeroBitCount
            let need = max(0, open + (k < n - 1 ? 1 : 0) - capacity)
            guard need <= min(slots, open) else { return false }
            var chosen: UInt64 = 0
            for _ in 0..<need {  // the r-th still-open uncovered parameter, r uniform
                var r = rng.int(uncovered.nonzeroBitCount)
                var m = uncovered
                while r > 0 { m &= m - 1; r -= 1 }
                let bit = m & (~m &+ 1)
                chosen |= bit
                uncovered &= ~bit
            }
            var list: [Int] = []
            var m = chosen
            while m != 0 { list.append(m.trailingZeroBitCount); m &= m - 1 }
            while list.count < slots {
                let p = rng.int(k)
                if !list.contains(p) { list.append(p) }
            }
            for k2 in stride(from: list.count - 1, to: 0, by: -1) { list.swapAt(k2, rng.int(k2 + 1)) }
            for p in list { uncovered &= ~(UInt64(1) << UInt64(p)) }
            if k < n - 1 { uncovered |= UInt64(1) << UInt64(k) }
            necParents.append(contentsOf: list)
            necParents.append(contentsOf: repeatElement(-1, count: P - slots))
        }

        // 3. Structure: levels, widths and the edge count E (n ≤ E ≤ maxEdges).
        var lo = 0, hi = -1
        for _ in 0..<8 {
            levels = rng.int(in: 2...4)
            widths = (0..<levels).map { _ in rng.int(in: 2...4) }
            var minEdges = 0, capacity = 0
            for l in 1..<levels {
                minEdges += widths[l]
                capacity += widths[l - 1] * widths[l]
            }
            lo = max(minEdges, n)
            hi = min(capacity, maxEdges)
            if lo <= hi { break }
        }
        guard lo <= hi else { return false }
        let edges = rng.int(in: lo...hi)
        let minEdges = widths.dropFirst().reduce(0, +)

        // 4. Edges: one parent per lower item, then random extra pairs; shuffled = topological order.
        edgeLevel.removeAll(keepingCapacity: true)
        edgeOwner.removeAll(keepingCapacity: true)
        edgeItem.removeAll(keepingCapacity: true)
        pairs.removeAll(keepingCapacity: true)
        for l in 1..<levels {
            let parentOf = (0..<widths[l]).map { _ in rng.int(widths[l - 1]) }
            for y in 0..<widths[l] {
                for x in 0..<widths[l - 1] {
                    let code = (l - 1) << 4 | x << 2 | y
                    if parentOf[y] == x { appendEdge(code) } else { pairs.append(code) }
                }
            }
        }
        for k in 0..<(edges - minEdges) {
            pairs.swapAt(k, k + rng.int(pairs.count - k))
            appendEdge(pairs[k])
        }
        for i in stride(from: edges - 1, to: 0, by: -1) {
            let j = rng.int(i + 1)
            edgeLevel.swapAt(i, j); edgeOwner.swapAt(i, j); edgeItem.swapAt(i, j)
        }

        // 5. Positions of the necessary parameters in the topological order; distractors elsewhere.
        var nec: UInt64 = 0
        for k in 0..<n {  // Floyd's algorithm: a uniform n-subset of 0..<edges
            let j = rng.int(edges - n + k + 1)
            let bit = UInt64(1) << UInt64(j)
            nec |= (nec & bit) == 0 ? bit : UInt64(1) << UInt64(edges - n + k)
        }
        var positionOf: [Int] = []
        var m = nec
        while m != 0 { positionOf.append(m.trailingZeroBitCount); m &= m - 1 }
        forms.removeAll(keepingCapacity: true)
        parents.removeAll(keepingCapacity: true)
        var k = 0
        for i in 0..<edges {
            if k < n, positionOf[k] == i {
                forms.append(necForms[k])
                for s in 0..<P {
                    let p = necParents[k * P + s]
                    parents.append(p < 0 ? -1 : positionOf[p])
                }
                k += 1
            } else {
                let f = IGSMGraph.drawForm(available: i, rng: &rng)
                forms.append(f)
                for s in 0..<P {
                    guard s < f.parentCount else { parents.append(-1); continue }
                    var p: Int
                    repeat { p = rng.int(i) } while parents[(i * P)..<(i * P + s)].contains(p)
                    parents.append(p)
                }
            }
        }

        // 6. Split and length.
        let hash = hashTemplate(necessary: nec)
        guard config.split == .none || (hash < 17) == (split == .train) else { return false }
        var words = config.render == .text ? 16 : 14
        switch config.render {
        case .text:
            for f in forms { words += IGSMGraph.sentenceLength(f) }
            for f in necForms { words += IGSMGraph.solutionLength(f) }
        case .symbolic:
            for f in forms { words += IGSMGraph.symbolicSentenceLength(f) }
            for f in necForms { words += IGSMGraph.solutionLength(f) - 1 }
        case .compact:
            // No "=" in the sentences; each Define step copies the right-hand side (the sentence
            // less "Y X = ... ;").
            for f in forms { words += IGSMGraph.symbolicSentenceLength(f) - 1 }
            for f in necForms { words += IGSMGraph.solutionLength(f) - 1 + IGSMGraph.symbolicSentenceLength(f) - 4 }
        }
        guard words <= lengthBudget else { return false }
        query = positionOf[n - 1]; necessary = nec; templateHash = hash; ops = target
        return true
    }

    private mutating func appendEdge(_ code: Int) {
        edgeLevel.append(code >> 4)
        edgeOwner.append((code >> 2) & 3)
        edgeItem.append(code & 3)
    }

    static func drawForm(available: Int, rng: inout TaskRNG) -> IGSMForm {
        var total = 0
        for f in IGSMForm.allCases where f.parentCount <= available { total += f.weight }
        var r = rng.int(total)
        for f in IGSMForm.allCases where f.parentCount <= available {
            if r < f.weight { return f }
            r -= f.weight
        }
        return .constant
    }

    /// The problem's template, hashed: the level count, the solution skeleton (per necessary
    /// parameter in solution order its form, its structure level and its parents as solution-step
    /// indices), the number of sentences and how many sentences take each form. All of it can be
    /// read off the text with names, numbers and symbols blanked and sentence order ignored.
    ///
    /// An earlier version hashed the solution skeleton alone. At 1 and 2 operations that leaves 6
    /// and 42 skeletons, so the split put whole kinds of problem on one side: two thirds of the
    /// op-2 test problems were one skeleton (c × A) that training never showed. With the sentence
    /// count and the forms of the distractors in the hash every skeleton occurs on both sides
    /// (tested), and a held-out template is a combination of skeleton and surrounding problem
    /// that training never showed.
    func hashTemplate(necessary nec: UInt64) -> Int {
        var h = FNV1a()
        h.mix(levels)
        h.mix(count)
        var perForm = [Int](repeating: 0, count: IGSMForm.allCases.count)
        for f in forms { perForm[f.rawValue] += 1 }
        for c in perForm { h.mix(c) }
        var m = nec
        while m != 0 {
            let j = m.trailingZeroBitCount
            m &= m - 1
            h.mix(0xF0 | forms[j].rawValue)
            h.mix(edgeLevel[j])
            for p in parentsOf(j) {
                h.mix((nec & ((1 << UInt64(p)) - 1)).nonzeroBitCount)
            }
        }
        return Int(h.value % 23)
    }

    /// Words of a parameter's sentence "The number of each X 's Y equals <rhs> .".
    static func sentenceLength(_ f: IGSMForm) -> Int {
        let rhs: Int
        switch f {
        case .constant: rhs = 1  // c
        case .copy: rhs = 4  // each X 's Y
        case .plusConst: rhs = 7  // c more than A
        case .timesConst: rhs = 9  // c times as much as A
        case .add, .sub: rhs = 12  // the sum of A and B
        case .sum3: rhs = 17  // the sum of A , B and C
        case .sum4: rhs = 22  // the sum of A , B , C and D
        case .constPlusSum, .constPlusDiff: rhs = 15  // c more than the sum of A and B
        case .constTimesSum: rhs = 17  // c times as much as the sum of A and B
        }
        return 9 + rhs
    }

    /// Words of a parameter's symbolic sentence "Y X = <rhs> ;" (each operand is 2 words).
    static func symbolicSentenceLength(_ f: IGSMForm) -> Int {
        let rhs: Int
        switch f {
        case .constant: rhs = 1  // c
        case .copy: rhs = 2  // A
        case .plusConst, .timesConst: rhs = 4  // c + A
        case .add, .sub: rhs = 5  // A + B
        case .sum3: rhs = 8  // A + B + C
        case .sum4: rhs = 11  // A + B + C + D
        case .constPlusSum, .constPlusDiff, .constTimesSum: rhs = 9  // c + ( A + B )
        }
        return 4 + rhs
    }

    /// Words of a parameter's solution step "Define X 's Y as s ; [clauses ;] so s = ... .".
    static func solutionLength(_ f: IGSMForm) -> Int {
        switch f {
        case .constant: return 12
        case .copy: return 14
        case .plusConst, .timesConst, .add, .sub: return 20
        case .sum3, .constPlusSum, .constPlusDiff, .constTimesSum: return 32
        case .sum4: return 44
        }
    }
}
