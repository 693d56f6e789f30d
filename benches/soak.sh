#!/usr/bin/env bash
# The soak benchmark: a release server under steady load for a long time.
#
#   benches/soak.sh [--minutes M] [--interval S] [--reports-per-interval R]
#                   [--concurrency C] [--cost-reports N] [--cost-runs K]
#                   [--skip-cost] [--out DIR]
#
# Phase 1 (cost): the throughput cost of metrics and TLS. One release
# server per configuration, each fed N count reports with input proofs by
# `hetally-client simulate`, K times in turn (plain HTTP without metrics,
# plain HTTP with metrics scraped every second, HTTPS with metrics), so
# that the machine's drift hits every configuration alike. Prints the
# median uploads/s of each, the cost of metrics (against plain HTTP
# without them) and the cost of TLS (against plain HTTP with metrics).
# TLS uses a throw-away CA and certificate for 127.0.0.1 that the script
# makes with openssl in its temporary directory.
#
# Phase 2 (soak): one server (SQLite, job driver and garbage collector on,
# GC every interval) with a count task of time precision S (default 60 s).
# Every interval, R reports stamped with the current interval are
# encrypted and uploaded, and the previous interval is released and
# decrypted (checked exact against the truth). Every 10 s the database
# size (file plus WAL), the server's RSS and the report rows are sampled
# into DIR/samples.csv; at the end DIR/soak.svg plots them and a RESULT
# line compares the last third of the run with the middle third (a
# plateau has both about equal).
#
# DIR defaults to a new temporary directory, kept at the end. SKIP_BUILD=1
# runs the release binaries already in the target directory as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30 interval=60 per_interval=20000 concurrency=32 cost_reports=20000 cost_runs=3
skip_cost=0 out=
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --reports-per-interval) per_interval=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --cost-reports) cost_reports=$2; shift 2 ;;
    --cost-runs) cost_runs=$2; shift 2 ;;
    --skip-cost) skip_cost=1; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[[ ${SKIP_BUILD:-0} == 1 ]] || cargo build --release --quiet --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
work=${out:-$(mktemp -d /tmp/hetally-soak.XXXXXX)}
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "soak.sh: results in $work" >&2
}
trap cleanup EXIT

# start_server NAME ARGS...: starts a server with data in $work/NAME; sets
# $url and $server_pid.
start_server() {
  local name=$1; shift
  "$bin/hetally-server" --data-dir "$work/$name" --listen 127.0.0.1:0 "$@" \
    >"$work/$name.out" 2>>"$work/$name.log" &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 300); do
    grep -q "listening on" "$work/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on \(https\{0,1\}:[^ ]*\).*/\1/p' "$work/$name.out" | head -n1)
  [[ -n $url ]] || { echo "soak.sh: server $name did not start; see $work/$name.log" >&2; exit 1; }
}

stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
}

# new_task NAME PRECISION [CLIENT ARGS...]: creates a count task with input
# proofs on $url; sets $task.
new_task() {
  local name=$1 precision=$2; shift 2
  "$bin/hetally-client" "$@" task create --server "$url" --admin-token-file "$work/$name/admin.token" \
    --public-key "$work/keys/collector.pk" --measurement count --min-batch-size 1 \
    --time-precision "$precision" --token-out "$work/$name.token" --json >"$work/$name.task.json"
  task=$(sed -n 's/.*"task_id": "\([^"]*\)".*/\1/p' "$work/$name.task.json")
}

"$bin/hetally-keytool" keygen --scheme paillier --out "$work/keys" >/dev/null 2>&1

# --- phase 1: the cost of metrics and TLS ----------------------------------
if ((skip_cost == 0)); then
  # A throw-away CA and a certificate for 127.0.0.1 that it signed (ECDSA
  # P-256, one day); the CA's key is deleted at once.
  (
    cd "$work"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -keyout ca.key -out ca.pem -days 1 -subj "/CN=hetally soak CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -keyout tls.key -out tls.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >tls.ext
    openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -out tls.crt -days 1 -extfile tls.ext 2>/dev/null
    rm -f ca.key ca.srl tls.csr tls.ext
    chmod 600 tls.key
  )
  declare -A rates=()
  for run in $(seq "$cost_runs"); do
    for config in plain metrics tls; do
      name=cost-$config-$run
      server_args=() client_args=()
      case $config in
        plain) server_args=(--no-metrics) ;;
        metrics) ;;
        tls) server_args=(--tls-cert "$work/tls.crt" --tls-key "$work/tls.key")
             client_args=(--ca-file "$work/ca.pem") ;;
      esac
      start_server "$name" --no-job-driver "${server_args[@]}"
      new_task "$name" 3600 "${client_args[@]}"
      scraper=
      if [[ $config != plain ]]; then
        # Prometheus-like scraping once a second while the uploads run.
        token=$(cat "$work/$name/admin.token")
        ( while sleep 1; do
            curl -s --cacert "$work/ca.pem" -H "Authorization: Bearer $token" "$url/metrics" >/dev/null || true
          done ) &
        scraper=$!
      fi
      now=$(date +%s)
      "$bin/hetally-client" "${client_args[@]}" simulate --server "$url" --task "$task" \
        --reports "$cost_reports" --concurrency "$concurrency" --time $((now - now % 3600)) \
        --truth-out "$work/$name.truth.json" --json >"$work/$name.sim.json"
      [[ -n $scraper ]] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
      stop_server
      r=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["uploads_per_second"])' "$work/$name.sim.json")
      rates[$config]+="$r "
      echo "   run $run $config: $r uploads/s" >&2
      rm -rf "${work:?}/$name"
    done
  done
  python3 - "${rates[plain]}" "${rates[metrics]}" "${rates[tls]}" <<'PY'
