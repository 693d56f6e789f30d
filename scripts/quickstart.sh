#!/usr/bin/env bash
# hetally quickstart: the whole flow on this machine, on the embedded SQLite
# store. Builds the binaries, makes a collector key pair, starts a server,
# creates a histogram task, simulates 10,000 encrypted reports, collects the
# batch and decrypts it, then checks the result against the truth.
#
# Usage: scripts/quickstart.sh [REPORTS] [DP]
#   REPORTS  number of reports (default 10000)
#   DP       noise mechanism, e.g. laplace:1 (default none: exact sums)
# Everything is written under ./hetally-demo (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."

reports=${1:-10000}
dp=${2:-none}
demo=$PWD/hetally-demo

for tool in cargo cc make m4; do
  if ! command -v "$tool" >/dev/null; then
    echo "quickstart: '$tool' is missing. Install a Rust toolchain and: sudo apt-get install -y build-essential m4" >&2
    exit 1
  fi
done

echo "== building (release; the first build compiles GMP and takes a few minutes)"
cargo build --release --quiet --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

rm -rf "$demo"
mkdir -p "$demo"
echo "== collector key pair"
"$bin/hetally-keytool" keygen --scheme paillier --out "$demo/keys"

echo "== starting hetally-server"
"$bin/hetally-server" --data-dir "$demo/data" --listen 127.0.0.1:0 >"$demo/server.out" 2>"$demo/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$demo/server.out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$demo/server.out" | head -n1)
[[ -n "$url" ]] || { echo "quickstart: the server did not start; see $demo/server.log" >&2; exit 1; }
echo "   $url (log: $demo/server.log)"

echo "== creating a histogram:11 task (dp: $dp)"
budget=()
[[ "$dp" != none ]] && budget=(--budget 10)
"$bin/hetally-client" task create --server "$url" --admin-token-file "$demo/data/admin.token" \
  --public-key "$demo/keys/collector.pk" --measurement histogram:11 --min-batch-size 100 \
  --time-precision 60 --dp "$dp" "${budget[@]}" --token-out "$demo/collector.token" --json >"$demo/task.json"
task=$(sed -n 's/.*"task_id": "\([^"]*\)".*/\1/p' "$demo/task.json")
echo "   task $task"

now=$(date +%s)
start=$(( now - now % 60 ))
echo "== simulating $reports encrypted reports"
"$bin/hetally-client" simulate --server "$url" --task "$task" --reports "$reports" --time "$now" \
  --truth-out "$demo/truth.json"

echo "== collecting the batch [$start, $((start + 60)))"
"$bin/hetally-client" collect --server "$url" --task "$task" --token-file "$demo/collector.token" \
  --start "$start" --duration 60 --out "$demo/batch.agg"

echo "== decrypting offline with the collector's secret key"
"$bin/hetally-keytool" decrypt --key "$demo/keys/collector.sk" "$demo/batch.agg" --format table

"$bin/hetally-keytool" decrypt --key "$demo/keys/collector.sk" "$demo/batch.agg" --format json >"$demo/decrypted.json"
if [[ "$dp" == none ]]; then
  python3 - "$demo/truth.json" "$demo/decrypted.json" <<'PY' 2>/dev/null || echo "(python3 not found: compare $demo/truth.json yourself)"
import json, sys
truth, got = (json.load(open(p)) for p in sys.argv[1:3])
ok = truth["values"] == got["values"] and truth["report_count"] == got["report_count"]
print("== the decrypted aggregate equals the truth" if ok else "== MISMATCH with the truth!")
sys.exit(0 if ok else 1)
PY
fi
echo "== done; files in $demo"
