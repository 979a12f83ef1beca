// TokenizerTests.swift: the word-level tokenizer round-trips and tokenizer.json is checked on load.

import Foundation
import Testing
import VLDTasks

@Test func encodeDecodeRoundTrip() throws {
    let t = try WordTokenizer(family: "toy", words: ["alice", "lives", "in", "paris", "."])
    #expect(t.vocabSize == 9)
    let ids = t.encode("alice lives in paris .")
    #expect(ids == [4, 5, 6, 7, 8])
    #expect(t.decode(ids) == "alice lives in paris .")
    #expect(t.encode("bob lives") == [WordTokenizer.unknown, 5])
    #expect(throws: TokenizerError(message: "toy: \"bob\" is not in the vocabulary")) { try t.encodeStrict("bob") }
    #expect(t.decode([WordTokenizer.pad, 4, WordTokenizer.pad]) == "alice")
}

@Test func badVocabulariesAreRefused() {
    #expect(throws: TokenizerError.self) { try WordTokenizer(family: "x", words: ["a", "a"]) }
    #expect(throws: TokenizerError.self) { try WordTokenizer(family: "x", words: ["a b"]) }
    #expect(throws: TokenizerError.self) { try WordTokenizer(family: "x", words: ["<pad>"]) }
}

@Test func savedVocabularyIsCheckedOnLoad() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vld-tok-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let t = try WordTokenizer(family: "toy", words: ["a", "b", "c"])
    try t.save(in: dir)
    #expect(try WordTokenizer.load(from: dir, expecting: t) == t)
    let other = try WordTokenizer(family: "toy", words: ["a", "c", "b"])
    #expect(throws: TokenizerError.self) { try WordTokenizer.load(from: dir, expecting: other) }
    let family = try WordTokenizer(family: "other", words: ["a", "b", "c"])
    #expect(throws: TokenizerError.self) { try WordTokenizer.load(from: dir, expecting: family) }
    try Data("{\"family\":\"toy\",\"words\":[\"a\"]}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
    #expect(throws: TokenizerError.self) { try WordTokenizer.load(from: dir, expecting: t) }
}
