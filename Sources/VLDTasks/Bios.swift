// Bios.swift: K2, bioS-lite knowledge capacity (spec 6.2; Allen-Zhu and Li, "Physics of Language
// Models: Part 3.3, Knowledge Capacity Scaling Laws", 2024, the bioS data set at CPU size).
//
// N people get unique three-word names (first, middle, last) from pools of F, M and S words, and
// six attributes drawn uniformly and independently: the Part 3.3 set (gender, birth date, birth
// city, university, major, employer) with value sets small enough for a CPU model. Every value is
// one word of the vocabulary. A training document is one biography: one sentence per attribute,
// each from a template picked at random per document, in a random sentence order; the first
// sentence names the person in full and the others refer back with he/she (his/her), so the
// pronouns follow the gender attribute, as in bioS. Each person is written N·E times over a run of
// E exposures, always with the same facts.
//
// Defaults (BiosConfig()): N = 200, F × M × S = 12 × 8 × 12 = 1152 names; attribute value sets
// 2 × 24 × 20 × 16 × 12 × 20 (log2 S0 ≈ 21.8 bits a person, against Part 3.3's
// 2 × 67200 × 200 × 300 × 100 × 263 ≈ 47.6 bits); 176 words, 180 tokens with the four specials.
//
// Value words come from curated lists of readable invented names (cities, universities,
// employers), real majors, and ISO dates; sizes beyond a list continue with numbered words
// ("City_31"). The evaluation rendering (`evaluationDocument`) is fixed: template 0 of every
// attribute, attributes in `attributeNames` order, so gender and the full name come first.

/// The size of the K2 world. Missing keys in JSON take the defaults.
public struct BiosConfig: Codable, Equatable, Sendable {
    /// N, the number of people.
    public var people: Int
    /// F, M, S: pool sizes of first, middle and last names; N0 = F·M·S must be at least N.
    public var firstNames: Int
    public var middleNames: Int
    public var lastNames: Int
    /// Value-set sizes that replace the defaults, keyed by attribute name (see `attributeNames`;
    /// gender must stay 2 because it picks the pronouns).
    public var attributes: [String: Int]?
    /// E, the exposures (documents per person) the study intends; the trainer reports the
    /// exposures it reached, `documentsSeen / people`.
    public var exposures: Int

    /// The attributes in their fixed order (the order of `BiosTask.attributeNames` and of every
    /// per-attribute array).
    public static let attributeNames = ["gender", "birthdate", "birthcity", "university", "major", "employer"]
    /// Default value-set sizes, in `attributeNames` order.
    public static let defaultAttributeSizes = [2, 24, 20, 16, 12, 20]

    public static let peopleRange = 1...10_000_000
    public static let poolRange = 1...100_000
    public static let attributeSizeRange = 2...1_000_000
    public static let exposureRange = 1...1_000_000

    public init(
        people: Int = 200, firstNames: Int = 12, middleNames: Int = 8, lastNames: Int = 12,
        attributes: [String: Int]? = nil, exposures: Int = 100
    ) {
        self.people = people
        self.firstNames = firstNames
        self.middleNames = middleNames
        self.lastNames = lastNames
        self.attributes = attributes
        self.exposures = exposures
    }

