#!/usr/bin/env python3
"""Prints a Markdown table of a vld summary.json: one row per condition, mean [95% bootstrap
interval] over seeds for each metric named on the command line (the interval is the one
summary.json holds; it is there only for conditions with at least 3 seeds).

usage: python3 docs/results/table.py SUMMARY.json [SUMMARY.json...] METRIC... [--pct METRIC,...] [--base CONDITION --diff METRIC]

  Several summaries (the same conditions run with other seeds under another name) are merged by
  condition label; the merged statistics are recomputed here (mean, and a 95% percentile bootstrap
  of the mean with 10,000 resamples, seeded, for 3 or more seeds): the method of vld's Summary.swift
  with another random generator, so an interval end may differ from vld's in its last digit.

  --pct   metrics printed as percentages (accuracies)
  --base, --diff  adds a column: METRIC in each condition minus METRIC in CONDITION, paired by seed
                  (same seed = same initialisation and data order): the mean of the per-seed
                  differences, then each seed's difference in parentheses
"""
import json
import random
import sys


def fmt(v, pct):
    if pct:
        return f"{100 * v:.1f}%"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.4f}"


def stats(values):
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    out = {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}
    if n >= 3:
        rng = random.Random(12345)
        means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(10000))
        out["ci95"] = [means[249], means[9749]]
    return out


def merge(summaries):
    trials = [t for s in summaries for t in s["trials"]]
    labels = []
    for t in trials:
        if t["condition"] not in labels:
            labels.append(t["condition"])
    conds = []
    for label in labels:
        mine = [t for t in trials if t["condition"] == label]
        keys = [k for k in mine[0]["metrics"] if all(k in t["metrics"] for t in mine)]
        conds.append({"condition": label, "seeds": [t["seed"] for t in mine],
                      "metrics": {k: stats([t["metrics"][k] for t in mine]) for k in keys}})
    return {"conditions": conds, "trials": trials, "vldVersion": summaries[0]["vldVersion"],
            "trialsCompleted": sum(s["trialsCompleted"] for s in summaries),
            "trialsTotal": sum(s["trialsTotal"] for s in summaries)}


def main(argv):
    args, pct, base, diff = [], set(), None, None
    it = iter(argv[1:])
    for a in it:
        if a == "--pct":
            pct |= set(next(it).split(","))
        elif a == "--base":
            base = next(it)
        elif a == "--diff":
            diff = next(it)
        else:
            args.append(a)
    if len(args) < 2:
        sys.exit(__doc__)
    files = [a for a in args if a.endswith(".json")]
    metrics = [a for a in args if not a.endswith(".json")]
    summary = json.load(open(files[0]))
    if len(files) > 1:
        summary = merge([summary] + [json.load(open(f)) for f in files[1:]])
    conds = summary["conditions"]
    header = ["condition", "seeds"] + metrics
    ref = None
    if base and diff:
        ref = True
        header.append(f"{diff} vs {base}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for c in conds:
        row = [c["condition"], str(len(c["seeds"]))]
        for m in metrics:
            s = c["metrics"].get(m)
            if s is None:
                row.append("")
                continue
            p = m in pct
            cell = fmt(s["mean"], p)
            if "ci95" in s and s["n"] >= 3 and s["std"] > 0:
                lo, hi = s["ci95"]
                cell += f" [{fmt(lo, p)}, {fmt(hi, p)}]"
            row.append(cell)
        if ref is not None:
            def by_seed(cond):
                return {t["seed"]: t["metrics"][diff] for t in summary["trials"]
                        if t["condition"] == cond and diff in t["metrics"]}
            mine, theirs = by_seed(c["condition"]), by_seed(base)
            ds = [mine[k] - theirs[k] for k in sorted(mine) if k in theirs]
            def sgn(d):
                return ("+" if d >= 0 else "") + (f"{100 * d:.1f}" if diff in pct else f"{d:.4f}")
            unit = " pt" if diff in pct else ""
            row.append(sgn(sum(ds) / len(ds)) + unit + (" (" + ", ".join(sgn(d) for d in ds) + ")" if len(ds) > 1 else "")
                       if ds else "")
        print("| " + " | ".join(row) + " |")
    print(f"\n{summary['trialsCompleted']} of {summary['trialsTotal']} trials, vld {summary['vldVersion']}")


if __name__ == "__main__":
    main(sys.argv)
