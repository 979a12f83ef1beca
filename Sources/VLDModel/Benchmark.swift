// Benchmark.swift: the measurements behind vld-bench, following shared/bench/torch_gpt_bench.py.
//
// Training: 3 warm-up steps, then at least 10 steps and `minSeconds` of steps; tokens/s = B*T over
// the median step time (forward + backward + AdamW). Sampling: a 16-token random prompt, 64 new
// tokens by multinomial sampling at temperature 1 (1 prefill + 63 decode forwards), one warm-up
// then the median of `sampleReps` repetitions (3 unless --sample-reps); tokens/s = batch * 64 over the whole time including prefill.

import Foundation
import VLDJSON
import VLDTensor

public struct BenchOptions {
    public var config = "small"
    public var arch: Arch = .gpt2
    public var threads = 2
    public var minSeconds = 3.0
    public var train = true
    public var sample = true
    /// Timed sampling repetitions after the warm-up (the median is reported), as
    /// torch_gpt_bench.py's --sample-reps.
    public var sampleReps = 3
    /// Sampling batch sizes, as torch_gpt_bench.py's --sample-batches.
    public var sampleBatches = [1, 32]
    public init() {}
}

public enum BenchConfig {
    public static let names = ["tiny", "small", "medium", "small_loop2"]

