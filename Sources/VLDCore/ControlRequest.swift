// ControlRequest.swift: one request read from the control socket, with strictly typed fields.
//
// A request is a JSON object `{"op": ..., ...}` read with the project's JSON reader (duplicate
// keys, trailing data and deep nesting refused). Every field is read by type: `"id": true` is not
// job 1, `"id": 1.5` is not job 1, and a number beyond 2^53 is not silently rounded. Fields an op
// does not take are an error naming them, as unknown keys in a manifest are. Lists are bounded so
// that one request cannot keep the daemon busy for seconds.

import Foundation
import VLDExperiments

struct ControlRequest {
    let op: String
    let fields: [(String, JSONValue)]

    /// Ids one cancel may name (200,000 took about 10 s before this limit).
    static let maxIDs = 10_000
    /// Largest integer a JSON number carries exactly.
    static let maxExactInteger = 9_007_199_254_740_992.0

    init(_ line: Data) throws {
        let value: JSONValue
        do { value = try JSONValue.parse(line) } catch {
            throw ControlError("the request is not valid JSON: \(error)")
        }
        guard case let .object(fields) = value else {
            throw ControlError("the request is not a JSON object with an \"op\"")
        }
        guard case let .string(op)? = value["op"] else { throw ControlError("the request needs \"op\", a string") }
        self.op = op
        self.fields = fields
    }

    /// Refuses fields other than `op` and `accepted`.
    func only(_ accepted: [String]) throws {
        for (key, _) in fields where key != "op" && !accepted.contains(key) {
            let expected =
                accepted.isEmpty ? "\(op) takes no fields" : "\(op) takes \(accepted.joined(separator: ", "))"
            throw ControlError("unknown field \(DisplayText.quoted(key)); \(expected)")
        }
    }

    private func value(_ key: String) -> JSONValue? {
        guard let v = fields.first(where: { $0.0 == key })?.1, v != .null else { return nil }
        return v
    }

    /// An integer in `range` (nil when absent).
    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = Self.integer(v), range.contains(n) else {
            throw ControlError(
                "\(key): expected an integer in \(range.lowerBound)...\(range.upperBound), got \(v.brief)")
        }
        return n
    }

    /// A job id: an integer of at least 1.
    func id(_ key: String = "id") throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = Self.integer(v), n >= 1 else {
            throw ControlError("\(key): expected a job id (a positive integer), got \(v.brief)")
        }
        return n
    }

    /// A list of job ids, at most `maxIDs`.
    func ids(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard case let .array(items) = v else {
            throw ControlError("\(key): expected a list of job ids, got \(v.typeName)")
        }
        guard items.count <= Self.maxIDs else {
            throw ControlError("\(key): \(items.count) ids; at most \(Self.maxIDs) per request")
        }
        return try items.enumerated().map { i, item in
            guard let n = Self.integer(item), n >= 1 else {
                throw ControlError("\(key)[\(i)]: expected a job id (a positive integer), got \(item.brief)")
            }
            return n
        }
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard case let .bool(b) = v else { throw ControlError("\(key): expected true or false, got \(v.brief)") }
        return b
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard case let .string(s) = v else { throw ControlError("\(key): expected a string, got \(v.brief)") }
        return s
    }

    func strings(_ key: String, maxCount: Int) throws -> [String]? {
        guard let v = value(key) else { return nil }
        guard case let .array(items) = v, items.count <= maxCount else {
            throw ControlError("\(key): expected a list of at most \(maxCount) strings, got \(v.brief)")
        }
        return try items.enumerated().map { i, item in
            guard case let .string(s) = item else {
                throw ControlError("\(key)[\(i)]: expected a string, got \(item.brief)")
            }
            return s
        }
    }

    /// `v` as an exact integer: a JSON number with no fraction and within 2^53.
    static func integer(_ v: JSONValue) -> Int? {
        guard case let .number(n) = v, n.rounded() == n, abs(n) <= maxExactInteger else { return nil }
        return Int(n)
    }
}
