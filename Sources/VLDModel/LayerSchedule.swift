// LayerSchedule.swift: virtual logical depth as a list of physical block indices.
//
// A model has L physical blocks; its forward pass applies them in the order of a schedule
// s[0..D-1]. Reusing blocks adds depth without adding parameters. The patterns are those of
// specs/vld.md section 6.1 (after the VLD paper's code: "layer", "cycle", "recycle", its
// REPEAT_PATTERN ablation, and MoR's middle-cycle), all 0-based:
//
//   base           s[v] = v                                     D = L
//   seq(k)         s[v] = floor(v / (k+1))                      D = (k+1) L    seq(1), L=4: 00112233
//   cyc(k)         s[v] = v mod L                               D = (k+1) L    cyc(2): 0123 0123 0123
//   inv(k)         ping-pong: pass b even -> 0..L-1, odd -> L-1..0          inv(2): 0123 3210 0123
//   mcyc(k)        [0] + (k+1) x [1..L-2] + [L-1]               D = 2 + (k+1)(L-2)
//   alt            [0, 1,1, 2,2, ..., L-2,L-2, L-1]             D = 2L - 2
//   part(a,b,k)    [0..L-1] then k copies of [a..b] (append)    D = L + k(b-a+1)
//   part(a,b,k,inplace)  [0..b], k copies of [a..b], [b+1..L-1]
//   [i, j, ...]    an explicit list (VLD's REPEAT_PATTERN)

/// A layer schedule pattern, resolved against a number of physical blocks by `indices(layers:)`.
public enum LayerSchedule: Equatable, Hashable, Sendable, CustomStringConvertible {
    case base
    case seq(Int)
    case cyc(Int)
    case inv(Int)
    case mcyc(Int)
    case alt
    case part(a: Int, b: Int, k: Int, inplace: Bool)
    case explicit([Int])

    public static let acceptedForms =
        "base, seq(k), cyc(k), inv(k), mcyc(k), alt, part(a,b,k), part(a,b,k,inplace), or a list of layer indices"

    /// Parses the text form (`"cyc(2)"`, `"part(1,2,1)"`, `"0,1,1,2"` or `"[0,1,1,2]"`).
    public init(parsing text: String) throws {
        let s = text.filter { !$0.isWhitespace }
        func fail(_ why: String = "") -> ScheduleError {
            ScheduleError(
                message: "\"\(text)\" is not a schedule\(why); expected \(LayerSchedule.acceptedForms)", detail: why)
        }
        if s == "base" { self = .base; return }
        if s == "alt" { self = .alt; return }
        if let first = s.first, first.isNumber || first == "[" {
            var body = Substring(s)
            if body.hasPrefix("[") {
                guard body.hasSuffix("]") else { throw fail() }
                body = body.dropFirst().dropLast()
            }
            let parts = body.split(separator: ",", omittingEmptySubsequences: false)
            var list: [Int] = []
            for p in parts {
                guard let i = Int(p), i >= 0 else { throw fail(" (a list holds layer indices, integers >= 0)") }
                list.append(i)
            }
            guard !list.isEmpty else { throw fail() }
            self = .explicit(list)
            return
        }
        guard let open = s.firstIndex(of: "("), s.hasSuffix(")") else { throw fail() }
        let name = String(s[..<open])
        let argText = s[s.index(after: open)..<s.index(before: s.endIndex)]
        let rawArgs = argText.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        if name == "part" {
            guard rawArgs.count == 3 || rawArgs.count == 4,
                let a = Int(rawArgs[0]), let b = Int(rawArgs[1]), let k = Int(rawArgs[2]), a >= 0, b >= a, k >= 0
            else { throw fail(" (part needs a <= b and k >= 0)") }
            var inplace = false
            if rawArgs.count == 4 {
                switch rawArgs[3] {
                case "append": inplace = false
                case "inplace": inplace = true
                default: throw fail(" (the fourth part argument is append or inplace)")
                }
            }
            self = .part(a: a, b: b, k: k, inplace: inplace)
            return
        }
        guard rawArgs.count == 1, let k = Int(rawArgs[0]), k >= 0 else { throw fail(" (k must be an integer >= 0)") }
        switch name {
        case "seq": self = .seq(k)
        case "cyc": self = .cyc(k)
        case "inv": self = .inv(k)
        case "mcyc": self = .mcyc(k)
        default: throw fail()
        }
    }