    enum CodingKeys: String, CodingKey { case people, firstNames, middleNames, lastNames, attributes, exposures }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = BiosConfig()
        self.init(
            people: try c.decodeIfPresent(Int.self, forKey: .people) ?? d.people,
            firstNames: try c.decodeIfPresent(Int.self, forKey: .firstNames) ?? d.firstNames,
            middleNames: try c.decodeIfPresent(Int.self, forKey: .middleNames) ?? d.middleNames,
            lastNames: try c.decodeIfPresent(Int.self, forKey: .lastNames) ?? d.lastNames,
            attributes: try c.decodeIfPresent([String: Int].self, forKey: .attributes),
            exposures: try c.decodeIfPresent(Int.self, forKey: .exposures) ?? d.exposures)
    }

    /// N0 = F·M·S, the number of possible names.
    public var namePool: Int { firstNames * middleNames * lastNames }

    /// Value-set sizes in `attributeNames` order, overrides applied.
    public var attributeSizes: [Int] {
        zip(BiosConfig.attributeNames, BiosConfig.defaultAttributeSizes).map { attributes?[$0.0] ?? $0.1 }
    }

    /// Checks every field; the message names the field and the accepted range.
    public func validate() throws {
        func fail(_ m: String) -> BiosConfigError { BiosConfigError(message: "bios: " + m) }
        guard BiosConfig.peopleRange.contains(people) else {
            throw fail("people must be in \(BiosConfig.peopleRange), got \(people)")
        }
        for (field, v) in [("firstNames", firstNames), ("middleNames", middleNames), ("lastNames", lastNames)] {
            guard BiosConfig.poolRange.contains(v) else {
                throw fail("\(field) must be in \(BiosConfig.poolRange), got \(v)")
            }
        }
        guard namePool >= people else {
            throw fail(
                "firstNames·middleNames·lastNames (\(firstNames)·\(middleNames)·\(lastNames) = \(namePool)) "
                    + "must be at least people (\(people)) so every name is unique")
        }
        for (name, size) in (attributes ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard BiosConfig.attributeNames.contains(name) else {
                let known = BiosConfig.attributeNames.joined(separator: ", ")
                throw fail("attributes: unknown attribute \"\(name)\"; known: \(known)")
            }
            if name == "gender" {
                guard size == 2 else { throw fail("attributes.gender must be 2 (it picks he/she), got \(size)") }
            } else {
                guard BiosConfig.attributeSizeRange.contains(size) else {
                    throw fail("attributes.\(name) must be in \(BiosConfig.attributeSizeRange), got \(size)")
                }
            }
        }
        guard BiosConfig.exposureRange.contains(exposures) else {
            throw fail("exposures must be in \(BiosConfig.exposureRange), got \(exposures)")
        }
    }
}

/// An invalid K2 configuration.
public struct BiosConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// One person's facts.
public struct BiosPerson: Equatable, Sendable {
    /// Person index, 0..<N.
    public let index: Int
    /// Indices into the first, middle and last name pools.
    public let nameIndices: [Int]
    /// The three name words.
    public let name: [String]
    /// Value index of each attribute (0..<size), in `attributeNames` order; gender 0 is male.
    public let attributes: [Int]
}

/// One rendered biography with the positions an evaluator needs (indices into `words`).
public struct BiosEvalDocument: Equatable, Sendable {
    /// `<bos>`, the sentences, `<eos>`.
    public let words: [String]
    /// Positions of the three name words (their first occurrence).
    public let nameRange: Range<Int>
    /// Position of each attribute's value word, in `attributeNames` order.
    public let attributePositions: [Int]
}

/// K2: a world of N people and their biographies.
public struct BiosTask: SyntheticTask {
    public let config: BiosConfig
    public let attributeNames: [String]
    public let attributeSizes: [Int]
    /// The value words of every attribute, `attributeValues[a][v]`.
    public let attributeValues: [[String]]
    public let firstNamePool: [String], middleNamePool: [String], lastNamePool: [String]
    /// Sentence templates per attribute, as words with the placeholders {S} (subject: full name or
    /// he/she), {SP} (possessive: full name + 's, or his/her) and {V} (the value word).
    public let templates: [[[String]]]
    public let vocabulary: [String]
    public let maxDocumentLength: Int

    static let namesStream: UInt64 = 0x4B32_4E41
    static let factsStream: UInt64 = 0x4B32_4641
    static let documentStream: UInt64 = 0x4B32_444F

