#!/usr/bin/env python3
"""The reading of tts-small-vs-large (issue 13): the targets of specs/tts.md 8.7 tested on the
trials' records, with problem-paired 95% bootstrap intervals.

Every accuracy here is recomputed from records.jsonl with this script's own selection rules
(majority with ties to the first answer, PRM-vote as the largest sum of aggregated scores, PRM-max
as the first highest), independently of vld's TTSAnalysis, and checked against the trial's
results.json. Problems are the same in every tts trial (the same seed and test split), so the
large policy's greedy answers pair with the small policy's searches problem by problem; bins are
the small policy's oracle bins (its pass@1 on 16 difficulty samples: easy >= 0.5, medium >= 0.1).

usage: analysis.py EXPERIMENT_DIR [--json OUT]
  e.g. python3 docs/results/tts-small-vs-large/analysis.py docs/results/tts-small-vs-large/trials \
           --json docs/results/tts-small-vs-large/analysis.json > docs/results/tts-small-vs-large/analysis.md
"""
import json
import os
import random
import sys


def load_records(path):
    """records.jsonl, or records.jsonl.gz as committed under docs/results."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        import gzip
        with gzip.open(path + ".gz", "rt") as f:
            return [json.loads(line) for line in f if line.strip()]
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def agg(scores, mode):
    if not scores:
        return -1.0
    if mode == "last":
        return scores[-1]
    if mode == "min":
        return min(scores)
    if mode == "prod":
        p = 1.0
        for s in scores:
            p *= s
        return p
    return sum(scores) / len(scores)


def select(cands, rule, mode):
    valid = [(c["answer"], agg(c["scores"], mode)) for c in cands if c["answer"] is not None]
    if not valid:
        return None
    order, count, total = [], {}, {}
    for a, s in valid:
        if a not in count:
            order.append(a)
        count[a] = count.get(a, 0) + 1
        total[a] = total.get(a, 0.0) + s
    if rule == "majority":
        top = max(count[a] for a in order)
        return next(a for a in order if count[a] == top)
    if rule == "prm_vote":
        top = max(total[a] for a in order)
        return next(a for a in order if total[a] == top)
    best = valid[0]
    for v in valid[1:]:
        if v[1] > best[1]:
            best = v
    return best[0]


def candidates(record, method, n, m=None):
    for run in record["runs"]:
        if run["method"] != method or (m is not None and run["m"] != m):
            continue
        if method == "beam" and run["n"] != n:
            continue
        outs = set(run["outputs"])
        # Each node holds the scores it added to its parent's: rebuild every candidate's list.
        full = {}
        for x in run["nodes"]:
            base = full[x["parent"]]["scores"] if x["parent"] is not None else []
            full[x["id"]] = {"id": x["id"], "subtree": x["subtree"], "answer": x["answer"], "scores": base + x["scores"]}
        nodes = [full[x["id"]] for x in run["nodes"] if x["id"] in outs]
        if method == "bon":
            nodes = nodes[:n]
        elif method == "dvts":
            nodes = [x for x in nodes if x["subtree"] < n // m]
        return nodes
    return None


def correct(records, method, rule, mode, n, m=None):
    out = []
    for r in records:
        c = candidates(r, method, n, m)
        out.append(1.0 if c is not None and select(c, rule, mode) == r["gold"] else 0.0)
    return out


def oracle_bins(records):
    bins = []
    for r in records:
        a = r["difficulty"]["answers"]
        p = sum(1 for x in a if x == r["gold"]) / len(a)
        bins.append("easy" if p >= 0.5 else "medium" if p >= 0.1 else "hard")
    return bins


RESAMPLES = [None]


def resamples(n, count=2000):
    if RESAMPLES[0] is None or len(RESAMPLES[0][0]) != n:
        rng = random.Random(20261207)
        RESAMPLES[0] = [[rng.randrange(n) for _ in range(n)] for _ in range(count)]
    return RESAMPLES[0]


def interval(values, mask=None):
    idx = [i for i in range(len(values)) if mask is None or mask[i]]
    if not idx:
        return None
    mean = sum(values[i] for i in idx) / len(idx)
    means = []
    for s in resamples(len(values)):
        picked = [values[i] for i in s if mask is None or mask[i]]
        if picked:
            means.append(sum(picked) / len(picked))
    means.sort()
    lo, hi = means[int(0.025 * (len(means) - 1))], means[int(0.975 * (len(means) - 1))]
    return {"mean": mean, "lo": lo, "hi": hi, "problems": len(idx)}


def paired(a, b, mask=None):
    return interval([x - y for x, y in zip(a, b)], mask)



def fmt(c, signed=False):
    if c is None:
        return "—"
    f = "%+.1f [%+.1f, %+.1f]" if signed else "%.1f [%.1f, %.1f]"
    return f % (100 * c["mean"], 100 * c["lo"], 100 * c["hi"])


def main():
    root = sys.argv[1]
    out_json = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    trials = {}
    for d in sorted(os.listdir(root)):
        p = os.path.join(root, d, "results.json")
        if os.path.isfile(p):
            trials[d] = json.load(open(p))
    tts = {d: r for d, r in trials.items() if r.get("kind") == "tts"}
    prms = {d: r for d, r in trials.items() if r.get("kind") == "prm"}
    report = {"prms": {}, "tts": {}, "targets": {}}
    print("## PRMs (held-out, against the oracle's step labels)\n")
    print("| PRM | labels | init | AUC | F1 | first error | ECE | select prmMax / majority / sample / oracle |")
    print("|---|---|---|---|---|---|---|---|")
    for d, r in prms.items():
        h = r["prm"]["heldOut"]
        init = os.path.basename(os.path.dirname(r["init"]["checkpoint"])) if r.get("init") else "?"
        print("| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %.1f / %.1f / %.1f / %.1f |" % (
            d, r["prm"]["labels"], init, h["auc"], h["f1"], h["firstErrorAccuracy"], h["ece"],
            100 * h["select.prmMax"], 100 * h["select.majority"], 100 * h["select.sample"], 100 * h["select.oracle"]))
        report["prms"][d] = h
    records = {d: load_records(os.path.join(root, d, "records.jsonl")) for d in tts}
    large = next((d for d, r in tts.items() if r["policy"]["P_total"] > 1_000_000), None)
    smalls = [d for d, r in tts.items() if d != large]
    base = smalls[0]
    bins = oracle_bins(records[base])
    n_problems = len(bins)
    em = [b in ("easy", "medium") for b in bins]
    print("\nsmall policy's oracle bins: easy %d, medium %d, hard %d" % tuple(bins.count(b) for b in ("easy", "medium", "hard")))
    large_greedy = [1.0 if r["greedy"]["answer"] == r["gold"] else 0.0 for r in records[large]] if large else None
    # Check this script's recomputation against vld's.
    for d in tts:
        for key, v in tts[d]["metrics"].items():
            parts = key.split(".")
            if len(parts) < 4 or parts[1] == "flops" or parts[2] == "pass":
                continue
            label, n = parts[1], int(parts[-1][1:])
            rule, mode = (parts[2], parts[3]) if parts[2] != "majority" else ("majority", "last")
            method = "bon" if label == "bon" else label.rstrip("0123456789")
            m = None if label == "bon" else int(label[len(method):])
            mine = sum(correct(records[d], method, rule, mode, n, m)) / n_problems
            assert abs(mine - v) < 1e-9, (d, key, mine, v)
    print("every tts.* accuracy in the trials' results.json equals this script's recomputation from records.jsonl")

    print("\n## Accuracy (%%) of the small policy's strategies, all %d problems\n" % n_problems)
    for d in smalls:
        prm = tts[d]["prm"]["checkpoint"]
        print("\n### %s (PRM %s)\n" % (d, prm))
        print("| N | majority | bon prm_vote.last | bon prm_max.last | beam4 prm_vote.last | dvts4 prm_vote.last | pass@N |")
        print("|---|---|---|---|---|---|---|")
        rows = {}
        for n in [1, 2, 4, 8, 16, 32, 64]:
            maj = interval(correct(records[d], "bon", "majority", "last", n))
            vote = interval(correct(records[d], "bon", "prm_vote", "last", n))
            mx = interval(correct(records[d], "bon", "prm_max", "last", n))
            beam = interval(correct(records[d], "beam", "prm_vote", "last", n, 4)) if n >= 4 else None
            dv = interval(correct(records[d], "dvts", "prm_vote", "last", n, 4)) if n >= 4 else None
            pass_n = tts[d]["accuracy"]["bon"]["pass"][str(n)]
            print("| %d | %s | %s | %s | %s | %s | %.1f |" % (n, fmt(maj), fmt(vote), fmt(mx), fmt(beam), fmt(dv), 100 * pass_n["mean"]))
            rows[n] = {"majority": maj, "bonVote": vote, "bonMax": mx, "beam4Vote": beam, "dvts4Vote": dv}
        report["tts"][d] = rows

    print("\n## Target 1: beam search (M = 4) against best-of-N PRM-vote (last), paired, percentage points\n")
    print("| trial | N | medium + hard | easy | hard |")
    print("|---|---|---|---|---|")
    t1 = {}
    for d in smalls:
        for n in [4, 16, 64]:
            a = correct(records[d], "beam", "prm_vote", "last", n, 4)
            b = correct(records[d], "bon", "prm_vote", "last", n)
            mh = paired(a, b, [x != "easy" for x in bins])
            e = paired(a, b, [x == "easy" for x in bins])
            h = paired(a, b, [x == "hard" for x in bins])
            print("| %s | %d | %s | %s | %s |" % (d, n, fmt(mh, True), fmt(e, True), fmt(h, True)))
            t1["%s N%d" % (d, n)] = {"mediumHard": mh, "easy": e, "hard": h}
    report["targets"]["1"] = t1

    print("\n## Target 2: aggregations for best-of-N PRM-vote at N = 64, and PRM-vote - PRM-max\n")
    print("| trial | last | min | prod | mean | last - min | last - prod | vote - max (last) |")
    print("|---|---|---|---|---|---|---|---|")
    t2 = {}
    for d in smalls:
        v = {mode: correct(records[d], "bon", "prm_vote", mode, 64) for mode in ("last", "min", "prod", "mean")}
        mx = correct(records[d], "bon", "prm_max", "last", 64)
        row = {mode: interval(v[mode]) for mode in v}
        row["lastMinusMin"] = paired(v["last"], v["min"])
        row["lastMinusProd"] = paired(v["last"], v["prod"])
        row["voteMinusMax"] = paired(v["last"], mx)
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            d, fmt(row["last"]), fmt(row["min"]), fmt(row["prod"]), fmt(row["mean"]), fmt(row["lastMinusMin"], True),
            fmt(row["lastMinusProd"], True), fmt(row["voteMinusMax"], True)))
        t2[d] = row
    report["targets"]["2"] = t2

    if large:
        print("\n## Target 4: the small policy with search against the large policy's greedy decoding\n")
        lg = large_greedy
        print("large policy greedy: all %s, easy+medium %s, hard %s" % (
            fmt(interval(lg)), fmt(interval(lg, em)), fmt(interval(lg, [not x for x in em]))))
        small_greedy = [1.0 if r["greedy"]["answer"] == r["gold"] else 0.0 for r in records[base]]
        print("small policy greedy: all %s, easy+medium %s, hard %s" % (
            fmt(interval(small_greedy)), fmt(interval(small_greedy, em)), fmt(interval(small_greedy, [not x for x in em]))))
        e2e_large = tts[large]["endToEnd"]
        tokens_large = tts[large]["cost"]["greedy"]["policyTokens"] + sum(r["promptTokens"] for r in records[large]) / n_problems
        pre_tokens = 10000 * 16 * 96
        t4 = {"largeGreedy": interval(lg), "largeGreedyEasyMedium": interval(lg, em), "rows": []}
        print("\n| trial | strategy | all | easy+medium | hard | small - large (easy+medium) | inference FLOPs/problem | "
              "end-to-end FLOPs small / large at R = 0.16, 0.8, 22 |")
        print("|---|---|---|---|---|---|---|---|")
        for d in smalls:
            e2e = tts[d]["endToEnd"]
            fixed = e2e["policyPretraining"] + e2e["prmTraining"] + e2e["prmLabellingAndEvaluation"] + (e2e.get("prmInitPretraining") or 0)
            for label, method, rule, n, m in [("bon majority@64", "bon", "majority", 64, None),
                                               ("bon prm_vote@64", "bon", "prm_vote", 64, None),
                                               ("beam4 prm_vote@64", "beam", "prm_vote", 64, 4),
                                               ("bon prm_vote@16", "bon", "prm_vote", 16, None)]:
                c = correct(records[d], method, rule, "last", n, m)
                key = "bon" if method == "bon" else "%s%d" % (method, m)
                cost = tts[d]["cost"][key][str(n)]
                per = cost["policyFlops"] + cost["prmFlops"]
                ratios = []
                for R in (0.16, 0.8, 22):
                    q = R * pre_tokens / tokens_large
                    large_total = e2e_large["policyPretraining"] + q * tts[large]["cost"]["greedy"]["policyFlops"]
                    small_total = fixed + q * per
                    ratios.append(small_total / large_total)
                row = {"trial": d, "strategy": label, "all": interval(c), "easyMedium": interval(c, em),
                       "hard": interval(c, [not x for x in em]), "diffEasyMedium": paired(c, lg, em),
                       "inferenceFlopsPerProblem": per, "endToEndRatio": dict(zip(["0.16", "0.8", "22"], ratios))}
                t4["rows"].append(row)
                print("| %s | %s | %s | %s | %s | %s | %.3g | %s |" % (
                    d, label, fmt(row["all"]), fmt(row["easyMedium"]), fmt(row["hard"]), fmt(row["diffEasyMedium"], True),
                    per, " / ".join("%.2f" % x for x in ratios)))
        print("\n(large greedy inference: %.3g FLOPs per problem; pretraining %.3g (small) and %.3g (large) FLOPs; "
              "R = inference tokens / pretraining tokens, %d pretraining tokens each, %.1f tokens per problem)" % (
                  tts[large]["cost"]["greedy"]["policyFlops"], tts[base]["endToEnd"]["policyPretraining"],
                  e2e_large["policyPretraining"], pre_tokens, tokens_large))
        report["targets"]["4"] = t4

    print("\n## Target 5: the compute-optimal selector against best-of-N PRM-vote at N = 64\n")
    t5 = {}
    for d in smalls:
        for bins_name in ("predicted", "oracle"):
            sel = tts[d]["selector"].get(bins_name)
            if not sel:
                continue
            target = tts[d]["accuracy"]["bon"]["prm_vote.last"]["64"]["mean"]
            first = None
            for b in sel["budgets"]:
                if b["selectorAccuracy"]["mean"] >= target and first is None:
                    first = b["budget"]
            print("%s, %s bins: bon prm_vote@64 %.1f%%; the selector reaches it first at N = %s (%s with the %d difficulty samples); "
                  "at N = 16: %s" % (d, bins_name, 100 * target, first, None if first is None else first + sel["difficultySamples"],
                                     sel["difficultySamples"],
                                     fmt(next(b for b in sel["budgets"] if b["budget"] == 16)["selectorAccuracy"])))
            t5["%s %s" % (d, bins_name)] = {"target": target, "firstBudget": first}
    report["targets"]["5"] = t5
    if out_json:
        with open(out_json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
