// TrialInputs.swift: what a trial opens before it runs: its directory (manifest.json checked
// against the trial, log.txt), and the checkpoints it reads (train's `init`, distill's teacher, a
// PRM's policy, a search's policy and PRM), each refused with the role, reference and directory
// when it cannot serve.

import Foundation
import VLDModel
import VLDTasks
import VLDTensor

extension TrainRunner {
    /// Copies the weights of the checkpoint in `dir` into `model` (`init`: fine-tuning and
    /// continued pretraining). The checkpoint must hold the same model up to its layer schedule
    /// (a schedule reuses blocks; it adds no parameters, so a base model can seed a looped one)
    /// and the same vocabulary.
    static func initialize(
        _ model: Transformer, from dir: URL, ref: CheckpointRef, tokenizer: WordTokenizer, pool: ThreadPool
    ) throws {
        let what = "init \(ref) (\(dir.path))"
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            throw TrialError("\(what): no checkpoint there (config.json is missing)")
        }
        let source: Transformer
        do { source = try Checkpoint.loadModel(from: dir, pool: pool) } catch {
            throw TrialError("\(what): cannot load the checkpoint: \(error)")
        }
        var theirs = source.config
        theirs.schedule = model.config.schedule
        guard theirs == model.config, source.parameterCount == model.parameterCount else {
            throw TrialError(
                "\(what) holds a different model (\(brief(source.config))); this trial builds \(brief(model.config))")
        }
        do { _ = try WordTokenizer.load(from: dir, expecting: tokenizer) } catch {
            throw TrialError("\(what): its tokenizer differs from this trial's tasks: \(error)")
        }
        model.params.load(source.params.array())
    }

    /// Creates (or reopens) a trial's directory: manifest.json is written, or checked against the
    /// trial when it is there (a directory holds one trial's run), and log.txt opened for appending.
    static func openTrial(_ trial: Trial, in dir: TrialDirectory) throws -> LogFile {
        try FileManager.default.createDirectory(at: dir.url, withIntermediateDirectories: true)
        let resolved = trial.manifest.json.serialized() + "\n"
        if let existing = try? String(contentsOf: dir.manifest, encoding: .utf8) {
            guard existing == resolved else {
                throw TrialError(
                    "\(dir.path) holds a run of a different manifest; remove it or choose another output directory")
            }
        } else {
            try writeAtomically(resolved, to: dir.manifest)
        }
        return try LogFile(dir.log)
    }

    /// Opens a trial (as `openTrial`) and returns a logger that writes each line to its log.txt
    /// and to the run's own log.
    static func openTrialLog(_ trial: Trial, in dir: TrialDirectory, context: RunContext) throws -> (String) -> Void {
        let logFile = try openTrial(trial, in: dir)
        return { line in
            logFile.write(line)
            context.log(line)
        }
    }

    /// Loads the model of the checkpoint `ref` names, read by a trial as its `role` ("teacher",
    /// "policy", "prm"), and checks that it learned `tokenizer`'s vocabulary; every failure is a
    /// TrialError naming the role, the reference and the directory. `mismatch` ends the sentence
    /// "its tokenizer differs from ...".
    static func loadCheckpoint(
        _ ref: CheckpointRef, role: String, context: RunContext, pool: ThreadPool, tokenizer: WordTokenizer,
        mismatch: String
    ) throws -> (model: Transformer, directory: URL) {
        let dir = try context.checkpoint(ref)
        let what = "\(role) \(ref) (\(dir.path))"
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("config.json").path) else {
            throw TrialError("\(what): no checkpoint there (config.json is missing)")
        }
        let model: Transformer
        do { model = try Checkpoint.loadModel(from: dir, pool: pool) } catch {
            throw TrialError("\(what): cannot load the checkpoint: \(error)")
        }
        do { _ = try WordTokenizer.load(from: dir, expecting: tokenizer) } catch {
            throw TrialError("\(what): its tokenizer differs from \(mismatch): \(error)")
        }
        return (model, dir)
    }
}