    public init(config: BiosConfig) throws {
        try config.validate()
        self.config = config
        attributeNames = BiosConfig.attributeNames
        attributeSizes = config.attributeSizes
        attributeValues = zip(attributeNames, attributeSizes).map { BiosWords.values(of: $0.0, count: $0.1) }
        firstNamePool = BiosWords.pool(BiosWords.firstNames, count: config.firstNames, fallback: "Given")
        middleNamePool = BiosWords.pool(BiosWords.middleNames, count: config.middleNames, fallback: "Middle")
        lastNamePool = BiosWords.pool(BiosWords.lastNames, count: config.lastNames, fallback: "Surname")
        templates = attributeNames.map { BiosWords.templates[$0]! }

        var words: [String] = [], seen = Set(WordTokenizer.specials)
        func add(_ w: String) throws {
            guard seen.insert(w).inserted else {
                throw BiosConfigError(message: "bios: vocabulary word \"\(w)\" appears twice")
            }
            words.append(w)
        }
        var templateWords: [String] = [], seenTemplate = Set(BiosWords.placeholders)
        for t in templates.joined() { for w in t where seenTemplate.insert(w).inserted { templateWords.append(w) } }
        for w in templateWords + BiosWords.pronouns + firstNamePool + middleNamePool + lastNamePool { try add(w) }
        for w in attributeValues.joined() { try add(w) }
        vocabulary = words

        // Longest biography: every sentence with a pronoun subject at its longest, plus the one
        // sentence that carries the full name (which lengthens it the most), plus <bos> and <eos>.
        func length(_ t: [String], named: Bool) -> Int {
            t.reduce(0) { n, w in n + (w == "{S}" ? (named ? 3 : 1) : w == "{SP}" ? (named ? 4 : 1) : 1) }
        }
        let pronounMax = templates.map { $0.map { length($0, named: false) }.max()! }
        let namedMax = templates.map { $0.map { length($0, named: true) }.max()! }
        let extra = zip(namedMax, pronounMax).map { $0 - $1 }.max()!
        maxDocumentLength = 2 + pronounMax.reduce(0, +) + extra
    }

    public var family: String { "bios" }

    /// N0 = F·M·S.
    public var namePool: Int { config.namePool }

    /// N·E: the training documents that give every person E exposures.
    public var plannedDocuments: Int { config.people * config.exposures }

    /// Person `i` (0..<N) of the world for `seed`. Names are distinct: person i gets name number
    /// π(i) of the N0 possible, π a seeded pseudo-random permutation of 0..<N0 (a four-round
    /// Feistel network with cycle walking), so no person needs the others to be generated.
    public func person(seed: UInt64, _ i: Int) -> BiosPerson {
        precondition(i >= 0 && i < config.people, "bios: person \(i) outside 0..<\(config.people)")
        let pool = namePool
        let k = BiosTask.permute(i, domain: pool, seed: seed)
        let mm = config.middleNames, ss = config.lastNames
        let idx = [k / (mm * ss), (k / ss) % mm, k % ss]
        var rng = TaskRNG(seed: seed, stream: BiosTask.factsStream, index: i)
        let facts = attributeSizes.map { rng.int($0) }
        return BiosPerson(
            index: i, nameIndices: idx,
            name: [firstNamePool[idx[0]], middleNamePool[idx[1]], lastNamePool[idx[2]]],
            attributes: facts)
    }

    /// Renders person `i` with template `templates[a]` for attribute a and the sentences in
    /// `order` (a permutation of the attribute indices; the first sentence carries the full name).
    public func biography(seed: UInt64, person i: Int, templates chosen: [Int], order: [Int]) -> BiosEvalDocument {
        precondition(
            chosen.count == attributeNames.count && order.sorted() == Array(attributeNames.indices),
            "bios: one template per attribute and a permutation of the attributes")
        let p = person(seed: seed, i)
        let male = p.attributes[0] == 0
        var words = ["<bos>"], positions = [Int](repeating: -1, count: attributeNames.count)
        var nameStart = -1
        for (k, a) in order.enumerated() {
            let named = k == 0
            for w in templates[a][chosen[a]] {
                switch w {
                case "{S}", "{SP}":
                    if named {
                        if nameStart < 0 { nameStart = words.count }
                        words += p.name
                        if w == "{SP}" { words.append("'s") }
                    } else {
                        words.append(w == "{S}" ? (male ? "he" : "she") : (male ? "his" : "her"))
                    }
                case "{V}":
                    positions[a] = words.count
                    words.append(attributeValues[a][p.attributes[a]])
                default:
                    words.append(w)
                }
            }
        }
        words.append("<eos>")
        return BiosEvalDocument(words: words, nameRange: nameStart..<(nameStart + 3), attributePositions: positions)
    }

