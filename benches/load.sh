#!/usr/bin/env bash
# The load benchmark: real release binaries over loopback.
#
#   benches/load.sh [--store sqlite|postgres] [--replicas N] [--reports N]
#                   [--concurrency C] [--aggregate collect|jobs]
#                   [--measurement M] [--job-size N] [--input-proofs]
#                   [--server-args "ARGS"]
#
# Tasks are created with --no-input-proofs unless --input-proofs is given:
# the figures are then those of the storage and summing path alone (the
# proofs' own costs are in the `proofs` criterion bench).
#
# 1. Starts N `hetally-server` replicas (SQLite allows one; PostgreSQL uses
#    a fresh database `hetally_load_<pid>` on 127.0.0.1:5432) with their
#    job drivers off, creates a task, and has `hetally-client simulate`
#    encrypt REPORTS reports and upload them across the replicas with C
#    requests in flight. Uploads/s counts acknowledged (committed) reports
#    over the upload phase only; encryption is timed apart.
# 2. Stops the replicas (SIGTERM) and starts them again, then measures the
#    time to aggregate the stored reports:
#    - `collect` (default): job drivers stay off; the time of one `collect`
#      call, which reads and sums every stored report in that request.
#    - `jobs`: job drivers on; the time until every report sits in a
#      finished aggregation job (polled in the database), plus the time of
#      the `collect` that then merges the partial sums.
# 3. Decrypts the release and checks it against the truth.
#
# During the upload phase `/healthz` is probed every 50 ms (its slowest and
# median answer times are reported), and afterwards the replicas' 429s are
# read from `/metrics` (`hetally_shed_total`, and the mean verification
# batch from `hetally_verify_batch_reports`, when the server serves them).
# --server-args passes flags to every replica, e.g. small queues for an
# overload run: --server-args "--verify-queue-reports 16". The simulating
# client honours Retry-After, so a 429 costs time, never a report: the
# release must still equal the truth.
#
# Prints a `RESULT` line with the figures. Data goes under a temporary
# directory that is removed at the end (set KEEP=1 to keep it). SKIP_BUILD=1
# runs the release binaries already in the target directory as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

store=sqlite replicas=1 reports=100000 concurrency=64 aggregate=collect
measurement=count job_size=5000 proofs=(--no-input-proofs) server_args=
while (($#)); do
  case $1 in
    --store) store=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --reports) reports=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --aggregate) aggregate=$2; shift 2 ;;
    --measurement) measurement=$2; shift 2 ;;
    --job-size) job_size=$2; shift 2 ;;
    --input-proofs) proofs=(); shift ;;
    --server-args) server_args=$2; shift 2 ;;
    -h|--help) sed -n '2,38p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $store in sqlite|postgres) ;; *) echo "load.sh: --store is sqlite or postgres" >&2; exit 2 ;; esac
case $aggregate in collect|jobs) ;; *) echo "load.sh: --aggregate is collect or jobs" >&2; exit 2 ;; esac
if [[ $store == sqlite && $replicas != 1 ]]; then
  echo "load.sh: several replicas need --store postgres" >&2; exit 2
fi

