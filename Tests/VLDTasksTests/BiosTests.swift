// BiosTests.swift: the bioS-lite world is seeded, its names unique, its facts uniform and stable
// across renderings, and every rendering stays inside the vocabulary.

import Foundation
import Testing
import VLDTasks

private func configError(_ c: BiosConfig) -> String? {
    do { try c.validate(); return nil } catch let e as BiosConfigError { return e.message } catch {
        return "unexpected \(error)"
    }
}

@Test func biosConfigDefaultsAndValidation() throws {
    let d = BiosConfig()
    #expect(d.people == 200 && d.exposures == 100 && d.namePool == 1152)
    #expect(d.attributeSizes == [2, 24, 20, 16, 12, 20])
    try d.validate()

    #expect(configError(BiosConfig(people: 0))?.contains("people must be in 1...") == true)
    let tooFewNames = BiosConfig(people: 50, firstNames: 3, middleNames: 4, lastNames: 4)
    #expect(configError(tooFewNames)?.contains("= 48) must be at least people (50)") == true)
    #expect(configError(BiosConfig(middleNames: 0))?.contains("middleNames") == true)
    #expect(configError(BiosConfig(attributes: ["hobby": 4]))?.contains("unknown attribute \"hobby\"") == true)
    #expect(configError(BiosConfig(attributes: ["gender": 3]))?.contains("gender must be 2") == true)
    #expect(configError(BiosConfig(attributes: ["major": 1]))?.contains("attributes.major must be in 2...") == true)
    #expect(configError(BiosConfig(exposures: 0))?.contains("exposures") == true)
    #expect(throws: BiosConfigError.self) { try BiosTask(config: BiosConfig(people: 2000)) }

    let json = #"{"people": 50, "attributes": {"major": 30}}"#
    let partial = try JSONDecoder().decode(BiosConfig.self, from: Data(json.utf8))
    #expect(partial == BiosConfig(people: 50, attributes: ["major": 30]))
    #expect(partial.attributeSizes == [2, 24, 20, 16, 30, 20])
}

@Test func biosVocabularyIsSmallAndClosed() throws {
    let task = try BiosTask(config: BiosConfig())
    #expect(task.family == "bios")
    #expect(task.attributeNames == ["gender", "birthdate", "birthcity", "university", "major", "employer"])
    #expect(task.attributeSizes == [2, 24, 20, 16, 12, 20])
    #expect(task.vocabulary.count == 176)
    let tokenizer = try WordTokenizer(family: task.family, words: task.vocabulary)  // no duplicates, no spaces
    #expect(tokenizer.vocabSize == 180)
    // Pools and value sets are disjoint one-word lists of the configured sizes.
    #expect(task.firstNamePool.count == 12 && task.middleNamePool.count == 8 && task.lastNamePool.count == 12)
    #expect(zip(task.attributeValues, task.attributeSizes).allSatisfy { $0.count == $1 && Set($0).count == $1 })
    #expect(Set(task.attributeValues.joined()).count == task.attributeSizes.reduce(0, +))

    // Larger overrides continue the curated lists with numbered words, still all distinct.
    let big = try BiosTask(
        config: BiosConfig(
            people: 5000, firstNames: 50, middleNames: 10, lastNames: 20,
            attributes: ["birthcity": 100, "birthdate": 300]))
    #expect(big.attributeValues[2].count == 100 && big.attributeValues[2].last == "City_99")
    #expect(Set(big.attributeValues[1]).count == 300)
    #expect(big.firstNamePool.last == "Given_49")
    _ = try WordTokenizer(family: big.family, words: big.vocabulary)
}