    /// The fixed evaluation rendering of person `i`: template 0 of every attribute, attributes in
    /// `attributeNames` order (gender first, with the full name).
    public func evaluationDocument(seed: UInt64, person i: Int) -> BiosEvalDocument {
        biography(
            seed: seed, person: i, templates: Array(repeating: 0, count: attributeNames.count),
            order: Array(attributeNames.indices))
    }

    /// Biography of person (index mod N) with a random template per attribute and a random
    /// sentence order drawn from TaskRNG(seed, document stream, index); every token scored.
    public func trainingDocument(seed: UInt64, index: Int) throws -> Document {
        let n = config.people
        var rng = TaskRNG(seed: seed, stream: BiosTask.documentStream, index: index)
        let chosen = templates.map { rng.int($0.count) }
        var order = Array(attributeNames.indices)
        for j in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(j, rng.int(j + 1)) }
        let doc = biography(seed: seed, person: ((index % n) + n) % n, templates: chosen, order: order)
        return Document(words: doc.words, scored: Array(repeating: true, count: doc.words.count))
    }

    /// A seeded bijection of 0..<domain: a balanced four-round Feistel network on the smallest
    /// power of four ≥ domain, walked until it lands inside the domain (at most ~4 steps on
    /// average; the walk stays in the cycle of x, so it is a bijection of 0..<domain).
    static func permute(_ x: Int, domain: Int, seed: UInt64) -> Int {
        let bits = domain <= 1 ? 1 : 64 - UInt64(domain - 1).leadingZeroBitCount
        let half = max(1, (bits + 1) / 2)
        let mask: UInt64 = (1 << UInt64(half)) - 1
        var keys = TaskRNG(seed: seed, stream: BiosTask.namesStream, index: 0)
        let roundKeys = (0..<4).map { _ in keys.next() }
        var v = UInt64(x)
        repeat {
            var l = v >> UInt64(half), r = v & mask
            for key in roundKeys {
                var f = TaskRNG(seed: key ^ r)
                (l, r) = (r, l ^ (f.next() & mask))
            }
            v = (l << UInt64(half)) | r
        } while v >= UInt64(domain)
        return Int(v)
    }
}

/// The word lists of bioS-lite.
enum BiosWords {
    static let placeholders = ["{S}", "{SP}", "{V}"]
    static let pronouns = ["he", "she", "his", "her", "'s"]

