// DistillSpec.swift: the `distill` section of a distill manifest (DistillKind.swift): the loss and
// its parameters, sequence-level KD, on-policy mixing and the teacher cache, read with JSON-path
// errors and written back resolved.

import VLDModel
import VLDTensor
/// How a student learns from its teacher.
public struct DistillSpec: Equatable, Sendable {
    public var loss: DistillationLoss = .kdForward(temperature: 2, lambda: 0.5)
    /// Sequence-level KD (Kim and Rush 2016): the student learns with cross-entropy the teacher's
    /// own continuation of each scored span, greedy or sampled at temperature 1 (nil: the data's).
    public var seqKD: SeqKD?
    /// On-policy mixing (GKD, Agarwal et al. 2024): this share of the steps replaces each scored
    /// span by the student's own sample (temperature 1) and applies the loss to it, teacher logits
    /// taken on the student's tokens.
    public var onPolicy = 0.0
    /// `cacheTeacher: "topk(K)"`: the teacher's top K logits of every training batch, computed
    /// once and shared by the trials with the same teacher and data (TeacherCache.swift).
    public var cacheTeacher: Int?

    public enum SeqKD: String, Equatable, Sendable { case greedy, sampled }

    /// True when training reads the teacher's logits on every batch: not for the CE-only control
    /// (which trains as `train` does; the teacher serves its evaluation only) nor for seqkd (which
    /// reads the teacher's generations).
    public var usesTeacherLogits: Bool { seqKD == nil && loss != .ce }

    public static let losses = ["ce", "kd_forward", "kd_reverse", "jsd", "topk", "sampled", "logit_mse", "seqkd"]
    /// Named in the spec, not built yet: a manifest asking for one is told so.
    public static let planned: [String] = []

    var name: String {
        if seqKD != nil { return "seqkd" }
        switch loss {
        case .ce: return "ce"
        case .kdForward: return "kd_forward"
        case .kdReverse: return "kd_reverse"
        case .jsd: return "jsd"
        case .topK: return "topk"
        case .sampledK: return "sampled"
        case .logitMSE: return "logit_mse"
        }
    }

    var json: JSONValue {
        var f: [(String, JSONValue)] = [("loss", .string(name))]
        switch loss {
        case let .kdForward(t, l), let .kdReverse(t, l):
            f += [("temperature", JSONValue(t)), ("lambda", JSONValue(l))]
        case let .jsd(b): f.append(("beta", JSONValue(b)))
        case let .topK(k), let .sampledK(k, _): f.append(("k", JSONValue(k)))
        case .ce, .logitMSE: break
        }
        if let seqKD { f = [("loss", .string("seqkd")), ("decoding", .string(seqKD.rawValue))] }
        if onPolicy > 0 { f.append(("onPolicy", JSONValue(onPolicy))) }
        if let k = cacheTeacher { f.append(("cacheTeacher", .string("topk(\(k))"))) }
        return .object(f)
    }

    static func parse(_ r: FieldReader) -> DistillSpec {
        var r = r
        var s = DistillSpec()
        let name: String
        if case let .string(n)? = r.raw("loss"), planned.contains(n) {
            _ = r.value("loss")
            r.issues.add(
                r.sub("loss"),
                "\"\(n)\" is not available in vld \(VLD.version) yet; expected one of \(losses.joined(separator: ", "))"
            )
            name = "ce"
        } else {
            name = r.choice("loss", default: "kd_forward", from: losses)
        }
        switch name {
        case "ce": s.loss = .ce
        case "kd_forward", "kd_reverse":
            let t = r.double("temperature", default: 2, in: 0.05...100)
            let l = r.double("lambda", default: 0.5, in: 0...1)
            s.loss =
                name == "kd_forward" ? .kdForward(temperature: t, lambda: l) : .kdReverse(temperature: t, lambda: l)
        case "jsd": s.loss = .jsd(beta: r.double("beta", default: 0.5, in: 0...1))
        case "topk": s.loss = .topK(r.int("k", default: 16, in: 1...1_000_000))
        case "sampled": s.loss = .sampledK(r.int("k", default: 16, in: 1...1_000_000), seed: 0)
        case "logit_mse": s.loss = .logitMSE
        case "seqkd":
            s.loss = .ce
            s.seqKD = SeqKD(rawValue: r.choice("decoding", default: "greedy", from: ["greedy", "sampled"])) ?? .greedy
        default: break
        }
        if name != "seqkd" {
            s.onPolicy = r.double("onPolicy", default: 0, in: 0...1)
        }
        if let text = r.string("cacheTeacher", default: nil) {
            let k = text.hasPrefix("topk(") && text.hasSuffix(")") ? Int(text.dropFirst(5).dropLast()) : nil
            if let k, (1...65536).contains(k) {
                s.cacheTeacher = k
            } else {
                r.issues.add(
                    r.sub("cacheTeacher"),
                    "\(JSONValue.string(text).brief) is not accepted; expected \"topk(K)\" with K in 1...65536")
            }
            if s.cacheTeacher != nil && name == "ce" {
                r.issues.add(
                    r.sub("cacheTeacher"),
                    "loss ce does not read the teacher in training; there is nothing to cache")
            } else if s.cacheTeacher != nil && (name == "seqkd" || s.onPolicy > 0) {
                r.issues.add(
                    r.sub("cacheTeacher"),
                    "a cache holds the teacher on the training data; \(name == "seqkd" ? "seqkd" : "onPolicy") "
                        + "trains on generated tokens, which it cannot hold")
            }
        }
        r.finish()
        return s
    }
}