import statistics, sys
plain, metrics, tls = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mp, mm, mt = (statistics.median(x) for x in (plain, metrics, tls))
print(f"RESULT cost plain_median={mp:.0f} metrics_median={mm:.0f} tls_median={mt:.0f} "
      f"metrics_cost={100 * (1 - mm / mp):.1f}% tls_cost_over_metrics={100 * (1 - mt / mm):.1f}% "
      f"runs={len(plain)} plain={plain} metrics={metrics} tls={tls}")
PY
fi

# --- phase 2: the soak ------------------------------------------------------
echo "== soak: $minutes min, $per_interval reports every ${interval}s interval, GC every interval" >&2
start_server soak --gc-interval-secs "$interval"
soak_pid=$server_pid
new_task soak "$interval"
echo "seconds,db_bytes,rss_bytes,report_rows,released_intervals" >"$work/samples.csv"
released=0
t_start=$(date +%s)
(
  while sleep 10; do
    t=$(( $(date +%s) - t_start ))
    db=$(du -cb "$work"/soak/hetally.db* 2>/dev/null | tail -n1 | cut -f1)
    rss=$(awk '/VmRSS/ {print $2 * 1024}' "/proc/$soak_pid/status" 2>/dev/null || echo 0)
    rows=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1], timeout=5).execute("SELECT COUNT(*) FROM reports").fetchone()[0])' \
      "$work/soak/hetally.db" 2>/dev/null || echo -1)
    rel=$(cat "$work/released" 2>/dev/null || echo 0)
    echo "$t,$db,$rss,$rows,$rel" >>"$work/samples.csv"
  done
) &
sampler=$!
pids+=("$sampler")
deadline=$(( t_start + minutes * 60 ))
previous=
while (( $(date +%s) < deadline )); do
  now=$(date +%s)
  current=$(( now - now % interval ))
  if [[ -n $previous && $previous != "$current" ]]; then
    "$bin/hetally-client" collect --server "$url" --task "$task" --token-file "$work/soak.token" \
      --start "$previous" --duration "$interval" --out "$work/release.agg" --force >/dev/null
    "$bin/hetally-keytool" decrypt --key "$work/keys/collector.sk" "$work/release.agg" --format json \
      >"$work/release.json"
    python3 - "$work/truth-$previous.json" "$work/release.json" <<'PY'
import json, sys
truth, got = (json.load(open(p)) for p in sys.argv[1:3])
if truth["values"] != got["values"] or truth["report_count"] != got["report_count"]:
    sys.exit("soak.sh: a release does NOT equal the truth")
PY
    rm -f "$work/truth-$previous.json"
    released=$((released + 1))
    echo "$released" >"$work/released"
  fi
  if [[ ! -e $work/truth-$current.json ]]; then
    "$bin/hetally-client" simulate --server "$url" --task "$task" --reports "$per_interval" \
      --concurrency "$concurrency" --time "$current" --truth-out "$work/truth-$current.json" \
      --json >"$work/sim.json"
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$work/sim.json" >>"$work/soak-sim.jsonl"
    previous=$current
  fi
  sleep $(( current + interval - $(date +%s) + 1 > 0 ? current + interval - $(date +%s) + 1 : 1 ))
done
kill "$sampler" 2>/dev/null || true

python3 - "$work/samples.csv" "$work/soak.svg" "$released" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
t = [int(r["seconds"]) for r in rows]
db = [int(r["db_bytes"]) / 2**20 for r in rows]
rss = [int(r["rss_bytes"]) / 2**20 for r in rows]
third = len(rows) // 3
mid = slice(third, 2 * third)
last = slice(2 * third, len(rows))
def med(xs): return statistics.median(xs) if xs else float("nan")
print(f"RESULT soak samples={len(rows)} releases={sys.argv[3]} "
      f"db_mib_max={max(db):.1f} db_mib_mid_median={med(db[mid]):.1f} db_mib_last_median={med(db[last]):.1f} "
      f"rss_mib_max={max(rss):.1f} rss_mib_mid_median={med(rss[mid]):.1f} rss_mib_last_median={med(rss[last]):.1f}")
# A plain SVG: two series over time, each scaled to its own maximum.
W, H, P = 800, 360, 50
tmax = max(t) or 1
def path(ys, ymax):
    return " ".join(f"{P + (W - 2 * P) * x / tmax:.1f},{H - P - (H - 2 * P) * y / ymax:.1f}" for x, y in zip(t, ys))
ymax = max(max(db), max(rss)) * 1.1 or 1
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<line x1="{P}" y1="{H-P}" x2="{W-P}" y2="{H-P}" stroke="black"/>',
       f'<line x1="{P}" y1="{P}" x2="{P}" y2="{H-P}" stroke="black"/>',
       f'<text x="{W/2}" y="{H-15}" text-anchor="middle">minutes (0 to {tmax/60:.0f})</text>',
       f'<text x="{P}" y="{P-10}">MiB (0 to {ymax:.0f})</text>',
       f'<polyline fill="none" stroke="#c0392b" stroke-width="2" points="{path(db, ymax)}"/>',
       f'<polyline fill="none" stroke="#2471a3" stroke-width="2" points="{path(rss, ymax)}"/>',
       f'<text x="{W-P-200}" y="{P}" fill="#c0392b">database (file + WAL)</text>',
       f'<text x="{W-P-200}" y="{P+16}" fill="#2471a3">server RSS</text>',
       '</svg>']
open(sys.argv[2], "w").write("\n".join(svg))
PY
python3 -c 'import json,statistics,sys; r=[json.loads(l)["uploads_per_second"] for l in open(sys.argv[1])]; print("RESULT soak uploads_per_s_median=%.0f intervals=%d" % (statistics.median(r), len(r)))' "$work/soak-sim.jsonl"
