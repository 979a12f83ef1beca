// HFFormat.swift: Hugging Face names, layouts and config.json for GPT2LMHeadModel and
// LlamaForCausalLM, so a non-looped vld checkpoint loads in transformers with no conversion and
// a float32 `save_pretrained` checkpoint of either class loads in vld.
//
// gpt2 stores its projections as Conv1D weights (in, out), transposed from vld's (out, in), and
// fuses q,k,v as vld does. llama stores q, k, v and gate, up as separate (out, in) matrices,
// which vld fuses row-wise. A reused block is stored once, under its physical index; the schedule
// travels as `vld_schedule` in config.json.

import Foundation
import VLDJSON

enum HFFormat {
    /// How one internal tensor maps to Hugging Face tensors: a list of (name, rows) splits of the
    /// internal (out, in) matrix by rows, each optionally transposed.
    struct Mapping {
        let internalName: String
        let parts: [(hfName: String, rows: Int)]
        let transpose: Bool
    }

    static func mappings(_ cfg: ModelConfig, layout: ParameterLayout) -> [Mapping] {
        var out: [Mapping] = []
        func one(_ internalName: String, _ hf: String, transpose: Bool = false) {
            guard let s = layout.slot(named: internalName) else { return }
            out.append(Mapping(internalName: internalName, parts: [(hf, s.shape[0])], transpose: transpose))
        }
        let HS = cfg.headSize
        switch cfg.arch {
        case .gpt2:
            one("wte", "transformer.wte.weight")
            one("wpe", "transformer.wpe.weight")
            one("lm_head", "lm_head.weight")
            one("lm_head.down", "lm_head.down.weight")
            one("lm_head.hidden", "lm_head.hidden.weight")
            for l in 0..<cfg.layers {
                let h = "transformer.h.\(l)."
                one("h.\(l).norm1.weight", h + "ln_1.weight"); one("h.\(l).norm1.bias", h + "ln_1.bias")
                one("h.\(l).qkv.weight", h + "attn.c_attn.weight", transpose: true);
                one("h.\(l).qkv.bias", h + "attn.c_attn.bias")
                one("h.\(l).proj.weight", h + "attn.c_proj.weight", transpose: true);
                one("h.\(l).proj.bias", h + "attn.c_proj.bias")
                one("h.\(l).norm2.weight", h + "ln_2.weight"); one("h.\(l).norm2.bias", h + "ln_2.bias")
                one("h.\(l).fc.weight", h + "mlp.c_fc.weight", transpose: true);
                one("h.\(l).fc.bias", h + "mlp.c_fc.bias")
                one("h.\(l).fc_proj.weight", h + "mlp.c_proj.weight", transpose: true)
                one("h.\(l).fc_proj.bias", h + "mlp.c_proj.bias")
            }
            one("norm_f.weight", "transformer.ln_f.weight"); one("norm_f.bias", "transformer.ln_f.bias")
        case .llama:
            one("wte", "model.embed_tokens.weight")
            one("lm_head", "lm_head.weight")
            one("lm_head.down", "lm_head.down.weight")
            one("lm_head.hidden", "lm_head.hidden.weight")
            for l in 0..<cfg.layers {
                let h = "model.layers.\(l)."
                one("h.\(l).norm1.weight", h + "input_layernorm.weight")
                out.append(
                    Mapping(
                        internalName: "h.\(l).qkv.weight",
                        parts: [
                            (h + "self_attn.q_proj.weight", cfg.heads * HS),
                            (h + "self_attn.k_proj.weight", cfg.kvHeads * HS),
                            (h + "self_attn.v_proj.weight", cfg.kvHeads * HS),
                        ], transpose: false))
                one("h.\(l).proj.weight", h + "self_attn.o_proj.weight")
                one("h.\(l).norm2.weight", h + "post_attention_layernorm.weight")
                out.append(
                    Mapping(
                        internalName: "h.\(l).fc.weight",
                        parts: [
                            (h + "mlp.gate_proj.weight", cfg.ffnHidden), (h + "mlp.up_proj.weight", cfg.ffnHidden),
                        ],
                        transpose: false))
                one("h.\(l).fc_proj.weight", h + "mlp.down_proj.weight")
            }
            one("norm_f.weight", "model.norm.weight")
        }
        return out
    }

