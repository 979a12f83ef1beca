#!/bin/bash
# slurm-overhead.sh: wall time of one 8-trial grid (bench/slurm-overhead.json) through vldd, from
# submit until every job succeeded, and the final losses (equal across executors). Usage:
#   bench/slurm-overhead.sh local "workers = 2\ntotal_threads = 2"
#   bench/slurm-overhead.sh slurm "executor = slurm\nslurm_poll_seconds = 1"   (scripts/slurm-local up first)
set -e
name=$1; extra=$2
B=${VLD_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release}
d=/tmp/sb-$name; rm -rf $d; mkdir -p $d
printf "state_dir = $d/state\n$extra\n" > $d/vldd.conf
$B/vldd --config $d/vldd.conf > $d/log 2>&1 &
pid=$!
for i in $(seq 100); do $B/vldctl --config $d/vldd.conf status >/dev/null 2>&1 && break; sleep 0.1; done
t0=$(date +%s.%N)
$B/vldctl --config $d/vldd.conf submit "$(dirname "$0")/slurm-overhead.json" >/dev/null
while true; do
  n=$($B/vldctl --config $d/vldd.conf ls --all --json | python3 -c 'import json,sys; print(sum(j["state"]=="succeeded" for j in json.load(sys.stdin)))')
  [ "$n" = 8 ] && break; sleep 0.2
done
t1=$(date +%s.%N)
python3 - "$d" "$B" <<'PY'
import json,subprocess,sys
d=sys.argv[1]
jobs=json.loads(subprocess.run([sys.argv[2]+"/vldctl","--config",d+"/vldd.conf","ls","--all","--json"],capture_output=True,text=True).stdout)
losses=sorted((j["name"],round(j["loss"],6)) for j in jobs)
print(json.dumps(losses))
PY
kill $pid; wait $pid || true
echo "$name wall_s $(python3 -c "print(round($t1-$t0,2))")"
