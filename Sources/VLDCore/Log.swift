// Log.swift: journald-friendly log lines.
//
// A line is `<N>message key=value key="value with spaces"`, where N is the syslog priority
// (3 error, 4 warning, 5 notice, 6 info, 7 debug): journald reads the prefix from a service's
// stderr (SyslogLevelPrefix=yes, the default) and stores the level; on a terminal the prefix is
// harmless. Libraries take a Logger; only main.swift decides where lines go.

import Foundation
import VLDExperiments

public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case error = 3, warning = 4, notice = 5, info = 6, debug = 7
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    let sink: @Sendable (String) -> Void
    public var minimum: Level

    /// Lines go to `sink` (one call per line, no trailing newline).
    public init(minimum: Level = .info, sink: @escaping @Sendable (String) -> Void) {
        self.sink = sink
        self.minimum = minimum
    }

    /// Writes to standard error with one write(2) per line, so lines of several threads never mix.
    public static func standardError(minimum: Level = .info) -> Logger {
        Logger(minimum: minimum) { line in
            var bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        }
    }

    /// Discards everything (tests that do not look at logs).
    public static let silent = Logger(minimum: .error) { _ in }

    public func log(_ level: Level, _ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) {
        guard level <= minimum else { return }
        var line = "<\(level.rawValue)>\(message)"
        for (key, value) in fields {
            guard let value else { continue }
            line += " \(key)=\(Logger.quote("\(value)"))"
        }
        sink(line)
    }

    public func error(_ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.error, message, fields) }
    public func warning(_ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) {
        log(.warning, message, fields)
    }
    public func notice(_ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.notice, message, fields) }
    public func info(_ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.info, message, fields) }
    public func debug(_ message: String, _ fields: KeyValuePairs<String, Any?> = [:]) { log(.debug, message, fields) }

    /// Quotes a value that has spaces, quotes, `=` or unsafe characters; those (a newline in a
    /// hostile file name, an escape sequence, a bidi override) are escaped as `vldctl` escapes
    /// them (DisplayText), so one event is always one line and reads as it is.
    static func quote(_ s: String) -> String {
        let plain =
            !s.isEmpty
            && s.unicodeScalars.allSatisfy {
                $0.value > 0x20 && !DisplayText.isUnsafe($0) && $0 != "\"" && $0 != "=" && $0 != "\\"
            }
        return plain ? s : DisplayText.quoted(s)
    }
}
