// Checkpoint.swift: checkpoint directories, written atomically and verified on load.
//
//   DIR/config.json            Hugging Face config of the class + "vld_schedule"
//   DIR/model.safetensors      parameters, HF names and layouts
//   DIR/optimizer.safetensors  AdamW moments "m.<name>", "v.<name>" (vld internal names) — resume only
//   DIR/state.json             step, RNG state, data cursor, AdamW settings, and the CRC-32 of the
//                              other files — resume only
//
// A checkpoint is written into a hidden sibling directory, every file and the directory are
// fsynced, and the directory is then renamed into place (exchanged with the previous one when it
// exists, then the old one removed), so a crash leaves either the old checkpoint or the new one,
// never a mixture. state.json records the checksums of its siblings, so files from different
// checkpoints are detected too.

import CLinux
import Foundation
import VLDJSON
import VLDTensor

/// What a resumed run needs besides weights and moments.
public struct TrainingState: Codable, Equatable {
    /// Optimizer steps completed.
    public var step: Int
    /// The training RNG as it stood after `step` steps.
    public var rng: SeededRNG
    /// Position in the data stream (its meaning belongs to the data source).
    public var dataCursor: Int
    public var adamW: AdamWConfig
    /// vld version that wrote the checkpoint.
    public var vldVersion: String
    /// CRC-32 (hex) of the other files, filled in by `Checkpoint.save`.
    public var files: [String: String]

    public init(step: Int, rng: SeededRNG, dataCursor: Int, adamW: AdamWConfig) {
        self.step = step
        self.rng = rng
        self.dataCursor = dataCursor
        self.adamW = adamW
        vldVersion = VLD.version
        files = [:]
    }
}

