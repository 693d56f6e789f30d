#!/usr/bin/env bash
# The DAP-09 load benchmark: a leader and a helper `hetally-server` over
# loopback, from upload to collection, against the raw prio preparation of
# the same VDAF measured in the same run.
#
#   benches/dap-load.sh [--store sqlite|postgres] [--vdaf VDAF]...
#                       [--reports N] [--concurrency C] [--server-bin PATH]
#
# VDAFs: prio3count (40000 reports by default) and prio3histogram:1024
# (10000 by default) unless --vdaf is given (repeatable); --reports applies
# to every VDAF. --server-bin runs another hetally-server binary (to
# compare builds with the same client). For each VDAF:
# 1. starts two fresh `hetally-server`s, a leader and a helper, job drivers
#    on (SQLite in their own data directories, or two fresh PostgreSQL
#    databases `hetally_dap_<pid>_<role><n>` on 127.0.0.1:5432);
# 2. runs `dap-load` (benches/src/bin/dap_load.rs), which provisions a task
#    on both; shards and seals the reports (the client's work, timed
#    apart); measures on every core the raw prio preparation of the same
#    reports (both aggregators' preparation and aggregation, no HPKE, HTTP
#    or storage: the baseline) and the HPKE opening of both input shares;
#    uploads the reports to the leader with C requests in flight; collects
#    the batch with janus_collector (polling every 50 ms); and checks it
#    equals the truth;
# 3. stops both servers.
#
# Prints one `RESULT` line per VDAF: raw_prepare_per_s, hpke_open_per_s,
# prepare_plus_hpke_per_s (both together), client_shard_seal_per_s,
# upload_per_s, service_per_s (N over first upload to collection result),
# ratio (service / raw prepare) and ratio_to_prepare_plus_hpke. Data goes
# under a temporary directory that is removed at the end (KEEP=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."

store=sqlite reports= concurrency=64 vdafs=() server_bin=
while (($#)); do
  case $1 in
    --store) store=$2; shift 2 ;;
    --vdaf) vdafs+=("$2"); shift 2 ;;
    --reports) reports=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --server-bin) server_bin=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dap-load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $store in sqlite|postgres) ;; *) echo "dap-load.sh: --store is sqlite or postgres" >&2; exit 2 ;; esac
((${#vdafs[@]})) || vdafs=(prio3count prio3histogram:1024)

default_reports() {
  case $1 in
    prio3count) echo 40000 ;;
    *) echo 10000 ;;
  esac
}

# The servers and dap-load, all in release.
cargo build --release --quiet --workspace --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
server_bin=${server_bin:-$bin/hetally-server}
work=$(mktemp -d /tmp/hetally-dap-load.XXXXXX)
pids=() dbs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${dbs[@]}"; do
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  [[ ${KEEP:-0} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

# start_server NAME: starts a server with data in $work/NAME; sets $url.
start_server() {
  local name=$1
  local args=(--data-dir "$work/$name" --listen 127.0.0.1:0)
  if [[ $store == postgres ]]; then
    local db=hetally_dap_$$_$name
    psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    args+=(--database-url "postgres://postgres@127.0.0.1:5432/$db")
    # PostgreSQL needs a datastore key (sealing DAP task secrets).
    export HETALLY_DATASTORE_KEYS="${HETALLY_DATASTORE_KEYS:-$(head -c 32 /dev/urandom | basenc --base64url)}"
  fi
  "$server_bin" "${args[@]}" >"$work/$name.out" 2>>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 300); do
    grep -q "listening on" "$work/$name.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$work/$name.out" | head -n1)
  [[ -n $url ]] || { echo "dap-load.sh: $name did not start; see $work/$name.log" >&2; exit 1; }
}

stop_servers() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

results=()
i=0
for vdaf in "${vdafs[@]}"; do
  i=$((i + 1))
  n=${reports:-$(default_reports "$vdaf")}
  start_server "leader$i"; leader=$url
  start_server "helper$i"; helper=$url
  "$bin/dap-load" --leader "$leader" --helper "$helper" \
    --leader-admin-token-file "$work/leader$i/admin.token" \
    --helper-admin-token-file "$work/helper$i/admin.token" \
    --vdaf "$vdaf" --reports "$n" --concurrency "$concurrency" >"$work/dap-load$i.out"
  stop_servers
  results+=("$(sed -n "s/^RESULT /RESULT store=$store /p" "$work/dap-load$i.out")")
done
printf '%s\n' "${results[@]}"
