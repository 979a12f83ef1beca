// JSON.swift: the project's one JSON value type, strict reader and writer (manifests, results,
// worker events, job files, reject reasons).
//
// Foundation's JSONSerialization keeps the last of duplicate keys, forgets key order and reports
// syntax errors without a position. Manifests need all three: a duplicate key is a mistake to
// report, `grid` expands in the order the author wrote, and a syntax error should say where. This
// is RFC 8259 JSON with a nesting limit and nothing else (no comments, no trailing commas).

import Foundation

/// A JSON value with object keys in document order.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.number(x), .number(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The member `key` of an object (nil for other values or a missing key).
    public subscript(key: String) -> JSONValue? {
        if case let .object(fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }

    /// A short rendering for error messages: strings quoted, containers abbreviated.
    public var brief: String {
        switch self {
        case .null: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .number(n): return JSONValue.format(n)
        case let .string(s): return DisplayText.quoted(s.count > 40 ? String(s.prefix(40)) + "..." : s)
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// What kind of value this is, for "expected X, got Y" messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    public static func format(_ n: Double) -> String {
        if n.rounded() == n && abs(n) < 1e15 { return String(Int64(n)) }
        return "\(n)"
    }
}

/// A syntax error with its 1-based line and column.
public struct JSONSyntaxError: Error, CustomStringConvertible, Equatable {
    public let line: Int, column: Int, message: String
    /// The error is at the end of the data: more bytes could make the document valid (a file
    /// still being written looks like this; the spool waits for such files).
    public var atEnd = false
    public var description: String { "line \(line), column \(column): \(message)" }
}

extension JSONValue {
    /// Nesting deeper than this is refused (a hostile file must not exhaust the stack).
    public static let maxDepth = 64

    /// Parses one JSON document (UTF-8). Duplicate keys, trailing data and invalid UTF-8 are errors.
    /// With `largeIntegersAsText`, an integer a Double cannot hold exactly (|n| >= 2^53) is
    /// returned as its decimal text (`.string`), so 64-bit values such as RNG state survive.
    public static func parse(_ data: Data, largeIntegersAsText: Bool = false) throws -> JSONValue {
        var p = Parser(bytes: [UInt8](data))
        p.largeIntegersAsText = largeIntegersAsText
        try p.checkUTF8()
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.loneSlashAtEnd { throw p.error("unexpected end of input in a comment") }
        guard p.i == p.bytes.count else { throw p.error("unexpected data after the JSON value") }
        return v
    }

    public static func parse(_ text: String) throws -> JSONValue { try parse(Data(text.utf8)) }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        var largeIntegersAsText = false
        var loneSlashAtEnd = false

        /// An error at the current position. Whether more data could still make the document
        /// valid is decided by position alone: an error is "at the end" exactly when the parser
        /// ran out of bytes, which every rule below arranges by reporting a cut-short token at
        /// `bytes.count` (a literal such as `tr`, a lone `/`, `\u00`, half a UTF-8 character).
        func error(_ message: String, at position: Int? = nil) -> JSONSyntaxError {
            let at = min(position ?? i, bytes.count)
            var line = 1, col = 1
            for b in bytes[..<at] {
                if b == 0x0A { line += 1; col = 1 } else if b & 0xC0 != 0x80 { col += 1 }
            }
            return JSONSyntaxError(line: line, column: col, message: message, atEnd: at >= bytes.count)
        }

        /// A byte as an error message shows it: printable ASCII quoted, anything else by value
        /// (a control character or a lone UTF-8 byte must not reach a terminal raw).
        static func describe(_ b: UInt8) -> String {
            (0x21...0x7E).contains(b)
                ? "'\(Character(UnicodeScalar(b)))'" : "byte 0x\(String(b, radix: 16, uppercase: true))"
        }

        /// True if the bytes from `i` to the end are a proper prefix of `token` (the data stops
        /// inside it).
        func cutShort(_ token: [UInt8]) -> Bool {
            let rest = bytes.count - i
            return rest < token.count && bytes[i...].elementsEqual(token.prefix(rest))
        }

        /// The data ends inside a UTF-8 character that starts at `k`. Whether more data could make
        /// the document valid depends on where that character stands (only in a string or a
        /// comment can it), so the text is parsed again with a complete character in its place:
        /// if that parses, or fails at its end, the document is cut short; an error before the
        /// placeholder (or at it: a character where none may stand) is the document's own.
        func cutInsideCharacter(at k: Int) -> JSONSyntaxError {
            var whole = Parser(bytes: Array(bytes[..<k]) + [0xC3, 0xA9])  // é
            do {
                whole.skipSpace()
                _ = try whole.value(depth: 0)
                whole.skipSpace()
                if whole.loneSlashAtEnd || whole.i == whole.bytes.count {
                    return error("the data ends inside a UTF-8 character", at: bytes.count)
                }
                return whole.error("unexpected data after the JSON value")
            } catch let e as JSONSyntaxError {
                return e.atEnd ? error("the data ends inside a UTF-8 character", at: bytes.count) : e
            } catch {
                return self.error("\(error)")
            }
        }

        /// RFC 3629 UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF). A sequence
        /// that is valid so far but stops at the end of the data is reported at the end.
        func checkUTF8() throws {
            var k = 0
            let n = bytes.count
            while k < n {
                let b = bytes[k]
                if b < 0x80 { k += 1; continue }
                let length: Int
                var low: UInt8 = 0x80, high: UInt8 = 0xBF  // the range of the second byte
                switch b {
                case 0xC2...0xDF: length = 2
                case 0xE0: length = 3; low = 0xA0
                case 0xE1...0xEC, 0xEE, 0xEF: length = 3
                case 0xED: length = 3; high = 0x9F
                case 0xF0: length = 4; low = 0x90
                case 0xF1...0xF3: length = 4
                case 0xF4: length = 4; high = 0x8F
                default:
                    throw error("the file is not valid UTF-8 (byte 0x\(String(b, radix: 16, uppercase: true)))", at: k)
                }
                for j in 1..<length {
                    guard k + j < n else { throw cutInsideCharacter(at: k) }
                    let c = bytes[k + j]
                    let (lo, hi) = j == 1 ? (low, high) : (UInt8(0x80), UInt8(0xBF))
                    guard c >= lo && c <= hi else {
                        throw error(
                            "the file is not valid UTF-8 (byte 0x\(String(c, radix: 16, uppercase: true)))", at: k)
                    }
                }
                k += length
            }
        }

        /// Skips whitespace and `//` line comments (the one extension to RFC 8259: manifests and
        /// `vldctl example` output carry comments, as DESIGN.md's manifest example does).
        mutating func skipSpace() {
            while i < bytes.count {
                if [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) {
                    i += 1
                } else if bytes[i] == UInt8(ascii: "/"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "/") {
                    while i < bytes.count, bytes[i] != 0x0A { i += 1 }
                } else if bytes[i] == UInt8(ascii: "/"), i + 1 == bytes.count {
                    i += 1  // a lone '/' at the end: the start of a comment still being written
                    loneSlashAtEnd = true
                } else {
                    return
                }
            }
        }

        mutating func expect(_ literal: String, _ v: JSONValue) throws -> JSONValue {
            let l = Array(literal.utf8)
            if cutShort(l) { throw error("unexpected end of input in '\(literal)'", at: bytes.count) }
            guard i + l.count <= bytes.count, Array(bytes[i..<(i + l.count)]) == l else {
                throw error("invalid literal")
            }
            i += l.count
            return v
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard depth < JSONValue.maxDepth else { throw error("nesting deeper than \(JSONValue.maxDepth) levels") }
            guard i < bytes.count else { throw error("unexpected end of input") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): return try expect("true", .bool(true))
            case UInt8(ascii: "f"): return try expect("false", .bool(false))
            case UInt8(ascii: "n"): return try expect("null", .null)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected character \(Parser.describe(bytes[i]))")
            }
        }

        mutating func object(depth: Int) throws -> JSONValue {
            i += 1
            var fields: [(String, JSONValue)] = []
            var seen = Set<String>()
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    throw error("expected a key in double quotes")
                }
                let keyStart = i
                let key = try string()
                guard seen.insert(key).inserted else {
                    i = keyStart
                    throw error("duplicate key \"\(key)\"")
                }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw error("expected ':' after the key") }
                i += 1
                skipSpace()
                fields.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end of input in an object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(fields) }
                throw error("expected ',' or '}'")
            }
        }

        mutating func array(depth: Int) throws -> JSONValue {
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw error("unexpected end of input in an array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        }

        /// Four hex digits (no sign: `UInt32(_:radix:)` alone would take `+041`). For the low half
        /// of a surrogate pair (`lowSurrogate`), digits cut short count as "at the end" only if
        /// they can still become DC00-DFFF.
        mutating func hex4(lowSurrogate: Bool = false) throws -> UInt32 {
            let isHex: (UInt8) -> Bool = {
                (0x30...0x39).contains($0) || (0x41...0x46).contains($0) || (0x61...0x66).contains($0)
            }
            if i + 4 > bytes.count, bytes[i...].allSatisfy(isHex) {
                let digits = Array(bytes[i...])
                let possible =
                    !lowSurrogate
                    || ((digits.first.map { $0 | 0x20 == 0x64 } ?? true)
                        && (digits.count < 2 || (0x63...0x66).contains(digits[1] | 0x20)))
                if possible { throw error("unexpected end of input in a \\u escape", at: bytes.count) }
                throw error("unpaired surrogate in \\u escape")
            }
            guard i + 4 <= bytes.count, bytes[i..<(i + 4)].allSatisfy(isHex),
                let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16)
            else {
                throw error("invalid \\u escape")
            }
            i += 4
            return v
        }

        mutating func string() throws -> String {
            i += 1
            var out: [UInt8] = []
            while true {
                guard i < bytes.count else { throw error("unterminated string") }
                let b = bytes[i]
                if b == UInt8(ascii: "\"") { i += 1; break }
                if b < 0x20 { throw error("control character in a string") }
                if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
                let escape = i  // where a bad escape is reported: never at the end unless cut short
                i += 1
                guard i < bytes.count else { throw error("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        if cutShort(Array("\\u".utf8)) {
                            throw error("unexpected end of input in a surrogate pair", at: bytes.count)
                        }
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else {
                            throw error("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4(lowSurrogate: true)
                        guard (0xDC00..<0xE000).contains(low) else {
                            throw error("unpaired surrogate in \\u escape", at: escape)
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape", at: escape) }
                    out.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw error("invalid escape '\\' followed by \(Parser.describe(e))", at: escape)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func number() throws -> JSONValue {
            let start = i
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            func digits() -> Int {
                let s = i
                while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { i += 1 }
                return i - s
            }
            let intStart = i
            guard digits() > 0 else { throw error("invalid number") }
            if bytes[intStart] == UInt8(ascii: "0"), i - intStart > 1 {
                i = intStart; throw error("leading zero in a number")
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard digits() > 0 else { throw error("invalid number") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw error("invalid number") }
            }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            guard let v = Double(text), v.isFinite else {
                i = start
                throw error("number out of range")
            }
            if largeIntegersAsText, abs(v) >= 9_007_199_254_740_992, !text.contains(where: { ".eE".contains($0) }) {
                return .string(text)
            }
            return .number(v)
        }
    }
}

// MARK: writing

extension JSONValue {
    /// JSON text with keys in their stored order; `pretty` indents by two spaces.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(into: &out, indent: pretty ? 0 : nil)
        return out
    }

    private func write(into out: inout String, indent: Int?) {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(n): out += n.isFinite ? JSONValue.format(n) : "null"
        case let .string(s): out += JSONValue.quote(s)
        case let .array(items):
            if items.isEmpty { out += "[]"; return }
            let scalars = items.allSatisfy {
                if case .array = $0 { return false }; if case .object = $0 { return false }; return true
            }
            if scalars || indent == nil {
                out +=
                    "[" + items.map { $0.serialized(pretty: false) }.joined(separator: indent == nil ? "," : ", ") + "]"
                return
            }
            out += "[\n"
            for (k, item) in items.enumerated() {
                out += String(repeating: " ", count: indent! + 2)
                item.write(into: &out, indent: indent! + 2)
                out += k + 1 < items.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent!) + "]"
        case let .object(fields):
            if fields.isEmpty { out += "{}"; return }
            guard let indent else {
                out +=
                    "{"
                    + fields.map { JSONValue.quote($0.0) + ":" + $0.1.serialized(pretty: false) }.joined(separator: ",")
                    + "}"
                return
            }
            out += "{\n"
            for (k, (key, v)) in fields.enumerated() {
                out += String(repeating: " ", count: indent + 2) + JSONValue.quote(key) + ": "
                v.write(into: &out, indent: indent + 2)
                out += k + 1 < fields.count ? ",\n" : "\n"
            }
            out += String(repeating: " ", count: indent) + "}"
        }
    }

    /// `s` as a JSON string literal (quotes, backslashes and control characters escaped).
    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                // Control, bidi and other invisible characters as escapes: still the same JSON
                // string, but one that cannot act on a terminal that shows it (DisplayText).
                if u.value < 0x20 || DisplayText.isUnsafe(u) {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}

// MARK: building values from Swift

/// Literals build values directly; a dictionary literal keeps its keys in the order written:
/// `let answer: JSONValue = ["ok": true, "id": JSONValue(id)]`.
extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(elements) }
}

extension JSONValue {
    /// The elements of an array (nil for other values).
    public var arrayValue: [JSONValue]? { if case let .array(a) = self { return a }; return nil }
    public init(_ v: Int64) { self = .number(Double(v)) }
    public init(_ v: UInt32) { self = .number(Double(v)) }
    public init(_ v: [Int]) { self = .array(v.map { JSONValue($0) }) }
    /// An object of the pairs whose value is not nil, in order.
    public static func fields(_ pairs: [(String, JSONValue?)]) -> JSONValue {
        .object(pairs.compactMap { k, v in v.map { (k, $0) } })
    }
    /// A copy with `key` set (replaced in place if present, else appended).
    public func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard case var .object(f) = self else { return self }
        if let i = f.firstIndex(where: { $0.0 == key }) { f[i].1 = value } else { f.append((key, value)) }
        return .object(f)
    }

    public init(_ v: Int) { self = .number(Double(v)) }
    public init(_ v: Double) { self = v.isFinite ? .number(v) : .null }
    public init(_ v: String) { self = .string(v) }
    public init(_ v: Bool) { self = .bool(v) }

    /// Sets the value at a dotted path (creating objects along the way). When both the existing
    /// and the new value are objects, the new fields are merged into the old ones.
    public mutating func set(path: [String], to value: JSONValue) {
        guard let head = path.first else {
            if case let .object(old) = self, case let .object(new) = value {
                var merged = old
                for (k, v) in new {
                    if let i = merged.firstIndex(where: { $0.0 == k }) {
                        merged[i].1.set(path: [], to: v)
                    } else {
                        merged.append((k, v))
                    }
                }
                self = .object(merged)
            } else {
                self = value
            }
            return
        }
        if case var .array(items) = self, let i = Int(head), items.indices.contains(i) {
            items[i].set(path: Array(path.dropFirst()), to: value)
            self = .array(items)
            return
        }
        var fields: [(String, JSONValue)]
        if case let .object(f) = self { fields = f } else { fields = [] }
        if let i = fields.firstIndex(where: { $0.0 == head }) {
            fields[i].1.set(path: Array(path.dropFirst()), to: value)
        } else {
            var child = JSONValue.object([])
            child.set(path: Array(path.dropFirst()), to: value)
            fields.append((head, child))
        }
        self = .object(fields)
    }

    /// The number, string or boolean inside, or nil for any other value.
    public var doubleValue: Double? { if case let .number(n) = self { return n }; return nil }
    /// The number inside if it is a whole number an Int can hold.
    public var intValue: Int? {
        guard case let .number(n) = self, n.rounded() == n, abs(n) < 9.0e15 else { return nil }
        return Int(n)
    }
    public var stringValue: String? { if case let .string(s) = self { return s }; return nil }
    public var boolValue: Bool? { if case let .bool(b) = self { return b }; return nil }

    /// Removes the member `key` of an object.
    public mutating func remove(key: String) {
        if case let .object(f) = self { self = .object(f.filter { $0.0 != key }) }
    }
}