    // Gender-neutral first and middle names, because gender is drawn independently of the name.
    static let firstNames = [
        "Alex", "Robin", "Sam", "Jordan", "Taylor", "Casey", "Morgan", "Riley", "Jamie", "Quinn", "Avery", "Rowan",
        "Sasha", "Kai", "Drew", "Emery", "Harper", "Jules", "Reese", "Skyler", "Blair", "Dana", "Ellis", "Frankie",
        "Hayden", "Jesse", "Kendall", "Lane", "Marlo", "Noel", "Parker", "Remy", "Sage", "Tatum", "Wren", "Arden",
        "Brook", "Cameron", "Devon", "Eden",
    ]
    static let middleNames = [
        "Ash", "Bay", "Cole", "Dale", "Ezra", "Finn", "Gray", "Hale", "Indigo", "Jay", "Kit", "Lee", "Max", "Nico",
        "Oak", "Pat", "Rae", "Shay", "Tate", "Val", "Blue", "Cruz", "Dell", "Eli", "Fox", "Glen", "Hollis", "Ira",
        "Jude", "Kris", "Lou", "Mickey", "Nova", "Ollie", "Perry", "Reed", "Sol", "Toby", "Vic", "Wynn",
    ]
    static let lastNames = [
        "Abbott", "Barnes", "Carver", "Dalton", "Ellison", "Fletcher", "Garner", "Holloway", "Ingram", "Jarvis",
        "Keller", "Lowell", "Mercer", "Norwood", "Oakley", "Prescott", "Quimby", "Radcliffe", "Sutton", "Thorne",
        "Underwood", "Vance", "Whitaker", "Yardley", "Ashford", "Blackwood", "Crane", "Drummond", "Everett",
        "Fairbanks", "Griswold", "Hargrove", "Ives", "Kingsley", "Langford", "Merriweather", "Nash", "Osborne",
        "Pembroke", "Ridley",
    ]
    static let cities = [
        "Aldmere", "Brenwick", "Caldora", "Dunhollow", "Elmsford", "Fenmarch", "Glenmoor", "Harrowby", "Ironvale",
        "Jarrowick", "Kelmsby", "Lornhaven", "Marrowdale", "Northwick", "Oakhurst", "Pellridge", "Quarrystone",
        "Ravenholm", "Saltmere", "Thornbury", "Umberlee", "Valewood", "Westerby", "Yarrowfield", "Zennor", "Ashcombe",
        "Birchport", "Coldwater", "Dawnridge", "Eastmarch",
    ]
    static let universities = [
        "Halvard", "Linmoor", "Castellan", "Brightwater", "Merrow", "Stonebridge", "Wexley", "Corrin", "Tallis",
        "Greyfield", "Ambrose", "Kingsreach", "Eldham", "Rosslyn", "Sablewood", "Norland", "Pemberton", "Ostwick",
        "Fairhollow", "Redcliff", "Silverlake", "Moorcroft", "Hawthorne", "Bellmont",
    ].map { $0 + "_University" }
    static let majors = [
        "physics", "biology", "chemistry", "history", "economics", "philosophy", "linguistics", "geology",
        "astronomy", "mathematics", "sociology", "architecture", "music", "law", "medicine", "nursing", "statistics",
        "literature", "psychology", "anthropology", "engineering", "finance", "journalism", "ecology",
    ]
    static let employers = [
        "Novalink", "Brightforge", "Quillcraft", "Tessellon", "Corvane", "Lumora", "Helixium", "Stratobank",
        "Ferrowind", "Glimmerco", "Maplecore", "Vantor", "Bluecrest", "Arcwell", "Tidemark", "Ironleaf", "Solvane",
        "Pinelab", "Quantrel", "Rivetworks", "Skyloom", "Terracove", "Umbrix", "Verdigris", "Wavecrest", "Xylomark",
        "Yieldra", "Zephyrine", "Copperline", "Duneware",
    ]
    static let months = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]

    static let templates: [String: [[String]]] = [
        "gender": [
            "{S} is {V} .", "{S} identifies as {V} .", "{SP} gender is {V} .",
        ],
        "birthdate": [
            "{S} was born on {V} .", "{S} came into this world on {V} .", "{SP} birthday is {V} .",
            "{S} celebrates a birthday on {V} .",
        ],
        "birthcity": [
            "{S} was born in {V} .", "{S} hails from {V} .", "{SP} birthplace is {V} .",
            "{S} spent the early years in {V} .",
        ],
        "university": [
            "{S} studied at {V} .", "{S} graduated from {V} .", "{SP} alma mater is {V} .",
            "{S} received an education at {V} .",
        ],
        "major": [
            "{S} majored in {V} .", "{S} completed a degree in {V} .", "{SP} field of study was {V} .",
            "{S} specialised in {V} .",
        ],
        "employer": [
            "{S} works for {V} .", "{S} is employed by {V} .", "{SP} employer is {V} .", "{S} earns a living at {V} .",
        ],
    ].mapValues { $0.map { $0.split(separator: " ").map(String.init) } }

    /// The first `count` words of `list`, continued with numbered words ("City_31") beyond it.
    static func pool(_ list: [String], count: Int, fallback: String) -> [String] {
        (0..<count).map { $0 < list.count ? list[$0] : "\(fallback)_\($0)" }
    }

    /// The `count` value words of attribute `name`.
    static func values(of name: String, count: Int) -> [String] {
        switch name {
        case "gender": return ["male", "female"]
        // Distinct dates: value j is month j mod 12 of year 1950 + j/12, on a day spread over 1...28.
        case "birthdate":
            return (0..<count).map { j in
                let day = 1 + (11 * j + 3) % 28
                return "\(1950 + j / 12)-\(months[j % 12])-\(day < 10 ? "0" : "")\(day)"
            }
        case "birthcity": return pool(cities, count: count, fallback: "City")
        case "university": return pool(universities, count: count, fallback: "University")
        case "major": return pool(majors, count: count, fallback: "Major")
        case "employer": return pool(employers, count: count, fallback: "Employer")
        default: preconditionFailure("bios: no words for attribute \(name)")
        }
    }
}
