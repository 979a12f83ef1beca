// CLI.swift: argument parsing and output helpers shared by the subcommands.

import Foundation
import VLDExperiments
import VLDModel

/// A command-line mistake: printed with the command's usage, exit status 64.
struct UsageError: Error { let message: String }

enum CLI {
    /// Prints `vldctl: message` on stderr. The message's lines are kept, but any other unsafe
    /// character (an escape sequence, a bidi override) is escaped; strings from the daemon or a
    /// manifest are escaped whole (DisplayText.escaped) before they are put in a message.
    static func error(_ message: String) {
        FileHandle.standardError.write(Data("vldctl: \(DisplayText.escaped(message, keepingNewlines: true))\n".utf8))
    }

    /// Splits `--name value` options (and bare `--flag`s listed in `flags`) from positionals.
    static func parse(_ args: [String], options: Set<String>, flags: Set<String>) throws -> (
        values: [String: String], flags: Set<String>, positional: [String]
    ) {
        var values: [String: String] = [:], set = Set<String>(), positional: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if options.contains(a) {
                guard i + 1 < args.count else { throw UsageError(message: "\(a) needs a value") }
                values[a] = args[i + 1]
                i += 2
            } else if flags.contains(a) {
                set.insert(a)
                i += 1
            } else if a.hasPrefix("-") && a.count > 1 {
                throw UsageError(message: "unknown option \(a)")
            } else {
                positional.append(a)
                i += 1
            }
        }
        return (values, set, positional)
    }

    static func int(_ values: [String: String], _ key: String, default d: Int, min: Int = 1, max: Int = Int.max) throws
        -> Int
    {
        guard let s = values[key] else { return d }
        guard let v = Int(s), v >= min, v <= max else {
            throw UsageError(message: "\(key) needs an integer in \(min)...\(max), got '\(s)'")
        }
        return v
    }

    /// Upper bound for --threads: more threads than this many per core only adds overhead.
    static var maxThreads: Int { 4 * ProcessInfo.processInfo.activeProcessorCount }
}