@Test func biosTemplatesRenderOnlyVocabularyWords() throws {
    let task = try BiosTask(config: BiosConfig(people: 40))
    let tokenizer = try WordTokenizer(family: task.family, words: task.vocabulary)
    for (a, ts) in task.templates.enumerated() {
        #expect(ts.count >= 3, "\(task.attributeNames[a]) has \(ts.count) templates")
        for t in ts {
            #expect(t.filter { $0 == "{V}" }.count == 1 && t.filter { $0 == "{S}" || $0 == "{SP}" }.count == 1)
            #expect(t.last == ".")
        }
    }
    // Every template of every attribute, as the named first sentence and as a pronoun sentence,
    // for people of both genders.
    let A = task.attributeNames.count
    let genders = Set((0..<40).map { task.person(seed: 1, $0).attributes[0] })
    #expect(genders == [0, 1])
    for i in 0..<40 {
        for t in 0..<4 {
            for first in 0..<A {
                let chosen = task.templates.map { t % $0.count }
                let order = [first] + (0..<A).filter { $0 != first }
                let doc = task.biography(seed: 1, person: i, templates: chosen, order: order)
                #expect(
                    !tokenizer.encode(doc.words.joined(separator: " ")).contains(WordTokenizer.unknown),
                    "\(doc.words)")
                #expect(doc.words.count <= task.maxDocumentLength)
            }
        }
    }
}

private func longestTemplate(_ ts: [[String]]) -> Int { ts.indices.max { ts[$0].count < ts[$1].count }! }

@Test func biosMaxDocumentLengthIsAttained() throws {
    // The bound is exact: the longest template everywhere, with the full name in the sentence it
    // lengthens most, reaches it.
    let task = try BiosTask(config: BiosConfig(people: 5))
    let A = task.attributeNames.count
    var longest = 0
    for first in 0..<A {
        for tFirst in task.templates[first].indices {
            let chosen = (0..<A).map { a in
                a == first ? tFirst : longestTemplate(task.templates[a])
            }
            let order = [first] + (0..<A).filter { $0 != first }
            longest = max(longest, task.biography(seed: 0, person: 0, templates: chosen, order: order).words.count)
        }
    }
    #expect(longest == task.maxDocumentLength)
    let seen = try (0..<3000).map { try task.trainingDocument(seed: 9, index: $0).words.count }.max()!
    #expect(seen <= task.maxDocumentLength)
}

@Test func biosPeopleAreSeededWithUniqueNames() throws {
    let task = try BiosTask(config: BiosConfig())
    let a = (0..<200).map { task.person(seed: 7, $0) }
    #expect(a == (0..<200).map { task.person(seed: 7, $0) })
    #expect(Set(a.map { $0.name }).count == 200)
    #expect(a.allSatisfy { $0.name.count == 3 && $0.attributes.count == 6 })
    #expect(a.enumerated().allSatisfy { $0.offset == $0.element.index })
    let b = (0..<200).map { task.person(seed: 8, $0) }
    #expect(zip(a, b).filter { $0.name == $1.name }.count < 10)
    #expect(zip(a, b).filter { $0.attributes == $1.attributes }.count < 5)

    // With N = N0 every possible name is used exactly once (the name map is a bijection).
    for (f, m, s) in [(3, 2, 2), (5, 7, 3), (1, 1, 1), (2, 1, 1), (9, 9, 9)] {
        let full = try BiosTask(config: BiosConfig(people: f * m * s, firstNames: f, middleNames: m, lastNames: s))
        let names = (0..<(f * m * s)).map { full.person(seed: 3, $0).nameIndices }
        #expect(Set(names).count == f * m * s)
        #expect(names.allSatisfy { $0[0] < f && $0[1] < m && $0[2] < s })
    }
}

@Test func biosAttributeValuesAreUniform() throws {
    // 2400 people: each attribute's values are drawn uniformly; chi-square per attribute with
    // size − 1 dof, bounded at dof + 7·sqrt(2·dof) (far in the tail for a fair draw).
    let task = try BiosTask(config: BiosConfig(people: 2400, firstNames: 20, middleNames: 10, lastNames: 20))
    let people = (0..<2400).map { task.person(seed: 21, $0) }
    for (a, size) in task.attributeSizes.enumerated() {
        var counts = [Double](repeating: 0, count: size)
        for p in people { counts[p.attributes[a]] += 1 }
        let e = 2400.0 / Double(size)
        let chi = counts.reduce(0.0) { $0 + ($1 - e) * ($1 - e) / e }
        let dof = Double(size - 1)
        let bound: Double = dof + 7 * (2 * dof).squareRoot()
        #expect(chi < bound, "\(task.attributeNames[a]): chi-square \(chi) over \(size - 1) dof")
    }
    // The name pools are used evenly too (N0 = 4000 names, 2400 drawn without replacement).
    var first = [Double](repeating: 0, count: 20)
    for p in people { first[p.nameIndices[0]] += 1 }
    let chiFirst = first.reduce(0.0) { $0 + ($1 - 120) * ($1 - 120) / 120 }
    #expect(chiFirst < 19 + 7 * 38.0.squareRoot(), "first names: chi-square \(chiFirst)")
}