    /// The model and batch of a named benchmark configuration.
    public static func named(_ name: String, arch: Arch) -> (ModelConfig, batch: Int, seqLen: Int)? {
        let (d, L, H, T, V, B, schedule): (Int, Int, Int, Int, Int, Int, LayerSchedule)
        switch name {
        case "tiny": (d, L, H, T, V, B, schedule) = (64, 2, 2, 64, 128, 32, .base)
        case "small": (d, L, H, T, V, B, schedule) = (128, 4, 4, 128, 256, 32, .base)
        case "medium": (d, L, H, T, V, B, schedule) = (256, 6, 8, 128, 512, 16, .base)
        case "small_loop2": (d, L, H, T, V, B, schedule) = (128, 4, 4, 128, 256, 32, .cyc(1))
        default: return nil
        }
        // n_positions = max(ctx, prompt 16 + 64 new), as in the PyTorch script.
        let cfg = ModelConfig(
            arch: arch, dModel: d, layers: L, heads: H, context: max(T, 80), vocab: V, schedule: schedule)
        return (cfg, B, T)
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
}

/// Runs one configuration and returns the JSON fields of vld-bench.
public func runBenchmark(_ o: BenchOptions) -> [(String, JSONValue)] {
    let (cfg, B, T) = BenchConfig.named(o.config, arch: o.arch)!
    let pool = ThreadPool(threads: o.threads)
    var rng = SeededRNG(seed: 1234)
    let model = try! Transformer(config: cfg, pool: pool, rng: &rng)
    var result: [(String, JSONValue)] = [
        ("config", .string(o.config)), ("arch", .string(o.arch.rawValue)), ("threads", JSONValue(o.threads)),
        ("params", JSONValue(model.parameterCount)), ("schedule", .string(cfg.schedule.description)),
    ]
    if o.train {
        let opt = OptimizerState(parameterCount: model.parameterCount, config: AdamWConfig())
        var data = SeededRNG(seed: 1235)
        let batches = (0..<4).map { _ in
            (
                (0..<(B * T)).map { _ in Int32(data.nextInt(cfg.vocab)) },
                (0..<(B * T)).map { _ in Int32(data.nextInt(cfg.vocab)) }
            )
        }
        for i in 0..<3 {
            _ = try! model.trainStep(
                inputs: batches[i % 4].0, targets: batches[i % 4].1, B: B, T: T, lr: 3e-4, clip: 0, optimizer: opt)
        }
        var times: [Double] = []
        let start = monotonicSeconds()
        var i = 0
        var loss: Float = 0
        while (i < 10 || monotonicSeconds() - start < o.minSeconds) && i < 1000 {
            let t0 = monotonicSeconds()
            loss = try! model.trainStep(
                inputs: batches[i % 4].0, targets: batches[i % 4].1, B: B, T: T, lr: 3e-4, clip: 0,
                optimizer: opt
            ).loss
            times.append(monotonicSeconds() - t0)
            i += 1
        }
        let med = median(times)
        result += [
            ("train_tokens_per_s", JSONValue(Double(B * T) / med)),
            ("train_gflops", JSONValue(cfg.trainFlopsPerStep(batch: B, seqLen: T) / med / 1e9)),
            ("train_step_ms_median", JSONValue(med * 1e3)), ("train_final_loss", JSONValue(Double(loss))),
        ]
    }
    if o.sample {
        for batch in o.sampleBatches {
            var srng = SeededRNG(seed: 1241)
            func once() -> Double {
                let prompts = (0..<batch).map { _ in (0..<16).map { _ in Int32(srng.nextInt(cfg.vocab)) } }
                let t0 = monotonicSeconds()
                let out = try! model.generate(prompts: prompts, options: SamplingOptions(maxNewTokens: 64), rng: &srng)
                require(out.allSatisfy { $0.count == 64 }, "benchmark sampling must produce 64 tokens per sequence")
                return monotonicSeconds() - t0
            }
            _ = once()
            let t = median((0..<max(1, o.sampleReps)).map { _ in once() })
            result.append(("sample_b\(batch)_tokens_per_s", JSONValue(Double(batch * 64) / t)))
        }
    }
    result.append(("peak_rss_mib", JSONValue(peakRSSMiB())))
    return result
}

/// Peak resident set size of this process in MiB (getrusage ru_maxrss).
public func peakRSSMiB() -> Double {
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    return Double(ru.ru_maxrss) / 1024
}

/// The machine's matrix-product rate on the shapes one training step of `config` multiplies:
/// for every linear layer (C -> OC) of a block and the output head, the forward product (M x OC,
/// inner C), the input gradient (M x C, inner OC) and the weight gradient (OC x C, inner M), with
/// M = B x T, each as one OpenBLAS call threaded by OpenBLAS itself over `threads` threads (the
/// library at its best, with no pool around it). Attention's per-head products are left out (they
/// are small and vld's own). Returns the JSON fields of `vld-bench --sgemm`: sgemm_gflops (total
/// multiply-adds x 2 over the median time of one pass over the shapes).
public func runSGEMMBenchmark(config name: String, arch: Arch, threads: Int, minSeconds: Double) -> [(
    String, JSONValue
)] {
    let (cfg, B, T) = BenchConfig.named(name, arch: arch)!
    let M = B * T, d = cfg.dModel
    var layers: [(C: Int, OC: Int)] = [(d, cfg.qkvWidth), (d, d), (d, cfg.fcWidth), (cfg.ffnHidden, d)]
    layers = Array(repeating: layers, count: cfg.applications).flatMap { $0 } + [(d, cfg.vocab)]
    let biggest = layers.map { max($0.C, $0.OC) }.max()!
    var rng = SeededRNG(seed: 7)
    let a = FloatBuffer(count: M * biggest), b = FloatBuffer(count: M * biggest), c = FloatBuffer(count: M * biggest)
    for i in 0..<(M * biggest) {
        a.base[i] = Float(rng.nextNormal() * 0.1); b.base[i] = Float(rng.nextNormal() * 0.1)
    }
    BLAS.setThreads(threads)
    defer { BLAS.useSingleThreadedCalls() }
    var flops = 0.0
    func pass() {
        flops = 0
        for (C, OC) in layers {
            // forward: out (M,OC) = x (M,C) W (OC,C)^T
            BLAS.sgemm(
                transA: false, transB: true, M: M, N: OC, K: C, A: a.base, lda: C, B: b.base, ldb: C, beta: 0,
                C: c.base, ldc: OC)
            // input gradient: dx (M,C) += dout (M,OC) W (OC,C)
            BLAS.sgemm(
                transA: false, transB: false, M: M, N: C, K: OC, A: a.base, lda: OC, B: b.base, ldb: C, beta: 1,
                C: c.base, ldc: C)
            // weight gradient: dW (OC,C) += dout^T (OC,M) x (M,C)
            BLAS.sgemm(
                transA: true, transB: false, M: OC, N: C, K: M, A: a.base, lda: OC, B: b.base, ldb: C, beta: 1,
                C: c.base, ldc: C)
            flops += 3 * 2 * Double(M) * Double(C) * Double(OC)
        }
    }
    pass()
    var times: [Double] = []
    let start = monotonicSeconds()
    while times.count < 5 || (monotonicSeconds() - start < minSeconds && times.count < 1000) {
        let t0 = monotonicSeconds()
        pass()
        times.append(monotonicSeconds() - t0)
    }
    return [
        ("config", .string(name)), ("arch", .string(arch.rawValue)), ("threads", JSONValue(threads)),
        ("sgemm_gflops", JSONValue(flops / median(times) / 1e9)), ("sgemm_calls_per_pass", JSONValue(3 * layers.count)),
        ("sgemm_m", JSONValue(M)),
    ]
}