    public var description: String {
        switch self {
        case .base: return "base"
        case .seq(let k): return "seq(\(k))"
        case .cyc(let k): return "cyc(\(k))"
        case .inv(let k): return "inv(\(k))"
        case .mcyc(let k): return "mcyc(\(k))"
        case .alt: return "alt"
        case .part(let a, let b, let k, let inplace): return "part(\(a),\(b),\(k)\(inplace ? ",inplace" : ""))"
        case .explicit(let list): return "[" + list.map(String.init).joined(separator: ",") + "]"
        }
    }

    /// The block index applied at each schedule position, for `layers` physical blocks.
    /// Throws when an index is out of range or the pattern needs more blocks than exist.
    public func indices(layers L: Int) throws -> [Int] {
        guard L >= 1 else { throw ScheduleError(message: "a model needs at least one layer") }
        guard L <= LayerSchedule.maxApplications else {
            throw ScheduleError(message: "\(L) layers exceed the limit of \(LayerSchedule.maxApplications)")
        }
        // Bound k before any arithmetic: (k+1) L must neither overflow nor exceed the limit.
        let k: Int
        switch self {
        case .seq(let x), .cyc(let x), .inv(let x), .mcyc(let x): k = x
        case .part(_, _, let x, _): k = x
        default: k = 0
        }
        guard k <= LayerSchedule.maxApplications else {
            throw ScheduleError(message: "k = \(k) gives more than \(LayerSchedule.maxApplications) block applications")
        }
        let s: [Int]
        switch self {
        case .base: s = Array(0..<L)
        case .seq(let k): s = (0..<((k + 1) * L)).map { $0 / (k + 1) }
        case .cyc(let k): s = (0..<((k + 1) * L)).map { $0 % L }
        case .inv(let k):
            s = (0..<((k + 1) * L)).map { v in
                let b = v / L, j = v % L
                return b % 2 == 0 ? j : L - 1 - j
            }
        case .mcyc(let k):
            guard L >= 3 else { throw ScheduleError(message: "mcyc(k) needs at least 3 layers, the model has \(L)") }
            s = [0] + Array(repeating: Array(1...(L - 2)), count: k + 1).flatMap { $0 } + [L - 1]
        case .alt:
            guard L >= 2 else { throw ScheduleError(message: "alt needs at least 2 layers, the model has \(L)") }
            s = [0] + (1..<(L - 1)).flatMap { [$0, $0] } + [L - 1]
        case .part(let a, let b, let k, let inplace):
            guard b < L else {
                throw ScheduleError(
                    message: "part(\(a),\(b),\(k)) names layer \(b) but the model has layers 0..\(L - 1)")
            }
            let loop = Array(repeating: Array(a...b), count: k).flatMap { $0 }
            s = inplace ? Array(0...b) + loop + Array((b + 1)..<L) : Array(0..<L) + loop
        case .explicit(let list):
            if let bad = list.first(where: { $0 < 0 || $0 >= L }) {
                throw ScheduleError(message: "layer index \(bad) is out of range: the model has layers 0..\(L - 1)")
            }
            s = list
        }
        guard !s.isEmpty, s.count <= LayerSchedule.maxApplications else {
            throw ScheduleError(
                message: "\(self) gives \(s.count) block applications; allowed 1...\(LayerSchedule.maxApplications)")
        }
        return s
    }

    /// The most block applications a schedule may have.
    public static let maxApplications = 4096
}

extension LayerSchedule: Codable {
    /// Encoded as its text form; an explicit list may also be given as a JSON array of integers.
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let list = try? c.decode([Int].self) {
            guard !list.isEmpty, list.allSatisfy({ $0 >= 0 }) else {
                throw DecodingError.dataCorruptedError(
                    in: c, debugDescription: "a schedule list needs layer indices >= 0")
            }
            self = .explicit(list)
            return
        }
        let text = try c.decode(String.self)
        do { self = try LayerSchedule(parsing: text) } catch let e as ScheduleError {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: e.message)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if case .explicit(let list) = self { try c.encode(list) } else { try c.encode(description) }
    }
}

/// An invalid schedule, with a message that lists the accepted forms.
public struct ScheduleError: Error, CustomStringConvertible, Equatable {
    public let message: String
    /// Why the text is not a schedule, without the text itself (callers that show untrusted
    /// text escaped compose their own message from it), e.g. " (k must be an integer >= 0)".
    public let detail: String
    public init(message: String, detail: String = "") {
        self.message = message
        self.detail = detail
    }
    public var description: String { message }
}
