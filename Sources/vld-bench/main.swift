// vld-bench: training and sampling throughput of the vld engine, one JSON object per line.
// Configurations and conventions match shared/bench/torch_gpt_bench.py so that both can be run
// side by side on one machine (see README, "Performance").

import Foundation
import VLDExperiments
import VLDModel
import VLDTensor

BLAS.reexecWithSupportedKernelsIfNeeded()

let usage = """
    usage: vld-bench [--config tiny|small|medium|small_loop2] [--arch gpt2|llama] [--threads N] [--all]
                     [--min-seconds S] [--sample-reps N] [--sample-batches 1,32] [--no-sample] [--no-train]
           vld-bench --search [--config NAME] [--arch gpt2|llama] [--threads N] [--min-seconds S]
           vld-bench --data MANIFEST... [--threads N] [--min-seconds S]
           vld-bench --sgemm [--config NAME] [--arch gpt2|llama] [--threads N] [--min-seconds S]

    Prints one JSON object per line: config, arch, threads, params, train_tokens_per_s, train_gflops,
    sample_b1_tokens_per_s, sample_b32_tokens_per_s, peak_rss_mib.
    --all runs every config for both architectures. Sampling reports the median of --sample-reps
    timed repetitions (default 3, as bench/torch_gpt_bench.py) of each --sample-batches size
    (default 1,32; each prints sample_b<size>_tokens_per_s).

    --search measures test-time search on the config's model (random weights): best-of-64 and beam
    search (N = 16, M = 4) from a 16-token prompt, steps of up to 16 tokens, 4 rounds (64 new tokens
    per candidate at most: compare with bench/torch_gpt_bench.py --sample-batches 64), and a
    KV-cached PRM scoring 64 candidates of 64 tokens: search_bon64_tokens_per_s,
    search_bon64_candidates_per_s, search_beam16x4_tokens_per_s, search_beam_over_bon_per_token
    (seconds per generated token, beam over best-of-N) and prm_scored_tokens_per_s.

    --sgemm measures OpenBLAS alone on the matrix products of one training step of the config
    (each linear layer's forward, input-gradient and weight-gradient product and the output head's,
    M = batch x context, OpenBLAS threading each call over N threads): sgemm_gflops, the rate that
    train_gflops is measured against (the issue-15 target: medium training at 60% of it).

    --data measures each manifest's data pipeline against the training it feeds, one JSON object
    per distinct trial: per task generator docs_per_s and tokens_per_s (generation and encoding,
    one thread), pack_positions_per_s (packed B x T rows, padding included), train_positions_per_s
    (the trial's model on those batches, --threads threads, median step) and data_over_train, their
    ratio (data is made on the training thread, so 1/ratio of each step waits for it).
    """

var options = BenchOptions()
var runAll = false
var search = false
var sgemm = false
var dataManifests: [String] = []
var args = Array(CommandLine.arguments.dropFirst())
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vld-bench: \(message)\n\(usage)\n".utf8))
    exit(64)
}
while !args.isEmpty {
    let a = args.removeFirst()
    func value() -> String {
        guard !args.isEmpty else { fail("\(a) needs a value") }
        return args.removeFirst()
    }
    switch a {
    case "--config": options.config = value()
    case "--arch": guard let v = Arch(rawValue: value()) else { fail("--arch is gpt2 or llama") }; options.arch = v
    case "--threads":
        guard let n = Int(value()), n >= 1 else { fail("--threads needs an integer >= 1") }; options.threads = n
    case "--min-seconds":
        guard let s = Double(value()), s >= 0 else { fail("--min-seconds needs a number") }; options.minSeconds = s
    case "--sample-reps":
        guard let n = Int(value()), n >= 1 else { fail("--sample-reps needs an integer >= 1") }; options.sampleReps = n
    case "--sample-batches":
        let sizes = value().split(separator: ",").map { Int($0) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            fail("--sample-batches needs batch sizes >= 1, comma-separated")
        }
        options.sampleBatches = sizes.map { $0! }
    case "--no-sample": options.sample = false
    case "--no-train": options.train = false
    case "--all": runAll = true
    case "--search": search = true
    case "--sgemm": sgemm = true
    case "--data":
        dataManifests.append(value())
        while let next = args.first, !next.hasPrefix("--") { dataManifests.append(args.removeFirst()) }
    case "-h", "--help": print(usage); exit(0)
    default: fail("unknown argument \(a)")
    }
}
if !dataManifests.isEmpty {
    for path in dataManifests {
        do {
            let experiment = try Experiment.parse(try Data(contentsOf: URL(fileURLWithPath: path)))
            let rows = try DataBenchmark.run(experiment, threads: options.threads, minSeconds: options.minSeconds) {
                FileHandle.standardError.write(Data("vld-bench: \(path): \($0)\n".utf8))
            }
            for row in rows {
                guard case let .object(fields) = row else { continue }
                print(JSONValue.object([("manifest", .string(path))] + fields).serialized(pretty: false))
                fflush(stdout)
            }
        } catch {
            FileHandle.standardError.write(Data("vld-bench: \(path): \(error)\n".utf8))
            exit(1)
        }
    }
    exit(0)
}
if sgemm {
    guard BenchConfig.named(options.config, arch: options.arch) != nil else {
        fail("unknown config \(options.config); expected \(BenchConfig.names.joined(separator: ", "))")
    }
    let fields = runSGEMMBenchmark(
        config: options.config, arch: options.arch, threads: options.threads, minSeconds: options.minSeconds)
    print(JSONValue.object(fields + [("blas_core", .string(BLAS.coreName))]).serialized(pretty: false))
    exit(0)
}
if search {
    do {
        let fields = try SearchBenchmark.run(
            config: options.config, arch: options.arch, threads: options.threads, minSeconds: options.minSeconds)
        print(JSONValue.object(fields + [("blas_core", .string(BLAS.coreName))]).serialized(pretty: false))
    } catch {
        fail("\(error)")
    }
    exit(0)
}
let runs: [(String, Arch)] =
    runAll
    ? BenchConfig.names.flatMap { n in Arch.allCases.map { (n, $0) } } : [(options.config, options.arch)]
for (name, arch) in runs {
    guard BenchConfig.named(name, arch: arch) != nil else {
        fail("unknown config \(name); expected \(BenchConfig.names.joined(separator: ", "))")
    }
    var o = options
    o.config = name
    o.arch = arch
    let result = runBenchmark(o)
    // Keys sorted, as bench/compare.py and earlier runs read them.
    let fields = (result + [("blas_core", JSONValue.string(BLAS.coreName))]).sorted { $0.0 < $1.0 }
    print(JSONValue.object(fields).serialized(pretty: false))
    fflush(stdout)
}
