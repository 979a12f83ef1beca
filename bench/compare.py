#!/usr/bin/env python3
"""Runs vld-bench and the PyTorch reference (torch_gpt_bench.py) side by side, config by config,
and prints a Markdown table with the ratios vld / PyTorch.

usage: python3 bench/compare.py [--python PYTHON_WITH_TORCH] [--threads 2] [--configs tiny,small,...]
                                [--archs gpt2,llama] [--vld .build/release/vld-bench] [--json out.jsonl]
                                [--sample-reps N] [--search]
The two programs run one after the other (never at the same time) with the same thread count; then
`vld-bench --sgemm` measures OpenBLAS alone on the config's training matrix products, and the table
gives vld's training rate as a share of it.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = {  # name: (d, L, heads, T, V, B, loop)
    "tiny": (64, 2, 2, 64, 128, 32, 1),
    "small": (128, 4, 4, 128, 256, 32, 1),
    "medium": (256, 6, 8, 128, 512, 16, 1),
    "small_loop2": (128, 4, 4, 128, 256, 32, 2),
}
here = os.path.dirname(os.path.abspath(__file__))


def run_torch(py, name, arch, threads, reps):
    d, L, H, T, V, B, loop = CONFIGS[name]
    cmd = [py, os.path.join(here, "torch_gpt_bench.py"), "--name", name, "--arch", arch, "--d-model", str(d),
           "--n-layers", str(L), "--n-heads", str(H), "--ctx", str(T), "--vocab", str(V), "--batch", str(B),
           "--threads", str(threads), "--loop", str(loop), "--sample-reps", str(reps)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
    s = {x["batch"]: x["tokens_per_s"] for x in r["sample"]}
    return {"train_tokens_per_s": r["train"]["tokens_per_s"], "train_gflops": r["train"]["gflops"],
            "sample_b1_tokens_per_s": s[1], "sample_b32_tokens_per_s": s[32], "params": r["n_params_physical"],
            "torch": r["versions"]["torch"]}


def run_vld(exe, name, arch, threads, reps):
    out = subprocess.run([exe, "--config", name, "--arch", arch, "--threads", str(threads), "--sample-reps",
                          str(reps)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_sgemm(exe, name, arch, threads):
    out = subprocess.run([exe, "--sgemm", "--config", name, "--arch", arch, "--threads", str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_search(exe, py, threads):
    """Test-time search on the small gpt2 model, both sides with the same conventions."""
    v = json.loads(subprocess.run([exe, "--search", "--config", "small", "--arch", "gpt2", "--threads", str(threads)],
                                  check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    d, L, H, T, V, B, loop = CONFIGS["small"]
    cmd = [py, os.path.join(here, "torch_gpt_bench.py"), "--name", "small", "--arch", "gpt2", "--d-model", str(d),
           "--n-layers", str(L), "--n-heads", str(H), "--ctx", str(T), "--vocab", str(V), "--threads", str(threads),
           "--no-train", "--no-sample", "--search"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)["search"]
    return v, t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--configs", default="tiny,small,medium,small_loop2")
    ap.add_argument("--archs", default="gpt2,llama")
    ap.add_argument("--vld", default=os.path.join(here, "..", ".build", "release", "vld-bench"))
    ap.add_argument("--json", default="")
    ap.add_argument("--search", action="store_true",
                    help="also compare test-time search (best-of-64 and beam search N 16, M 4 on small gpt2)")
    ap.add_argument("--sample-reps", type=int, default=3,
                    help="timed sampling repetitions on both sides (median reported); batch-1 runs take"
                         " milliseconds, so more repetitions steady them")
    a = ap.parse_args()
    keys = ["train_tokens_per_s", "sample_b1_tokens_per_s", "sample_b32_tokens_per_s"]
    print("| config | arch | params vld/torch | train tok/s vld | torch | ratio | sample b1 vld | torch | ratio "
          "| sample b32 vld | torch | ratio | vld train GFLOP/s | SGEMM GFLOP/s | train / SGEMM | BLAS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in a.configs.split(","):
        for arch in a.archs.split(","):
            v = run_vld(a.vld, name, arch, a.threads, a.sample_reps)
            t = run_torch(a.python, name, arch, a.threads, a.sample_reps)
            g = run_sgemm(a.vld, name, arch, a.threads)
            rows.append({"config": name, "arch": arch, "vld": v, "torch": t, "sgemm": g})
            cells = []
            for k in keys:
                cells += [f"{v[k]:,.0f}", f"{t[k]:,.0f}", f"{v[k] / t[k]:.2f}x"]
            print(f"| {name} | {arch} | {v['params']:,}/{t['params']:,} | " + " | ".join(cells)
                  + f" | {v['train_gflops']:.1f} | {g['sgemm_gflops']:.0f} | {v['train_gflops'] / g['sgemm_gflops']:.0%}"
                  + f" | {v['blas_core']} |", flush=True)
    if a.search:
        print()
        print("| search (small gpt2) | vld tok/s | torch tok/s | ratio |")
        print("|---|---|---|---|")
        v, t = run_search(a.vld, a.python, a.threads)
        for key, label in [("search_bon64_tokens_per_s", "best-of-64"), ("search_bon16_tokens_per_s", "best-of-16"),
                           ("search_beam16x4_tokens_per_s", "beam (16, 4)")]:
            print(f"| {label} | {v[key]:,.0f} | {t[key]:,.0f} | {v[key] / t[key]:.2f}x |", flush=True)
        rows.append({"search": True, "vld": v, "torch": t})
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