    /// Buffers HF keeps in some checkpoints that carry no parameters (causal masks, RoPE tables).
    static func isIgnorableBuffer(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") && !name.contains("c_attn") || name.hasSuffix(".attn.masked_bias")
            || name.hasSuffix("rotary_emb.inv_freq")
    }

    static func transpose(_ v: UnsafePointer<Float>, rows: Int, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
        return out
    }

    /// The model's parameters as HF tensors.
    static func export(_ model: Transformer) -> [NamedTensor] {
        var out: [NamedTensor] = []
        for m in mappings(model.config, layout: model.layout) {
            let slot = model.layout.slot(named: m.internalName)!
            let cols = slot.shape.count == 2 ? slot.shape[1] : 1
            var row = 0
            for part in m.parts {
                let base = model.params[slot.offset + row * cols]
                if slot.shape.count == 1 {
                    out.append(
                        NamedTensor(
                            name: part.hfName, shape: [part.rows],
                            values: Array(UnsafeBufferPointer(start: base, count: part.rows))))
                } else if m.transpose {
                    out.append(
                        NamedTensor(
                            name: part.hfName, shape: [cols, part.rows],
                            values: transpose(base, rows: part.rows, cols: cols)))
                } else {
                    out.append(
                        NamedTensor(
                            name: part.hfName, shape: [part.rows, cols],
                            values: Array(UnsafeBufferPointer(start: base, count: part.rows * cols))))
                }
                row += part.rows
            }
        }
        return out
    }

