// ManifestReader.swift: typed, path-aware reading of manifest JSON that collects every error.
//
// Each section of a manifest is read through a `FieldReader`: every accessor names its key, type,
// default and accepted range, records an error with the JSON path when the value does not fit,
// and returns the default so reading can go on and report the next problem too. `finish()` turns
// every key nobody asked for into an "unknown key" error listing the accepted ones, so a typo
// never silently becomes a default.

import Foundation

/// One problem in a manifest: the JSON path and what was expected.
public struct ManifestIssue: Error, Equatable, Hashable, CustomStringConvertible, Sendable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Every problem found in one manifest.
public struct ManifestError: Error, CustomStringConvertible, Sendable {
    public var issues: [ManifestIssue]
    public init(_ issues: [ManifestIssue]) { self.issues = issues }
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// Collects issues while a manifest is read.
final class IssueList {
    var items: [ManifestIssue] = []
    func add(_ path: String, _ message: String) {
        let i = ManifestIssue(path: path, message: message)
        if !items.contains(i) { items.append(i) }
    }
}

/// `base.key`, or `base["key"]` (quoted and escaped, DisplayText) for a key that would not read
/// as one path part: empty, with spaces, quotes, brackets, or anything outside printable ASCII.
func joinPath(_ base: String, _ key: String) -> String {
    let plain = !key.isEmpty && key.utf8.allSatisfy { (0x21...0x7E).contains($0) && !"\"\\[]".utf8.contains($0) }
    if !plain { return base + "[" + DisplayText.quoted(key) + "]" }
    return base.isEmpty ? key : base + "." + key
}

/// Reads the members of one JSON object.
struct FieldReader {
    let path: String
    let fields: [(String, JSONValue)]
    let issues: IssueList
    private(set) var asked: [String] = []

    init(path: String, value: JSONValue?, issues: IssueList) {
        self.path = path
        self.issues = issues
        switch value {
        case nil: fields = []
        case let .object(f)?: fields = f
        case let v?:
            fields = []
            issues.add(path, "expected an object, got \(v.typeName)")
        }
    }

    func raw(_ key: String) -> JSONValue? { fields.first { $0.0 == key }?.1 }
    func has(_ key: String) -> Bool { raw(key) != nil }
    func sub(_ key: String) -> String { joinPath(path, key) }

    mutating func value(_ key: String) -> JSONValue? {
        asked.append(key)
        if case .null? = raw(key) { return nil }  // null means "use the default"
        return raw(key)
    }

    mutating func int(_ key: String, default d: Int, in range: ClosedRange<Int>) -> Int {
        guard let v = value(key) else { return d }
        let expected = "an integer in \(range.lowerBound)...\(range.upperBound)"
        guard case let .number(n) = v, n.rounded() == n, abs(n) < 9e15 else {
            issues.add(sub(key), "expected \(expected), got \(v.brief)")
            return d
        }
        guard range.contains(Int(n)) else {
            issues.add(sub(key), "\(v.brief) is out of range; expected \(expected)")
            return d
        }
        return Int(n)
    }

    mutating func double(_ key: String, default d: Double, in range: ClosedRange<Double>) -> Double {
        guard let v = value(key) else { return d }
        let expected = "a number in \(JSONValue.format(range.lowerBound))...\(JSONValue.format(range.upperBound))"
        guard case let .number(n) = v else {
            issues.add(sub(key), "expected \(expected), got \(v.brief)")
            return d
        }
        guard range.contains(n) else {
            issues.add(sub(key), "\(v.brief) is out of range; expected \(expected)")
            return d
        }
        return n
    }

    mutating func bool(_ key: String, default d: Bool) -> Bool {
        guard let v = value(key) else { return d }
        guard case let .bool(b) = v else {
            issues.add(sub(key), "expected true or false, got \(v.brief)")
            return d
        }
        return b
    }

    mutating func string(_ key: String, default d: String?) -> String? {
        guard let v = value(key) else { return d }
        guard case let .string(s) = v else {
            issues.add(sub(key), "expected a string, got \(v.brief)")
            return d
        }
        return s
    }

    /// A string from a closed set; the error lists the accepted values.
    mutating func choice(_ key: String, default d: String, from accepted: [String]) -> String {
        guard let v = value(key) else { return d }
        guard case let .string(s) = v, accepted.contains(s) else {
            issues.add(sub(key), "\(v.brief) is not accepted; expected one of \(accepted.joined(separator: ", "))")
            return d
        }
        return s
    }

    mutating func intList(_ key: String, default d: [Int], in range: ClosedRange<Int>, maxCount: Int) -> [Int] {
        guard let v = value(key) else { return d }
        let expected = "a non-empty list of up to \(maxCount) integers in \(range.lowerBound)...\(range.upperBound)"
        guard case let .array(items) = v, !items.isEmpty, items.count <= maxCount else {
            issues.add(sub(key), "expected \(expected), got \(v.brief)")
            return d
        }
        var out: [Int] = []
        for (i, item) in items.enumerated() {
            guard case let .number(n) = item, n.rounded() == n, abs(n) < 9e15, range.contains(Int(n)) else {
                issues.add(
                    "\(sub(key))[\(i)]",
                    "expected an integer in \(range.lowerBound)...\(range.upperBound), got \(item.brief)")
                return d
            }
            out.append(Int(n))
        }
        return out
    }

    mutating func object(_ key: String) -> FieldReader {
        FieldReader(path: sub(key), value: value(key), issues: issues)
    }

    /// Reports every key that was never asked for.
    func finish() {
        for (key, _) in fields where !asked.contains(key) {
            issues.add(sub(key), "unknown key; expected one of \(asked.joined(separator: ", "))")
        }
    }
}
