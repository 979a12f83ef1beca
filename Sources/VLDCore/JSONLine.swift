// JSONLine.swift: the control socket's JSON writer. Foundation's JSONSerialization on Linux
// spent most of a 10,000-job listing (about 3 s) in dynamic casts; this writer handles only the
// types the API sends (dictionaries with sorted keys, arrays, strings, integers, doubles, bools,
// NSNull) and is several times faster.

import Foundation
import VLDExperiments

public enum JSONLine {
    public static func encode(_ value: Any) -> String {
        var out = ""
        out.reserveCapacity(256)
        write(value, into: &out)
        return out
    }

    static func write(_ value: Any, into out: inout String) {
        switch value {
        case let s as String: writeString(s, into: &out)
        case let i as Int: out += String(i)
        case let i as Int64: out += String(i)
        case let i as Int32: out += String(i)
        case let u as UInt32: out += String(u)
        case let b as Bool: out += b ? "true" : "false"
        case let d as Double:
            if !d.isFinite {
                out += "null"
            } else if d == d.rounded(), abs(d) < 1e15 {
                out += String(Int64(d))
            } else {
                out += "\(d)"
            }
        case let dict as [String: Any]:
            out += "{"
            var first = true
            for key in dict.keys.sorted() {
                if !first { out += "," }
                first = false
                writeString(key, into: &out)
                out += ":"
                write(dict[key]!, into: &out)
            }
            out += "}"
        case let array as [Any]:
            out += "["
            for (i, element) in array.enumerated() {
                if i > 0 { out += "," }
                write(element, into: &out)
            }
            out += "]"
        case is NSNull: out += "null"
        default: writeString("\(value)", into: &out)
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += JSONValue.quote(s)
    }
}
