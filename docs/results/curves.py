#!/usr/bin/env python3
"""Evaluation curves of a study: every trial's metrics.jsonl (per-trial files, not committed) as one
CSV, and optionally the first evaluation at which a metric reaches a threshold, per trial.

usage: python3 docs/results/curves.py RESULTS_DIR METRIC... [--csv OUT.csv] [--first METRIC=VALUE]

  RESULTS_DIR  the --out directory of `vldctl run` (trial folders NNN-condition-seedS inside)
  METRIC       columns of the CSV besides trial, condition, seed, step and tokens
  --first      prints a Markdown table: per trial, the first evaluated step with METRIC >= VALUE
               ("never" if none) and the last evaluation's value
"""
import csv
import json
import os
import re
import sys


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    out, first, metrics, args = None, None, [], iter(argv[1:])
    for a in args:
        if a == "--csv":
            out = next(args)
        elif a == "--first":
            name, value = next(args).split("=")
            first = (name, float(value))
        else:
            metrics.append(a)
    rows = []
    for d in sorted(os.listdir(argv[0])):
        path = os.path.join(argv[0], d, "metrics.jsonl")
        m = re.match(r"(\d+)-(.*)-seed(\d+)$", d)
        if not m or not os.path.exists(path):
            continue
        condition = m.group(2)  # the folder name spells it for a file system; results.json exactly
        results = os.path.join(argv[0], d, "results.json")
        if os.path.exists(results):
            condition = json.load(open(results)).get("condition", condition)
        for line in open(path):
            e = json.loads(line)
            if all(k in e for k in metrics):
                rows.append({"trial": int(m.group(1)), "condition": condition, "seed": int(m.group(3)),
                             "step": e["step"], "tokens": e.get("tokens"), **{k: e[k] for k in metrics}})
    if out:
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, ["trial", "condition", "seed", "step", "tokens"] + metrics)
            w.writeheader()
            w.writerows(rows)
    if first:
        name, value = first
        print(f"| trial | condition | seed | first step with {name} >= {value:g} | last {name} |")
        print("|---|---|---|---|---|")
        for t in sorted({r["trial"] for r in rows}):
            mine = [r for r in rows if r["trial"] == t and name in r]
            hit = next((r["step"] for r in mine if r[name] >= value), "never")
            print(f"| {t} | {mine[0]['condition']} | {mine[0]['seed']} | {hit} | {mine[-1][name]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