@Test func biosTrainingDocumentsVaryWordingButKeepFacts() throws {
    let task = try BiosTask(config: BiosConfig())
    let valuePairs = task.attributeValues.enumerated().flatMap { a, vs in vs.map { ($0, a) } }
    let valueAttribute = Dictionary(uniqueKeysWithValues: valuePairs)
    #expect(try task.trainingDocument(seed: 4, index: 17) == (try task.trainingDocument(seed: 4, index: 17)))
    #expect(try task.trainingDocument(seed: 4, index: 17) != (try task.trainingDocument(seed: 5, index: 17)))

    for i in [0, 17, 199] {
        let p = task.person(seed: 4, i)
        var renderings = Set<[String]>(), firstValues = Set<String>()
        for e in 0..<30 {
            let doc = try task.trainingDocument(seed: 4, index: i + 200 * e)
            #expect(doc.scored.allSatisfy { $0 } && doc.scored.count == doc.words.count)
            #expect(doc.words.first == "<bos>" && doc.words.last == "<eos>")
            #expect(doc.words.count <= task.maxDocumentLength)
            // The full name, once, inside the first sentence; then pronouns of the right gender.
            let firstDot = doc.words.firstIndex(of: ".")!
            let at = (0..<doc.words.count - 2).filter { Array(doc.words[$0..<($0 + 3)]) == p.name }
            #expect(at.count == 1 && at[0] < firstDot)
            let wrong: Set<String> = p.attributes[0] == 0 ? ["she", "her"] : ["he", "his"]
            #expect(doc.words.allSatisfy { !wrong.contains($0) })
            // Exactly one value word per attribute, and it is the person's.
            let values = doc.words.compactMap { w in valueAttribute[w].map { ($0, w) } }
            #expect(values.map(\.0).sorted() == Array(0..<6))
            for (a, w) in values { #expect(w == task.attributeValues[a][p.attributes[a]]) }
            renderings.insert(doc.words)
            firstValues.insert(values[0].1)
        }
        #expect(renderings.count >= 25, "only \(renderings.count) distinct renderings in 30 exposures")
        #expect(firstValues.count >= 4, "sentence order hardly varies: \(firstValues)")
    }
}

@Test func biosEvaluationDocumentPointsAtTheFacts() throws {
    let task = try BiosTask(config: BiosConfig())
    for i in [0, 1, 99, 199] {
        let p = task.person(seed: 2, i)
        let doc = task.evaluationDocument(seed: 2, person: i)
        #expect(doc == task.evaluationDocument(seed: 2, person: i))
        #expect(doc.words.first == "<bos>" && doc.words.last == "<eos>")
        #expect(doc.nameRange == 1..<4 && Array(doc.words[doc.nameRange]) == p.name)
        #expect(doc.attributePositions.count == 6)
        for a in 0..<6 { #expect(doc.words[doc.attributePositions[a]] == task.attributeValues[a][p.attributes[a]]) }
        #expect(doc.attributePositions == doc.attributePositions.sorted())  // canonical order
        // Canonical: template 0 of each attribute, in attribute order.
        let pronoun = p.attributes[0] == 0 ? "he" : "she"
        let expected =
            ["<bos>"] + p.name + [
                "is", task.attributeValues[0][p.attributes[0]], ".",
                pronoun, "was", "born", "on", task.attributeValues[1][p.attributes[1]], ".",
            ]
        #expect(Array(doc.words.prefix(expected.count)) == expected)
    }
    // A random rendering reports positions that also point at the facts.
    let p = task.person(seed: 2, 5)
    let doc = task.biography(seed: 2, person: 5, templates: [2, 3, 2, 1, 2, 3], order: [4, 0, 5, 2, 1, 3])
    #expect(Array(doc.words[doc.nameRange]) == p.name && doc.words[doc.nameRange.upperBound] == "'s")
    for a in 0..<6 { #expect(doc.words[doc.attributePositions[a]] == task.attributeValues[a][p.attributes[a]]) }
}
