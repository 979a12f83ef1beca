// Tokenizer.swift: a word-level tokenizer with a fixed vocabulary per task family.
//
// Synthetic tasks have closed vocabularies (names, attribute values, numbers mod 23, operators),
// so a word-level tokenizer is exact: every word is one token and nothing is ever split. The
// vocabulary is fixed when the task family is built and saved next to every checkpoint as
// tokenizer.json; loading a checkpoint checks that the saved vocabulary equals the task's, so a
// model is never evaluated with ids that mean something else.

import Foundation
import VLDJSON

/// A fixed word-level vocabulary. Ids 0..<specials.count are the special tokens.
public struct WordTokenizer: Codable, Equatable, Sendable {
    /// Padding, unknown word, beginning and end of sequence, in this order (ids 0...3).
    public static let specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    public static let pad: Int32 = 0, unknown: Int32 = 1, bos: Int32 = 2, eos: Int32 = 3

    /// Name of the task family this vocabulary belongs to (e.g. "igsm", "bios").
    public let family: String
    /// Every token, indexed by id; specials first.
    public let words: [String]
    private let ids: [String: Int32]

    /// Builds a vocabulary of the specials followed by `words` in the given order (duplicates
    /// and words containing whitespace are refused, so encode/decode round-trips).
    public init(family: String, words: [String]) throws {
        var seen = Set(WordTokenizer.specials)
        for w in words {
            guard !w.isEmpty, !w.contains(where: \.isWhitespace) else {
                throw TokenizerError(message: "\(family): vocabulary word \"\(w)\" is empty or contains whitespace")
            }
            guard seen.insert(w).inserted else {
                throw TokenizerError(message: "\(family): vocabulary word \"\(w)\" appears twice")
            }
        }
        self.family = family
        self.words = WordTokenizer.specials + words
        var map: [String: Int32] = [:]
        for (i, w) in self.words.enumerated() { map[w] = Int32(i) }
        ids = map
    }

    enum CodingKeys: String, CodingKey { case family, words }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let family = try c.decode(String.self, forKey: .family)
        let words = try c.decode([String].self, forKey: .words)
        guard Array(words.prefix(WordTokenizer.specials.count)) == WordTokenizer.specials else {
            throw TokenizerError(
                message: "\(family): tokenizer.json must start with the special tokens \(WordTokenizer.specials)")
        }
        try self.init(family: family, words: Array(words.dropFirst(WordTokenizer.specials.count)))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(family, forKey: .family)
        try c.encode(words, forKey: .words)
    }

    public var vocabSize: Int { words.count }

    /// Token ids of the whitespace-separated words of `text`; unknown words map to `<unk>`.
    public func encode(_ text: String) -> [Int32] {
        text.split(whereSeparator: \.isWhitespace).map { ids[String($0)] ?? WordTokenizer.unknown }
    }

    /// Ids of `text`, throwing on the first word outside the vocabulary (for generated data,
    /// where an unknown word is a bug, not an input).
    public func encodeStrict(_ text: String) throws -> [Int32] {
        try text.split(whereSeparator: \.isWhitespace).map { word in
            guard let id = ids[String(word)] else {
                throw TokenizerError(message: "\(family): \"\(word)\" is not in the vocabulary")
            }
            return id
        }
    }

    /// The words of `tokens` joined by single spaces (padding dropped).
    public func decode(_ tokens: [Int32]) -> String {
        tokens.filter { $0 != WordTokenizer.pad }
            .map { $0 >= 0 && Int($0) < words.count ? words[Int($0)] : "<unk>" }
            .joined(separator: " ")
    }

    public func id(of word: String) -> Int32? { ids[word] }

    // MARK: tokenizer.json

    /// tokenizer.json: {"family": ..., "words": [...]}.
    public var jsonData: Data {
        Data(
            (JSONValue.object([("family", .string(family)), ("words", .array(words.map { .string($0) }))]).serialized()
                + "\n").utf8)
    }

    /// Reads tokenizer.json (the special tokens first, then the vocabulary).
    public init(jsonData: Data) throws {
        let v = try JSONValue.parse(jsonData)
        guard let family = v["family"]?.stringValue, case let .array(items)? = v["words"],
            items.allSatisfy({ $0.stringValue != nil })
        else { throw TokenizerError(message: "tokenizer.json needs \"family\" and a list of \"words\"") }
        let words = items.map { $0.stringValue! }
        guard Array(words.prefix(WordTokenizer.specials.count)) == WordTokenizer.specials else {
            throw TokenizerError(
                message: "\(family): tokenizer.json must start with the special tokens \(WordTokenizer.specials)")
        }
        try self.init(family: family, words: Array(words.dropFirst(WordTokenizer.specials.count)))
    }

    /// Writes tokenizer.json into `dir` (atomically: temp file, then rename).
    public func save(in dir: URL) throws {
        try jsonData.write(to: dir.appendingPathComponent("tokenizer.json"), options: .atomic)
    }

    /// Reads DIR/tokenizer.json and checks that it is exactly `expected`; the error names the
    /// family and the first differing id.
    public static func load(from dir: URL, expecting expected: WordTokenizer) throws -> WordTokenizer {
        let file = dir.appendingPathComponent("tokenizer.json")
        let saved: WordTokenizer
        do { saved = try WordTokenizer(jsonData: Data(contentsOf: file)) } catch let e as TokenizerError {
            throw e
        } catch {
            throw TokenizerError(message: "\(file.path): cannot read a tokenizer: \(error)")
        }
        guard saved.family == expected.family else {
            throw TokenizerError(
                message: "\(file.path): tokenizer of task family \(saved.family), expected \(expected.family)")
        }
        if saved.words != expected.words {
            let i =
                zip(saved.words, expected.words).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(saved.words.count, expected.words.count)
            throw TokenizerError(
                message: "\(file.path): vocabulary differs from the \(expected.family) task's at id \(i) "
                    + "(\(saved.vocabSize) vs \(expected.vocabSize) tokens)")
        }
        return saved
    }
}

/// A tokenizer problem; the message names the family or file.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