extension TrainingState {
    /// state.json. The RNG words are written as decimal strings (a JSON number is a Double, which
    /// holds 53 bits); files of earlier versions, which wrote them as numbers, read exactly too.
    public var json: JSONValue {
        .object([
            (
                "adamW",
                .object([
                    ("beta1", JSONValue(Double(adamW.beta1))), ("beta2", JSONValue(Double(adamW.beta2))),
                    ("eps", JSONValue(Double(adamW.eps))), ("weightDecay", JSONValue(Double(adamW.weightDecay))),
                ])
            ),
            ("dataCursor", JSONValue(dataCursor)),
            ("files", .object(files.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("rng", .object([("state", .array(rng.state.map { .string(String($0)) }))])),
            ("step", JSONValue(step)), ("vldVersion", .string(vldVersion)),
        ])
    }

    /// Reads state.json; the error names the first field that is missing or malformed.
    public init(json data: Data) throws {
        let v = try JSONValue.parse(data, largeIntegersAsText: true)
        func field<T>(_ path: String, _ value: JSONValue?, _ get: (JSONValue) -> T?) throws -> T {
            guard let value, let x = get(value) else { throw CheckpointError("field \(path) is missing or malformed") }
            return x
        }
        func word(_ w: JSONValue) -> UInt64? {
            if let s = w.stringValue { return UInt64(s) }
            if let n = w.doubleValue, n >= 0, n.rounded() == n, n < 9_007_199_254_740_992 { return UInt64(n) }
            return nil
        }
        let a = v["adamW"]
        let adamW = AdamWConfig(
            beta1: Float(try field("adamW.beta1", a?["beta1"], \.doubleValue)),
            beta2: Float(try field("adamW.beta2", a?["beta2"], \.doubleValue)),
            eps: Float(try field("adamW.eps", a?["eps"], \.doubleValue)),
            weightDecay: Float(try field("adamW.weightDecay", a?["weightDecay"], \.doubleValue)))
        let words = try field("rng.state", v["rng"]?["state"]) { w -> [UInt64]? in
            guard case let .array(items) = w, items.count == 4 else { return nil }
            let ws = items.compactMap(word)
            return ws.count == 4 && ws.contains { $0 != 0 } ? ws : nil
        }
        self.init(
            step: try field("step", v["step"], \.intValue), rng: SeededRNG(state: words),
            dataCursor: try field("dataCursor", v["dataCursor"], \.intValue), adamW: adamW)
        vldVersion = try field("vldVersion", v["vldVersion"], \.stringValue)
        files = try field("files", v["files"]) { f -> [String: String]? in
            guard case let .object(fields) = f, fields.allSatisfy({ $0.1.stringValue != nil }) else { return nil }
            return Dictionary(fields.map { ($0.0, $0.1.stringValue!) }, uniquingKeysWith: { a, _ in a })
        }
    }
}

public enum VLD {
    public static let version = "0.1.0"
}

public enum Checkpoint {
    /// Writes `model` (and, when both are given, optimizer and training state) to `dir` atomically.
    /// `extraFiles` (e.g. tokenizer.json) are published in the same rename; they are not
    /// checksummed in state.json, so their readers check them (WordTokenizer.load compares the
    /// whole vocabulary).
    public static func save(
        _ model: Transformer, to dir: URL, optimizer: OptimizerState? = nil, state: TrainingState? = nil,
        extraFiles: [String: Data] = [:]
    ) throws {
        let fm = FileManager.default
        let parent = dir.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        // Leftovers of a crashed earlier save (any PID) are removed first.
        let prefix = ".\(dir.lastPathComponent).tmp-"
        for name in (try? fm.contentsOfDirectory(atPath: parent.path)) ?? [] where name.hasPrefix(prefix) {
            try? fm.removeItem(at: parent.appendingPathComponent(name))
        }
        let tmp = parent.appendingPathComponent(prefix + String(getpid()))
        try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        do {
            var files: [String: Data] = [:]
            files["model.safetensors"] = Safetensors.encode(
                HFFormat.export(model), metadata: ["vld_version": VLD.version])
            files["config.json"] = Data((HFFormat.configJSON(model.config).serialized() + "\n").utf8)
            if let optimizer, var state {
                var tensors: [NamedTensor] = []
                for slot in model.layout.tensors {
                    tensors.append(
                        NamedTensor(
                            name: "m." + slot.name, shape: slot.shape,
                            values: optimizer.m.array(slot.offset, slot.count)))
                    tensors.append(
                        NamedTensor(
                            name: "v." + slot.name, shape: slot.shape,
                            values: optimizer.v.array(slot.offset, slot.count)))
                }
                files["optimizer.safetensors"] = Safetensors.encode(tensors, metadata: ["step": String(optimizer.step)])
                state.files = files.mapValues { String(format: "%08x", CRC32.checksum($0)) }
                state.adamW = optimizer.config
                files["state.json"] = Data((state.json.serialized() + "\n").utf8)
            }
            for (name, data) in extraFiles {
                guard files[name] == nil, !name.contains("/") else {
                    throw CheckpointError("extra checkpoint file \(name) is not allowed")
                }
                files[name] = data
            }
            for (name, data) in files.sorted(by: { $0.key < $1.key }) {
                try writeDurably(data, to: tmp.appendingPathComponent(name))
            }
            try fsyncPath(tmp.path)
            if fm.fileExists(atPath: dir.path) {
                guard clinux_rename_exchange(tmp.path, dir.path) == 0 else {
                    throw CheckpointError(
                        "\(dir.path): cannot replace the checkpoint: \(String(cString: strerror(errno)))")
                }
                // Make the swap durable before the previous checkpoint (now at tmp) goes away;
                // failing to delete it afterwards leaves a leftover, not a broken checkpoint.
                try fsyncPath(parent.path)
                try? fm.removeItem(at: tmp)
                return
            } else {
                guard rename(tmp.path, dir.path) == 0 else {
                    throw CheckpointError(
                        "\(dir.path): cannot publish the checkpoint: \(String(cString: strerror(errno)))")
                }
            }
            try fsyncPath(parent.path)
        } catch {
            try? fm.removeItem(at: tmp)
            throw error
        }
    }

    /// Loads the model of a checkpoint directory (vld's or a Hugging Face `save_pretrained` one).
    public static func loadModel(from dir: URL, pool: ThreadPool) throws -> Transformer {
        let cfg = try loadConfig(from: dir)
        let file = dir.appendingPathComponent("model.safetensors")
        let data = try read(file)
        let (tensors, _) = try Safetensors.decode(data, file: file.path)
        let model = try Transformer(config: cfg, pool: pool)
        try HFFormat.load(tensors, into: model, file: file.path)
        return model
    }

    /// Reads and validates config.json.
    public static func loadConfig(from dir: URL) throws -> ModelConfig {
        let file = dir.appendingPathComponent("config.json")
        let data = try read(file)
        guard let j = try? JSONValue.parse(data), case .object = j else {
            throw CheckpointError("\(file.path): not a JSON object")
        }
        return try HFFormat.parseConfig(j, file: file.path)
    }

    /// Loads model, optimizer and training state for resuming; verifies every file against the
    /// checksums in state.json.
    public static func loadForResume(from dir: URL, pool: ThreadPool) throws -> (
        Transformer, OptimizerState, TrainingState
    ) {
        let stateFile = dir.appendingPathComponent("state.json")
        let state: TrainingState
        do { state = try TrainingState(json: try read(stateFile)) } catch {
            throw CheckpointError("\(stateFile.path): corrupt or incomplete: \(error)")
        }
        let expected: Set<String> = ["config.json", "model.safetensors", "optimizer.safetensors"]
        guard Set(state.files.keys) == expected else {
            throw CheckpointError(
                "\(stateFile.path): must list the checksums of exactly \(expected.sorted().joined(separator: ", "))")
        }
        for (name, crc) in state.files.sorted(by: { $0.key < $1.key }) {
            let actual = String(format: "%08x", CRC32.checksum(try read(dir.appendingPathComponent(name))))
            guard actual == crc else {
                throw CheckpointError(
                    "\(dir.appendingPathComponent(name).path): checksum \(actual) does not match \(crc) in state.json")
            }
        }
        let model = try loadModel(from: dir, pool: pool)
        let optFile = dir.appendingPathComponent("optimizer.safetensors")
        let (tensors, meta) = try Safetensors.decode(try read(optFile), file: optFile.path)
        let opt = OptimizerState(parameterCount: model.parameterCount, config: state.adamW)
        for slot in model.layout.tensors {
            for (prefix, buf) in [("m.", opt.m), ("v.", opt.v)] {
                guard let t = tensors[prefix + slot.name], t.shape == slot.shape else {
                    throw CheckpointError("\(optFile.path): missing or misshapen tensor \(prefix + slot.name)")
                }
                buf.load(t.values, at: slot.offset)
            }
        }
        opt.step = Int(meta["step"] ?? "") ?? state.step
        return (model, opt, state)
    }

    static func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch {
            throw CheckpointError("\(url.path): cannot read: \((error as NSError).localizedDescription)")
        }
    }

    static func writeDurably(_ data: Data, to url: URL) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError("\(url.path): cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try data.withUnsafeBytes { (buf: UnsafeRawBufferPointer) in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw CheckpointError("\(url.path): write failed: \(String(cString: strerror(errno)))")
                }
                off += n
            }
        }
        guard fsync(fd) == 0 else {
            throw CheckpointError("\(url.path): fsync failed: \(String(cString: strerror(errno)))")
        }
    }

    static func fsyncPath(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError("\(path): cannot open directory: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw CheckpointError("\(path): fsync failed: \(String(cString: strerror(errno)))")
        }
    }
}

extension Checkpoint {
    /// Name and shape of every tensor in DIR/model.safetensors, sorted by name.
    public static func tensorTable(of dir: URL) throws -> [(name: String, shape: [Int])] {
        let file = dir.appendingPathComponent("model.safetensors")
        let (tensors, _) = try Safetensors.decode(try read(file), file: file.path)
        return tensors.values.map { ($0.name, $0.shape) }.sorted { $0.name < $1.name }
    }

    /// DIR/state.json, when the checkpoint has one.
    public static func trainingState(of dir: URL) throws -> TrainingState {
        try TrainingState(json: try read(dir.appendingPathComponent("state.json")))
    }
}
