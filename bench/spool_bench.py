#!/usr/bin/env python3
"""Intake benchmark for vldd: how fast does the spool turn dropped manifests into jobs, and how
fast does `vldctl ls` answer with 10,000 jobs in the queue?

    python3 bench/spool_bench.py [--drops 1000] [--grid-manifests 100] [--bin .build/release]

Starts vldd on a fresh state tree in a temporary directory, drops N one-trial manifests at once
(write to spool/tmp, rename into spool/incoming, as fast as Python can), and waits until all are in
spool/accepted. Intake latency of a manifest = the daemon's received_at (from its database) minus
the time its rename returned. Then it submits grid manifests of 100 trials each until the queue
holds about 10,000 jobs more, and times `vldctl ls`, `vldctl ls --all` and `vldctl ls --all --json`
(median of 5). Prints one JSON object. The jobs are tiny; the daemon starts running them (one
worker), as it would in use.
"""
import argparse, json, os, signal, sqlite3, statistics, subprocess, sys, tempfile, time

MANIFEST = ('{"name": "%s", "resources": {"threads": 1}, "task": {"type": "bios", "people": 20, "exposures": 10},'
            ' "model": {"dModel": 16, "layers": 1, "heads": 2, "context": 48}, "train": {"steps": 1, "batch": 8}%s}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drops", type=int, default=1000)
    ap.add_argument("--grid-manifests", type=int, default=100)
    ap.add_argument("--bin", default=".build/release")
    a = ap.parse_args()
    vldd, vldctl = os.path.abspath(os.path.join(a.bin, "vldd")), os.path.abspath(os.path.join(a.bin, "vldctl"))
    tmp = tempfile.mkdtemp(prefix="vld-spool-bench-")
    state = os.path.join(tmp, "state")
    conf = os.path.join(tmp, "vldd.conf")
    with open(conf, "w") as f:
        f.write(f"state_dir = {state}\nmax_trials = 1000\n")
    log = open(os.path.join(tmp, "vldd.log"), "w")
    daemon = subprocess.Popen([vldd, "--config", conf], stderr=log, stdout=log)
    ctl = lambda *args: subprocess.run([vldctl, *args, "--config", conf], capture_output=True, text=True)
    for _ in range(200):
        if ctl("status").returncode == 0:
            break
        time.sleep(0.05)
    try:
        incoming, stage, accepted = (os.path.join(state, "spool", d) for d in ("incoming", "tmp", "accepted"))
        dropped = {}
        t0 = time.time()
        for i in range(a.drops):
            name = f"m{i}.json"
            part = os.path.join(stage, name + ".part")
            with open(part, "w") as f:
                f.write(MANIFEST % (f"m{i}", ""))
            os.rename(part, os.path.join(incoming, name))
            dropped[name] = time.time()
        t_dropped = time.time()
        while len(os.listdir(accepted)) < a.drops:
            time.sleep(0.01)
        t_all = time.time()
        db = sqlite3.connect(f"file:{os.path.join(state, 'db', 'vldd.sqlite3')}?mode=ro", uri=True)
        received = dict(db.execute("SELECT file_name, received_at FROM manifests"))
        latencies = sorted((received[n] / 1000 - t) * 1000 for n, t in dropped.items() if n in received)
        pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]

        grid = ', "grid": {"seed": [%s]}' % ", ".join(str(s) for s in range(1, 101))
        path = os.path.join(tmp, "grid.json")
        for g in range(a.grid_manifests):
            with open(path, "w") as f:
                f.write(MANIFEST % (f"g{g}", grid))
            r = ctl("submit", path)
            if r.returncode != 0:
                sys.exit(f"submit failed: {r.stderr}")
        jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]

        def timed(*args):
            runs = []
            for _ in range(5):
                s = time.time()
                r = ctl(*args)
                runs.append((time.time() - s) * 1000)
                assert r.returncode == 0, r.stderr
            return round(statistics.median(runs), 1)

        print(json.dumps({
            "drops": a.drops,
            "dropSeconds": round(t_dropped - t0, 3),
            "allAcceptedSeconds": round(t_all - t0, 3),
            "intakeLatencyMs": {"p50": round(pct(0.5), 1), "p99": round(pct(0.99), 1), "max": round(latencies[-1], 1)},
            "jobsInQueue": jobs,
            "lsMs": timed("ls"), "lsAllMs": timed("ls", "--all"), "lsAllJsonMs": timed("ls", "--all", "--json"),
            "cores": os.cpu_count(),
        }))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
