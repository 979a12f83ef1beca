// RandomTokensTests.swift: K1 windows are fixed, seeded, non-overlapping and uniform.

import Foundation
import Testing
import VLDTasks

@Test func randomTokensConfigDefaultsAndValidation() throws {
    let d = RandomTokensConfig()
    #expect(d.symbols == 64 && d.tokens == 32768)
    try d.validate(window: 128)

    func message(_ c: RandomTokensConfig, window: Int) -> String? {
        do { try c.validate(window: window); return nil } catch let e as RandomTokensConfigError {
            return e.message
        } catch { return "unexpected \(error)" }
    }
    #expect(message(RandomTokensConfig(symbols: 1), window: 64)?.contains("symbols must be in 2...4096") == true)
    #expect(message(RandomTokensConfig(symbols: 4097), window: 64)?.contains("symbols") == true)
    #expect(message(RandomTokensConfig(tokens: 63), window: 64)?.contains("tokens must be in 64...") == true)
    #expect(message(RandomTokensConfig(), window: 1)?.contains("window") == true)
    #expect(throws: RandomTokensConfigError.self) {
        try RandomTokensTask(config: RandomTokensConfig(tokens: 10), window: 16)
    }

    // A manifest may name only what it changes.
    let partial = try JSONDecoder().decode(RandomTokensConfig.self, from: Data(#"{"symbols": 16}"#.utf8))
    #expect(partial == RandomTokensConfig(symbols: 16, tokens: 32768))
    let encoded = try JSONEncoder().encode(RandomTokensConfig(symbols: 9, tokens: 99))
    let back = try JSONDecoder().decode(RandomTokensConfig.self, from: encoded)
    #expect(back == RandomTokensConfig(symbols: 9, tokens: 99))
}

@Test func randomTokensShapeAndVocabulary() throws {
    let task = try RandomTokensTask(config: RandomTokensConfig(symbols: 8, tokens: 1000), window: 64)
    #expect(task.family == "random-tokens")
    #expect(task.vocabulary == ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"])
    #expect(task.windowCount == 15)  // floor(1000 / 64); the last 40 tokens are dropped
    #expect(task.predictedTokens == 15 * 63)
    #expect(task.maxDocumentLength == 64)
    let tokenizer = try WordTokenizer(family: task.family, words: task.vocabulary)
    for i in 0..<task.windowCount {
        let w = task.window(seed: 5, i)
        #expect(w.count == 64)
        #expect(!tokenizer.encode(w.joined(separator: " ")).contains(WordTokenizer.unknown))
    }
}

@Test func randomTokensWindowsAreFixedPerSeed() throws {
    let task = try RandomTokensTask(config: RandomTokensConfig(symbols: 32, tokens: 4096), window: 128)
    #expect(task.windowCount == 32)
    // Identical between calls (training and evaluation read the same windows).
    for i in [0, 7, 31] { #expect(task.window(seed: 11, i) == task.window(seed: 11, i)) }
    // A different seed is a different stream.
    #expect(task.window(seed: 11, 0) != task.window(seed: 12, 0))
    #expect((0..<32).filter { task.window(seed: 11, $0) == task.window(seed: 12, $0) }.isEmpty)

    // Training documents cycle through exactly these windows, every token scored.
    for index in [0, 5, 31, 32, 37, 32 * 9 + 4] {
        let doc = try task.trainingDocument(seed: 11, index: index)
        #expect(doc.words == task.window(seed: 11, index % 32))
        #expect(doc.scored == Array(repeating: true, count: 128))
    }
    #expect(try task.trainingDocument(seed: 11, index: 3) != task.trainingDocument(seed: 11, index: 4))
}

@Test func randomTokensWindowsDoNotOverlap() throws {
    // Non-overlapping cuts of one stream: no window repeats another, and no window is another
    // shifted by a few tokens (what a stride smaller than T would produce).
    let task = try RandomTokensTask(config: RandomTokensConfig(symbols: 4, tokens: 64 * 40), window: 64)
    let windows = (0..<task.windowCount).map { task.window(seed: 3, $0) }
    #expect(Set(windows.map { $0.joined(separator: " ") }).count == windows.count)
    for i in 0..<windows.count {
        for j in 0..<windows.count where i != j {
            for shift in 1...8 {
                #expect(Array(windows[i].dropFirst(shift)) != Array(windows[j].prefix(64 - shift)))
            }
        }
    }
}

@Test(arguments: [UInt64(1), 2, 99])
func randomTokensAreUniformAndIndependent(seed: UInt64) throws {
    let n = 16
    let task = try RandomTokensTask(config: RandomTokensConfig(symbols: n, tokens: 32768), window: 256)
    let stream = (0..<task.windowCount).flatMap { task.windowSymbols(seed: seed, $0) }
    #expect(stream.count == 32768)
    #expect(zip(stream, (0..<task.windowCount).flatMap { task.window(seed: seed, $0) }).allSatisfy { "s\($0)" == $1 })

    // Single-symbol frequencies: chi-square with 15 degrees of freedom (mean 15, sd 5.5);
    // 60 is beyond p = 1e-7, so a biased draw fails and a fair one never does.
    var counts = [Double](repeating: 0, count: n)
    for s in stream { counts[s] += 1 }
    let expected = Double(stream.count) / Double(n)
    let chi1 = counts.reduce(0.0) { $0 + ($1 - expected) * ($1 - expected) / expected }
    #expect(chi1 < 60, "symbol chi-square \(chi1) over 15 dof")

    // Consecutive pairs: chi-square with 255 dof (mean 255, sd 22.6); 400 is 6.4 sd out.
    var pairs = [Double](repeating: 0, count: n * n)
    for t in 1..<stream.count { pairs[stream[t - 1] * n + stream[t]] += 1 }
    let expectedPair = Double(stream.count - 1) / Double(n * n)
    let chi2 = pairs.reduce(0.0) { $0 + ($1 - expectedPair) * ($1 - expectedPair) / expectedPair }
    #expect(chi2 < 400, "pair chi-square \(chi2) over 255 dof")
}
