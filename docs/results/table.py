#!/usr/bin/env python3
"""Prints a Markdown table of a vld summary.json: one row per condition, mean [95% bootstrap
interval] over seeds for each metric named on the command line (the interval is the one
summary.json holds; it is there only for conditions with at least 3 seeds).

usage: python3 docs/results/table.py SUMMARY.json METRIC... [--pct METRIC,...] [--base CONDITION --diff METRIC]

  --pct   metrics printed as percentages (accuracies)
  --base, --diff  adds a column: METRIC in each condition minus METRIC in CONDITION, paired by seed
                  (same seed = same initialisation and data order): the mean of the per-seed
                  differences, then each seed's difference in parentheses
"""
import json
import sys


def fmt(v, pct):
    if pct:
        return f"{100 * v:.1f}%"
    if abs(v) >= 1e6:
        return f"{v:.3g}"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.4f}"


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
    summary = json.load(open(args[0]))
    metrics = args[1:]
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