    /// Fills the model's parameters from HF tensors; every expected tensor must be present with
    /// its exact shape, and no unknown tensor may be left over.
    static func load(_ tensors: [String: NamedTensor], into model: Transformer, file: String) throws {
        var used = Set<String>()
        for m in mappings(model.config, layout: model.layout) {
            let slot = model.layout.slot(named: m.internalName)!
            let cols = slot.shape.count == 2 ? slot.shape[1] : 1
            var row = 0
            for part in m.parts {
                guard let t = tensors[part.hfName] else {
                    throw CheckpointError("\(file): missing tensor \(part.hfName)")
                }
                let expected =
                    slot.shape.count == 1 ? [part.rows] : (m.transpose ? [cols, part.rows] : [part.rows, cols])
                guard t.shape == expected else {
                    throw CheckpointError(
                        "\(file): tensor \(part.hfName) has shape \(t.shape), expected \(expected) from config.json")
                }
                let dst = model.params[slot.offset + row * cols]
                t.values.withUnsafeBufferPointer { src in
                    if m.transpose {
                        let back = transpose(src.baseAddress!, rows: cols, cols: part.rows)
                        back.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: back.count) }
                    } else {
                        dst.update(from: src.baseAddress!, count: src.count)
                    }
                }
                used.insert(part.hfName)
                row += part.rows
            }
        }
        for name in tensors.keys.sorted() where !used.contains(name) && !isIgnorableBuffer(name) {
            if name == "lm_head.weight" && model.config.tiedEmbeddings {
                // Some writers store the tied head anyway; it must equal the embedding.
                let wte = model.layout.slot(named: "wte")!
                if tensors[name]!.values == model.params.array(wte.offset, wte.count) { continue }
                throw CheckpointError(
                    "\(file): lm_head.weight differs from the token embedding but config.json says tie_word_embeddings")
            }
            throw CheckpointError(
                "\(file): unexpected tensor \(name) (not part of a \(model.config.arch.rawValue) model with this config)"
            )
        }
    }

    // MARK: config.json

    static func configJSON(_ cfg: ModelConfig) -> JSONValue {
        var j: [(String, JSONValue)] = [
            ("vocab_size", JSONValue(cfg.vocab)), ("tie_word_embeddings", .bool(cfg.tiedEmbeddings)),
            ("torch_dtype", .string("float32")), ("vld_schedule", .string(cfg.schedule.description)),
            ("use_cache", .bool(true)),
            // vld vocabularies have no GPT-2/Llama special tokens; null keeps
            // transformers from assuming its defaults (50256 for GPT-2).
            ("bos_token_id", .null), ("eos_token_id", .null),
        ]
        switch cfg.arch {
        case .gpt2:
            j += [
                ("architectures", .array([.string("GPT2LMHeadModel")])), ("model_type", .string("gpt2")),
                ("n_positions", JSONValue(cfg.context)), ("n_ctx", JSONValue(cfg.context)),
                ("n_embd", JSONValue(cfg.dModel)), ("n_layer", JSONValue(cfg.layers)), ("n_head", JSONValue(cfg.heads)),
                ("n_inner", cfg.ffnHidden == 4 * cfg.dModel ? .null : JSONValue(cfg.ffnHidden)),
                ("activation_function", .string("gelu_new")), ("layer_norm_epsilon", JSONValue(Double(cfg.normEps))),
                ("resid_pdrop", .number(0)), ("embd_pdrop", .number(0)), ("attn_pdrop", .number(0)),
                ("scale_attn_weights", .bool(true)), ("scale_attn_by_inverse_layer_idx", .bool(false)),
                ("reorder_and_upcast_attn", .bool(false)),
            ]
        case .llama:
            j += [
                ("architectures", .array([.string("LlamaForCausalLM")])), ("model_type", .string("llama")),
                ("hidden_size", JSONValue(cfg.dModel)), ("intermediate_size", JSONValue(cfg.ffnHidden)),
                ("num_hidden_layers", JSONValue(cfg.layers)), ("num_attention_heads", JSONValue(cfg.heads)),
                ("num_key_value_heads", JSONValue(cfg.kvHeads)), ("head_dim", JSONValue(cfg.headSize)),
                ("max_position_embeddings", JSONValue(cfg.context)), ("rms_norm_eps", JSONValue(Double(cfg.normEps))),
                ("rope_theta", JSONValue(cfg.ropeTheta)),
                (
                    "rope_parameters",
                    .object([("rope_type", .string("default")), ("rope_theta", JSONValue(cfg.ropeTheta))])
                ),
                ("hidden_act", .string("silu")), ("attention_bias", .bool(false)), ("mlp_bias", .bool(false)),
                ("rope_scaling", .null), ("attention_dropout", .number(0)), ("pretraining_tp", JSONValue(1)),
            ]
        }
        if !cfg.isHuggingFaceCompatible {
            // A factorised or wider head, or an output multiplier: no transformers class holds
            // it, so the model type is vld's own and transformers refuses the checkpoint with
            // "does not recognize this architecture" instead of loading wrong logits.
            let (type, cls) = cfg.arch == .gpt2 ? ("gpt2", "GPT2LMHeadModel") : ("llama", "LlamaForCausalLM")
            j.removeAll { $0.0 == "model_type" || $0.0 == "architectures" }
            j += [
                ("model_type", .string("vld_\(type)")), ("architectures", .array([.string("VLD\(cls)")])),
                ("vld_head", .string(cfg.head.description)),
                ("vld_output_multiplier", JSONValue(Double(cfg.outputMultiplier))),
            ]
        }
        // Sorted keys, as Hugging Face's own files (and the files earlier vld versions wrote).
        return .object(j.sorted { $0.0 < $1.0 })
    }

    /// Reads a GPT2LMHeadModel or LlamaForCausalLM config.json; refuses settings vld does not
    /// implement, naming the field.
    static func parseConfig(_ j: JSONValue, file: String) throws -> ModelConfig {
        func fail(_ m: String) -> CheckpointError { CheckpointError("\(file): \(m)") }
        func int(_ k: String) throws -> Int {
            guard let v = j[k]?.intValue else { throw fail("field \(k) is missing or not an integer") }
            return v
        }
        func optionalInt(_ k: String) throws -> Int? {
            guard let raw = j[k], raw != .null else { return nil }
            guard let v = raw.intValue else { throw fail("field \(k) is not an integer") }
            return v
        }
        func double(_ k: String, default d: Double) throws -> Double {
            guard let raw = j[k], raw != .null else { return d }
            guard let v = raw.doubleValue else { throw fail("field \(k) is not a number") }
            return v
        }
        func require(_ k: String, _ ok: (JSONValue) -> Bool, _ why: String) throws {
            if let v = j[k], !ok(v) { throw fail("unsupported \(k) = \(v.brief): \(why)") }
        }
        var schedule = LayerSchedule.base
        if let s = j["vld_schedule"] {
            if let text = s.stringValue {
                do { schedule = try LayerSchedule(parsing: text) } catch let e as ScheduleError {
                    throw fail("vld_schedule: \(e.message)")
                }
            } else if case let .array(items) = s, items.allSatisfy({ $0.intValue != nil }) {
                schedule = .explicit(items.map { $0.intValue! })
            } else {
                throw fail("vld_schedule must be a string or a list of layer indices")
            }
        }
        var modelType = j["model_type"]?.stringValue
        // vld's own model types: a gpt2 or llama body with a head transformers cannot hold.
        var head = OutputHead.full
        var multiplier: Float = 1
        if let t = modelType, t == "vld_gpt2" || t == "vld_llama" {
            modelType = String(t.dropFirst(4))
            if let h = j["vld_head"] {
                guard let text = h.stringValue, let parsed = OutputHead(parsing: text) else {
                    throw fail("vld_head must be \"full\", \"rank(<r>)\" or \"wide(<k>)\", got \(h.brief)")
                }
                head = parsed
            }
            multiplier = Float(try double("vld_output_multiplier", default: 1))
        }
        var cfg: ModelConfig
        switch modelType {
        case "gpt2":
            try require(
                "activation_function", { ["gelu_new", "gelu_pytorch_tanh"].contains($0.stringValue) },
                "vld implements gelu_new (tanh GELU)")
            try require("scale_attn_weights", { $0.boolValue == true }, "vld scales attention by 1/sqrt(head size)")
            try require("scale_attn_by_inverse_layer_idx", { $0.boolValue == false }, "not implemented")
            try require("add_cross_attention", { $0.boolValue == false }, "vld models are decoder-only")
            let d = try int("n_embd")
            cfg = ModelConfig(
                arch: .gpt2, dModel: d, layers: try int("n_layer"), heads: try int("n_head"),
                ffnHidden: try optionalInt("n_inner") ?? 4 * d, context: try int("n_positions"),
                vocab: try int("vocab_size"), tiedEmbeddings: j["tie_word_embeddings"]?.boolValue ?? true,
                normEps: Float(try double("layer_norm_epsilon", default: 1e-5)), schedule: schedule)
        case "llama":
            try require("hidden_act", { $0.stringValue == "silu" }, "vld implements SwiGLU with silu")
            try require("attention_bias", { $0.boolValue == false }, "vld's llama has no attention biases")
            try require("mlp_bias", { $0.boolValue == false }, "vld's llama has no MLP biases")
            try require("rope_scaling", { $0 == .null }, "RoPE scaling is not implemented")
            // transformers >= 5 writes {"rope_parameters": {"rope_type": "default", "rope_theta": ...}}.
            var theta = try double("rope_theta", default: 10000)
            if let params = j["rope_parameters"], params != .null {
                guard case .object = params else { throw fail("rope_parameters is not an object") }
                let type = params["rope_type"]?.stringValue ?? "default"
                guard type == "default" else {
                    throw fail("unsupported rope_parameters.rope_type = \(type): vld implements default RoPE")
                }
                if let t = params["rope_theta"]?.doubleValue { theta = t }
            }
            try require("pretraining_tp", { $0.intValue == 1 }, "tensor-parallel slicing is not implemented")
            let d = try int("hidden_size"), heads = try int("num_attention_heads")
            guard heads >= 1 else { throw fail("num_attention_heads must be >= 1, got \(heads)") }
            if let hd = try optionalInt("head_dim"), hd != d / heads {
                throw fail(
                    "unsupported head_dim = \(hd): vld needs head_dim = hidden_size / num_attention_heads = \(d / heads)"
                )
            }
            cfg = ModelConfig(
                arch: .llama, dModel: d, layers: try int("num_hidden_layers"), heads: heads,
                kvHeads: try optionalInt("num_key_value_heads") ?? heads, ffnHidden: try int("intermediate_size"),
                context: try int("max_position_embeddings"), vocab: try int("vocab_size"),
                tiedEmbeddings: j["tie_word_embeddings"]?.boolValue ?? false,
                normEps: Float(try double("rms_norm_eps", default: 1e-6)),
                ropeTheta: theta, schedule: schedule)
        default:
            throw fail(
                "unsupported model_type \(modelType.map { "\"\($0)\"" } ?? "(missing)"): vld loads gpt2 and llama")
        }
        cfg.head = head
        cfg.outputMultiplier = multiplier
        do { try cfg.validate() } catch let e as ConfigError { throw fail(e.message) }
        return cfg
    }
}
