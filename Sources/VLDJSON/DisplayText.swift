// DisplayText.swift: untrusted text made safe to show on a terminal or in a log line.
//
// Strings that come from a submitter (manifest keys and values, file names, reasons quoting them)
// reach `vldctl`'s output and vldd's log. Raw, they could move the cursor, retitle a window or
// clear a screen (C0 and C1 control characters, ESC sequences), forge a line (a newline, U+2028),
// or reorder what a reader sees (bidi overrides and isolates, "Trojan Source", CVE-2021-42574).
// Every such scalar is written as a visible escape instead; everything else is kept, so names in
// any script stay readable.

public enum DisplayText {
    /// True for scalars that must never reach a terminal as they are: C0 and C1 controls, DEL,
    /// the line and paragraph separators, bidi embeddings, overrides, isolates and marks, and
    /// other invisible format characters (zero-width ones, the BOM).
    public static func isUnsafe(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x2028, 0x2029: return true
        case 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x2069, 0xFEFF, 0x061C: return true
        case 0xFFF9...0xFFFB: return true
        default: return false
        }
    }

    /// `s` with every unsafe scalar escaped (`\n`, `\t`, `\r`, `\e`, else `\u{XXXX}`). With
    /// `keepingNewlines`, `\n` and `\t` pass through (multi-line output such as a job's log).
    public static func escaped(_ s: String, keepingNewlines: Bool = false) -> String {
        escaped(s, keepingNewlines: keepingNewlines, quoting: false)
    }

    /// `s` in double quotes with `"`, `\` and unsafe scalars escaped: how a key or value that
    /// cannot be shown bare (empty, spaces, control characters) appears in a message.
    public static func quoted(_ s: String) -> String {
        "\"" + escaped(s, keepingNewlines: false, quoting: true) + "\""
    }

    private static func escaped(_ s: String, keepingNewlines: Bool, quoting: Bool) -> String {
        guard s.unicodeScalars.contains(where: { isUnsafe($0) || (quoting && ($0 == "\\" || $0 == "\"")) }) else {
            return s
        }
        var out = ""
        out.unicodeScalars.reserveCapacity(s.unicodeScalars.count + 8)
        for u in s.unicodeScalars {
            switch u {
            case "\n" where keepingNewlines, "\t" where keepingNewlines: out.unicodeScalars.append(u)
            case "\\" where quoting: out += "\\\\"
            case "\"" where quoting: out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case "\u{1B}": out += "\\e"
            default:
                if isUnsafe(u) {
                    out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}