# SKIP_BUILD=1: use the release binaries already built (repeated runs).
[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d /tmp/hetally-load.XXXXXX)
pids=()
db_url=
pg_db=hetally_load_$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $store == postgres ]]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  fi
  [[ ${KEEP:-0} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

if [[ $store == postgres ]]; then
  psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $pg_db" >/dev/null
  db_url="postgres://postgres@127.0.0.1:5432/$pg_db"
  # PostgreSQL needs a datastore key (sealing DAP task secrets), shared by
  # the replicas.
  export HETALLY_DATASTORE_KEYS="${HETALLY_DATASTORE_KEYS:-$(head -c 32 /dev/urandom | basenc --base64url)}"
fi

# start_replicas JOB_FLAG: starts $replicas servers, fills $urls.
start_replicas() {
  pids=() urls=()
  for i in $(seq "$replicas"); do
    local args=(--data-dir "$work/data" --listen 127.0.0.1:0 --job-size "$job_size" "$@")
    # shellcheck disable=SC2206 # split on purpose: several flags
    [[ -n $server_args ]] && args+=($server_args)
    [[ -n $db_url ]] && args+=(--database-url "$db_url")
    "$bin/hetally-server" "${args[@]}" >"$work/server$i.out" 2>>"$work/server$i.log" &
    pids+=($!)
  done
  for i in $(seq "$replicas"); do
    for _ in $(seq 300); do
      grep -q "listening on" "$work/server$i.out" 2>/dev/null && break
      sleep 0.1
    done
    local u
    u=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/server$i.out" | head -n1)
    [[ -n $u ]] || { echo "load.sh: replica $i did not start; see $work/server$i.log" >&2; exit 1; }
    urls+=("$u")
  done
}

stop_replicas() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# Reports that are not yet in a finished aggregation job.
unaggregated() {
  local q="SELECT (SELECT COUNT(*) FROM reports WHERE job_id IS NULL) + (SELECT COUNT(*) FROM aggregation_jobs WHERE state <> 'done')"
  if [[ $store == postgres ]]; then
    psql -tA -h 127.0.0.1 -U postgres -d "$pg_db" -c "$q"
  else
    python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' \
      "$work/data/hetally.db" "$q"
  fi
}

"$bin/hetally-keytool" keygen --scheme paillier --out "$work/keys" >/dev/null 2>&1
start_replicas --no-job-driver
server_list=$(IFS=,; echo "${urls[*]}")

precision=3600
now=$(date +%s)
batch_start=$(( now - now % precision - precision ))
"$bin/hetally-client" task create --server "${urls[0]}" --admin-token-file "$work/data/admin.token" \
  --public-key "$work/keys/collector.pk" --measurement "$measurement" --min-batch-size 1 \
  --time-precision "$precision" "${proofs[@]}" --token-out "$work/collector.token" --json >"$work/task.json"
task=$(sed -n 's/.*"task_id": "\([^"]*\)".*/\1/p' "$work/task.json")

echo "== $store, $replicas replica(s): simulate $reports $measurement reports, concurrency $concurrency" >&2
# /healthz answer times (seconds), one a line, while the uploads run: one
# Python process opening a new connection per probe (a curl per probe cost
# the machine the benchmark measures about 3% of a core in fork and exec).
python3 - "${urls[0]}" >"$work/healthz.txt" 2>/dev/null <<'PY' &
import http.client, sys, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
while True:
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        conn.close()
        line = "%.6f" % (time.perf_counter() - t0) if resp.status == 200 else "fail"
    except OSError:
        line = "fail"
    print(line, flush=True)
    time.sleep(0.05)
PY
probe=$!
"$bin/hetally-client" simulate --server "$server_list" --task "$task" --reports "$reports" \
  --concurrency "$concurrency" --time "$batch_start" --truth-out "$work/truth.json" --json >"$work/sim.json"
kill "$probe" 2>/dev/null || true
wait "$probe" 2>/dev/null || true
read -r hz_n hz_p50 hz_max hz_fail < <(python3 - "$work/healthz.txt" <<'PY'
import sys
lines = [l.strip() for l in open(sys.argv[1]) if l.strip()]
ok = sorted(float(l) * 1e3 for l in lines if l != "fail")
fail = len(lines) - len(ok)
p50 = ok[len(ok) // 2] if ok else float("nan")
print(len(lines), "%.1f" % p50, "%.1f" % (ok[-1] if ok else float("nan")), fail)
PY
)
shed=0 vsum=0 vcount=0
for u in "${urls[@]}"; do
  read -r n s c < <(curl -s -H "Authorization: Bearer $(cat "$work/data/admin.token")" "$u/metrics" |
    awk '/^hetally_shed_total/ { n += $NF } /^hetally_verify_batch_reports_sum/ { s += $NF }
         /^hetally_verify_batch_reports_count/ { c += $NF } END { print n + 0, s + 0, c + 0 }')
  shed=$((shed + n)) vsum=$((vsum + ${s%.*})) vcount=$((vcount + ${c%.*}))
done
batch=$(python3 -c "import sys; s, c = map(float, sys.argv[1:]); print('%.1f' % (s / c) if c else 'n/a')" "$vsum" "$vcount")
echo "   /healthz during uploads: $hz_n probes, median $hz_p50 ms, slowest $hz_max ms, $hz_fail failed; 429s: $shed; mean verification batch: $batch reports" >&2
rate=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f %.1f %.1f" % (d["uploads_per_second"], d["encrypt_seconds"], d["upload_seconds"]))' "$work/sim.json")
read -r ups enc_s up_s <<<"$rate"
echo "   uploads/s $ups (encrypt $enc_s s, upload $up_s s)" >&2

stop_replicas
jobs_s=0
if [[ $aggregate == jobs ]]; then
  t0=$(date +%s.%N)
  start_replicas
  while (( $(unaggregated) > 0 )); do sleep 0.2; done
  t1=$(date +%s.%N)
  jobs_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
  echo "   aggregation jobs finished in $jobs_s s (from replica start)" >&2
else
  start_replicas --no-job-driver
fi
t0=$(date +%s.%N)
"$bin/hetally-client" collect --server "${urls[-1]}" --task "$task" --token-file "$work/collector.token" \
  --start "$batch_start" --duration "$precision" --out "$work/batch.agg" >/dev/null
t1=$(date +%s.%N)
collect_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
echo "   collect took $collect_s s" >&2
stop_replicas

"$bin/hetally-keytool" decrypt --key "$work/keys/collector.sk" "$work/batch.agg" --format json >"$work/got.json"
python3 - "$work/truth.json" "$work/got.json" <<'PY'
import json, sys
truth, got = (json.load(open(p)) for p in sys.argv[1:3])
if truth["values"] != got["values"] or truth["report_count"] != got["report_count"]:
    sys.exit("load.sh: the release does NOT equal the truth")
PY
total=$(python3 -c "print('%.2f' % ($jobs_s + $collect_s))")
echo "RESULT proofs=$([[ ${#proofs[@]} == 0 ]] && echo on || echo off) store=$store replicas=$replicas measurement=$measurement reports=$reports concurrency=$concurrency uploads_per_s=$ups encrypt_s=$enc_s upload_s=$up_s shed_429=$shed verify_batch_mean=$batch healthz_p50_ms=$hz_p50 healthz_max_ms=$hz_max healthz_failed=$hz_fail aggregate=$aggregate jobs_s=$jobs_s collect_s=$collect_s aggregation_s=$total exact=yes"
