#!/usr/bin/env bash
# bench/run-e2e.sh — the end-to-end benchmark matrix (make bench-e2e).
#
#   ./bench/run-e2e.sh              full matrix (~40 min); writes bench/RESULTS.md
#   QUICK=1 ./bench/run-e2e.sh      2-minute smoke subset; report in bench/out/<run>/ only
#   REPORT_ONLY=bench/out/<run> ./bench/run-e2e.sh
#                                   compose that run's report again, measuring nothing
#   TARGET_URL=ws://127.0.0.1:9000/ws TARGET_NAME=other [TARGET_PID=1234] ./bench/run-e2e.sh
#                                   also measure a router you started yourself (same tool,
#                                   same run); TARGET_PID enables its RSS and CPU figures,
#                                   TARGET_AUTHID/TARGET_SECRET its authstorm row.
#
# Each target is started pinned to ROUTER_CPU (default 0) with `taskset`, fresh for every
# run; the load tool runs pinned to TOOL_CPU (default 1). Every configuration runs REPS
# times (3), the targets interleaved run by run; a run disturbed by other processes
# (other_cpu_pct > 25) is repeated, up to MAX_REPS runs (4). Raw RESULT lines, logs and the report go to bench/out/<run>/
# (gitignored). Other knobs: DUR (5s), WARMUP (1s), PROFILE (1 in full runs: syscall
# counts and perf profiles), QUIET_WAIT (10: seconds to wait for an idle machine before
# each run), PORT_BASE (18080), SECTIONS ("idle rpc pubsub churn authstorm mesh gateway profile":
# the parts to run; SECTIONS=mesh runs the mesh scenarios alone, each with its single-node
# baseline in the same run; gateway measures the HTTP gateway against bench/cmd/httpconst,
# a bare net/http handler; authstorm also measures OAuth2 token issuance, the tokens
# scenario, beside httpconst), EPOLL (1: the rpc, pubsub and profile sections also run each
# router with io_uring off, as targets edgewamp-epoll and wampfwd-epoll, interleaved with
# the default path: the send path comparison of issue 15; 0: the default path only).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
REPS=${REPS:-3}
MAX_REPS=${MAX_REPS:-4}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
ROUTER_CPU=${ROUTER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
PROFILE=${PROFILE:-1}
QUIET_WAIT=${QUIET_WAIT:-10}
PORT_BASE=${PORT_BASE:-18080}
EPOLL=${EPOLL:-1}
SRC=${SRC:-127.0.0.2-127.0.0.40}
SECTIONS=" ${SECTIONS:-idle rpc pubsub churn authstorm tls mesh gateway profile} "
want() { [[ $SECTIONS == *" $1 "* ]]; }
if [[ $QUICK == 1 ]]; then
  REPS=1 MAX_REPS=1 DUR=2s WARMUP=500ms PROFILE=0 QUIET_WAIT=3
fi

# write_report composes $OUT/RESULTS.md: wampbench's report of the run, the mesh
# section, and the hand-written files.
write_report() {
  "$WB" -report "$OUT" > "$OUT/RESULTS.md"
  if [[ -s $OUT/mesh/results.txt ]]; then
    {
      echo "## Mesh"
      echo
      echo "Three nodes meshed by NATS routes, **all pinned to CPU $MESH_CPUS** (the one node: CPU $ROUTER_CPU),"
      echo "against one node in the same run, interleaved. Cells read **mesh / edgewamp (one node)**; the ratio"
      echo "column is mesh ÷ one node, run by run. Mesh: the callers and the publisher join node A, the callee"
      echo "node B, the subscribers are spread over B and C; one node: every session on it. Targets (DESIGN §9,"
      echo "issue 11): RPC ≥ 0.50 of one node with p99 ≤ 2 ms; pubsub ≥ 0.50 of one node."
      echo
      "$WB" -report "$OUT/mesh" | awk '/^### RPC/{p=1} /^### Churn/{p=0} p' | sed 's/^### /#### /'
      if [[ -s $OUT/mesh/rss.txt ]]; then
        echo "#### Idle RSS at start"
        echo
        echo "| run | one node KiB | a node of the 3-node mesh KiB | difference MiB |"
        echo "|---|---|---|---|"
        awk '{for(i=1;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}; printf "| %s | %s | %s | %.1f |\n", v["rep"], v["single_kib"], v["mesh_node_kib"], (v["mesh_node_kib"]-v["single_kib"])/1024}' "$OUT/mesh/rss.txt"
        echo
      fi
      if [[ -s $OUT/mesh/faults.txt ]]; then
        echo "#### Faults on separate processes (cmd/edgewamp: TestMeshSIGKILLAndRestart, TestMeshBlackHoledProcess)"
        echo
        echo '```'
        cat "$OUT/mesh/faults.txt"
        echo '```'
        echo
      fi
    } >> "$OUT/RESULTS.md"
  fi
  # Hand-maintained sections go at the end: measurements of single changes
  # (bench/history.md), micro-benchmark figures and tuning notes
  # (bench/micro.md), the release footprint (bench/footprint.sh writes it).
  local f
  for f in bench/history.md bench/micro.md bench/footprint.md; do
    if [[ -f $f ]]; then
      { echo; cat "$f"; } >> "$OUT/RESULTS.md"
    fi
  done
}

# REPORT_ONLY=bench/out/<run>: compose that run's report again (after a run that
# stopped early, or after editing bench/history.md) and stop; nothing is measured.
if [[ -n ${REPORT_ONLY:-} ]]; then
  OUT=${REPORT_ONLY%/}
  BIN=bench/out/bin WB=bench/out/bin/wampbench
  MESH_CPUS=${MESH_CPUS:-$ROUTER_CPU}
  go build -o "$WB" ./bench/cmd/wampbench
  write_report
  echo "== wrote $OUT/RESULTS.md (copy it to bench/RESULTS.md if that run was a full matrix)" >&2
  exit 0
fi

RUN=$(date -u +%Y%m%d-%H%M%S)
OUT=bench/out/$RUN
mkdir -p "$OUT/logs"
ln -sfn "$RUN" bench/out/latest
BIN=bench/out/bin
mkdir -p "$BIN"
T0=$(date +%s)

say() { printf '%s\n' "$*" | tee -a "$OUT/log.txt" >&2; }

# ---------------------------------------------------------------- build
say "== build"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/edgewamp ./cmd/edgewamp
go build -o "$BIN/wampfwd" ./bench/cmd/wampfwd
go build -o "$BIN/wampbench" ./bench/cmd/wampbench
go build -o "$BIN/httpconst" ./bench/cmd/httpconst
WB=$BIN/wampbench
command -v taskset >/dev/null || { echo "run-e2e: taskset (util-linux) is required" >&2; exit 1; }
command -v openssl >/dev/null || { echo "run-e2e: openssl is required (the TLS listener's certificate)" >&2; exit 1; }
if [[ $PROFILE == 1 ]]; then
  if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_write -- true >/dev/null 2>&1; then
    CGO_ENABLED=0 go build -trimpath -o "$BIN/edgewamp-sym" ./cmd/edgewamp # unstripped, for perf
  else
    say "   perf with syscall tracepoints is not available: no profile"
    PROFILE=0
  fi
fi

# ---------------------------------------------------------------- limits
HARD=$(ulimit -Hn)
ulimit -n "$HARD" 2>/dev/null || true
SOFT=$(ulimit -n)
NCPU=$(nproc)
read -r PLO PHI < /proc/sys/net/ipv4/ip_local_port_range
NSRC=$(awk -F'[.-]' '{ if (NF==8) print $8-$4+1; else print 1 }' <<<"$SRC")
IDLE_MAX=$(( SOFT - 200 ))
(( IDLE_MAX > 19000 )) && IDLE_MAX=19000
say "== limits"
say "   open files per process: soft $SOFT, hard $HARD -> a router holds at most ~$((SOFT - 64 - 512)) sessions (it keeps 64 descriptors and its listen backlog in reserve);"
say "   the idle matrix stops at $IDLE_MAX; the tool spreads sessions over worker processes (9,000 each)"
say "   ephemeral ports $PLO-$PHI ($((PHI - PLO + 1)) per source address) x $NSRC source addresses ($SRC)"
say "   CPUs: $NCPU; router on CPU $ROUTER_CPU, load tool on CPU $TOOL_CPU"
(( NCPU < 2 )) && say "   WARNING: one CPU only: router and tool share it"
say "   somaxconn $(cat /proc/sys/net/core/somaxconn), tcp_max_syn_backlog $(cat /proc/sys/net/ipv4/tcp_max_syn_backlog)"

# ---------------------------------------------------------------- machine
{
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $NCPU CPUs ($(lscpu | sed -n 's/^Thread(s) per core: *//p') thread(s) per core)"
  echo "kernel: $(uname -sr)"
  echo "Go: $(go version | awk '{print $3}')"
  dirty=$(git status --porcelain --untracked-files=no -- cmd route loop proto client go.mod go.sum | awk '{print $2}' | tr '\n' ' ')
  echo "commit: $(git rev-parse --short HEAD)${dirty:+ (built with uncommitted changes to: $dirty)}"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "pinning: router on CPU $ROUTER_CPU, load tool on CPU $TOOL_CPU (taskset)"
  echo "limits: open files $SOFT (hard $HARD), ephemeral ports $PLO-$PHI, $NSRC source addresses"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "runs: $REPS per configuration (up to $MAX_REPS when disturbed), $DUR measured after $WARMUP warm-up$([[ $QUICK == 1 ]] && echo ', QUICK smoke subset')"
} > "$OUT/machine.txt"

# ---------------------------------------------------------------- targets
EW_PORT=$PORT_BASE
FWD_PORT=$((PORT_BASE + 1))
GW_PORT=$((PORT_BASE + 2))
HC_PORT=$((PORT_BASE + 3))
EWE_PORT=$((PORT_BASE + 4))
FWDE_PORT=$((PORT_BASE + 5))
GWE_PORT=$((PORT_BASE + 6))
TLS_PORT=$((PORT_BASE + 7))
TLSE_PORT=$((PORT_BASE + 8))
# The configurations and keys below hold secrets: readable by this user
# only, as the router asks of them (it warns of one every local user can
# read).
umask 077
bin/edgewamp oauth keygen > "$OUT/oauth-key.pem"
# A confidential OAuth2 client for the tokens scenario (client_credentials).
bin/edgewamp oauth secret > "$OUT/oauth-client.txt"
TOKEN_SECRET=$(sed -n 's/^client_secret: //p' "$OUT/oauth-client.txt")
TOKEN_HASH=$(sed -n 's/^secret: //p' "$OUT/oauth-client.txt")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$OUT/tls-key.pem" -out "$OUT/tls-cert.pem" 2>/dev/null
cat > "$OUT/edgewamp.yaml" <<EOF
# The embedded default configuration plus one WAMP-CRA user and OAuth2
# access tokens as WAMP tickets (signed with a key file the load tool mints
# tokens with) for authstorm, a client_credentials client for the tokens
# scenario, the HTTP gateway with room for the SSE fan-out's streams from
# one address, and a TLS listener (self-signed P-256) for the tls section,
# with no bound on TLS handshakes or connections per address (the tool's
# thousands of TLS clients all come from 127.0.0.1, its idle sessions from
# the few addresses of SRC).
log: {level: warn}
limits: {max_tls_handshakes_per_address: 0, max_connections_per_address: 0}
listeners:
  - address: 127.0.0.1:$EW_PORT
  - address: 127.0.0.1:$TLS_PORT
    tls: {cert: $OUT/tls-cert.pem, key: $OUT/tls-key.pem}
oauth:
  issuer: http://127.0.0.1:8081
  key_files: [$OUT/oauth-key.pem]
realms:
  - name: realm1
    anonymous: true
    authmethods: [anonymous, wampcra, ticket]
    users:
      - {authid: bench, role: user, secret: bench-secret}
    oauth:
      clients:
        - {id: bench-svc, secret: $TOKEN_HASH, roles: [service], grants: [client_credentials]}
gateway:
  listen: 127.0.0.1:$GW_PORT
  limits: {max_streams_per_client: 5000}
EOF
bin/edgewamp check-config "$OUT/edgewamp.yaml" >/dev/null
# The mesh's nodes: the same configuration without the TLS listener, which
# three nodes on one host cannot all bind (each node's plaintext listener
# comes from -listen).
sed -e "/address: 127.0.0.1:$TLS_PORT/,+1d" "$OUT/edgewamp.yaml" > "$OUT/edgewamp-mesh.yaml"
bin/edgewamp check-config "$OUT/edgewamp-mesh.yaml" >/dev/null
# The write(2) twin: the same configuration with io_uring off.
sed -e "s/127.0.0.1:$EW_PORT/127.0.0.1:$EWE_PORT/" -e "s/127.0.0.1:$GW_PORT/127.0.0.1:$GWE_PORT/" -e "s/127.0.0.1:$TLS_PORT/127.0.0.1:$TLSE_PORT/" "$OUT/edgewamp.yaml" > "$OUT/edgewamp-epoll.yaml"
printf 'tuning:\n  io_uring: off\n' >> "$OUT/edgewamp-epoll.yaml"
bin/edgewamp check-config "$OUT/edgewamp-epoll.yaml" >/dev/null
umask 022

TARGETS=(edgewamp wampfwd)
declare -A URL=([edgewamp]="ws://127.0.0.1:$EW_PORT/ws" [wampfwd]="ws://127.0.0.1:$FWD_PORT/ws"
  [edgewamp-epoll]="ws://127.0.0.1:$EWE_PORT/ws" [wampfwd-epoll]="ws://127.0.0.1:$FWDE_PORT/ws"
  [edgewamp-tls]="wss://127.0.0.1:$TLS_PORT/ws" [edgewamp-tls-epoll]="wss://127.0.0.1:$TLSE_PORT/ws")
declare -A RSURL=([edgewamp]="rs://127.0.0.1:$EW_PORT" [wampfwd]="rs://127.0.0.1:$FWD_PORT"
  [edgewamp-epoll]="rs://127.0.0.1:$EWE_PORT" [wampfwd-epoll]="rs://127.0.0.1:$FWDE_PORT"
  [edgewamp-tls]="rss://127.0.0.1:$TLS_PORT" [edgewamp-tls-epoll]="rss://127.0.0.1:$TLSE_PORT")
declare -A CURL=() SURLS=() # mesh target: where its callees and subscribers join (mesh section)
# The gateway section: edgewamp's HTTP gateway (the tool registers the WAMP
# callee) and httpconst, the bare net/http ceiling.
declare -A HTTPURL=([edgewamp]="http://127.0.0.1:$GW_PORT" [httpconst]="http://127.0.0.1:$HC_PORT")
declare -A CALLEEURL=([edgewamp]="ws://127.0.0.1:$EW_PORT/ws" [httpconst]="")
if [[ -n ${TARGET_URL:-} ]]; then
  X=${TARGET_NAME:-other}
  TARGETS+=("$X")
  URL[$X]=$TARGET_URL
  RSURL[$X]=${TARGET_RS_URL:-}
fi
echo "targets: ${TARGETS[*]} (edgewamp: bin/edgewamp run -config edgewamp.yaml; wampfwd: bench/cmd/wampfwd, flush adaptive; tls section: edgewamp-tls, the same edgewamp over its TLS listener, and edgewamp-tls-epoll, the write(2) twin over its TLS listener)" >> "$OUT/machine.txt"
if [[ $EPOLL == 1 ]]; then
  echo "send paths: edgewamp and wampfwd on their default (tuning.io_uring: auto, -io-uring auto); edgewamp-epoll and wampfwd-epoll with io_uring off (write(2)), in the rpc, pubsub and profile sections, interleaved run by run" >> "$OUT/machine.txt"
fi
{
  echo "# targets, started fresh for every run:"
  echo "taskset -c $ROUTER_CPU bin/edgewamp run -config $OUT/edgewamp.yaml   # default config + a WAMP-CRA user (below)"
  echo "taskset -c $ROUTER_CPU $BIN/wampfwd -listen 127.0.0.1:$FWD_PORT"
  echo "taskset -c $ROUTER_CPU $BIN/httpconst -listen 127.0.0.1:$HC_PORT   # gateway section, and the tokens scenario (authstorm section)"
  if [[ $EPOLL == 1 ]]; then
    echo "taskset -c $ROUTER_CPU bin/edgewamp run -config $OUT/edgewamp-epoll.yaml   # the same with tuning.io_uring: off"
    echo "taskset -c $ROUTER_CPU $BIN/wampfwd -listen 127.0.0.1:$FWDE_PORT -io-uring off"
  fi
  [[ -n ${TARGET_URL:-} ]] && echo "# ${TARGET_NAME:-other}: $TARGET_URL (started by the caller${TARGET_PID:+, pid $TARGET_PID})"
  echo "# load tool, one line per configuration and target (\$PID: the target's process):"
} > "$OUT/commands.txt"

PID=""
START_BIN=bin/edgewamp
RESULTS_FILE=$OUT/results.txt
start_target() { # name run-id
  local name=$1 id=$2 port
  PID=""
  case $name in
    edgewamp|edgewamp-tls) port=$EW_PORT
      taskset -c "$ROUTER_CPU" "$START_BIN" run -config "$OUT/edgewamp.yaml" >"$OUT/logs/$id.log" 2>&1 &
      PID=$! ;;
    wampfwd) port=$FWD_PORT
      taskset -c "$ROUTER_CPU" "$BIN/wampfwd" -listen "127.0.0.1:$FWD_PORT" >"$OUT/logs/$id.log" 2>&1 &
      PID=$! ;;
    mesh) start_mesh "$id"; return ;;
    httpconst) port=$HC_PORT
      taskset -c "$ROUTER_CPU" "$BIN/httpconst" -listen "127.0.0.1:$HC_PORT" >"$OUT/logs/$id.log" 2>&1 &
      PID=$! ;;
    edgewamp-epoll|edgewamp-tls-epoll) port=$EWE_PORT
      taskset -c "$ROUTER_CPU" "$START_BIN" run -config "$OUT/edgewamp-epoll.yaml" >"$OUT/logs/$id.log" 2>&1 &
      PID=$! ;;
    wampfwd-epoll) port=$FWDE_PORT
      taskset -c "$ROUTER_CPU" "$BIN/wampfwd" -listen "127.0.0.1:$FWDE_PORT" -io-uring off >"$OUT/logs/$id.log" 2>&1 &
      PID=$! ;;
    *) PID=${TARGET_PID:-}; return 0 ;;
  esac
  for _ in $(seq 100); do
    # edgewamp's gateway listens just after its WAMP port.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { [[ $name != edgewamp && $name != edgewamp-tls ]] || (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null; }; then
      note_path "$name" "$id"; return 0
    fi
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  say "   !! $name did not start (see $OUT/logs/$id.log)"
  echo "$name failed to start for $id: $(tail -3 "$OUT/logs/$id.log")" >> "$OUT/events.txt"
  return 1
}

# note_path records, once per target, the send path it runs on: the
# io_uring rings it holds open (/proc/PID/fd), so that a default-path target
# that fell back to write(2) shows.
declare -A PATHNOTED
note_path() { # name run-id
  local name=$1 n
  [[ -n ${PATHNOTED[$name]:-} || -z $PID ]] && return 0
  PATHNOTED[$name]=1
  n=$(ls -l "/proc/$PID/fd" 2>/dev/null | grep -c 'io_uring' || true)
  if (( n > 0 )); then
    echo "send path of $name: io_uring ($n ring(s) open)" >> "$OUT/machine.txt"
  else
    echo "send path of $name: write(2) (no io_uring ring open)" >> "$OUT/machine.txt"
  fi
}

stop_target() { # name run-id
  local name=$1 id=$2
  if [[ $name == mesh ]]; then stop_mesh "$id"; return 0; fi
  [[ $name == edgewamp || $name == wampfwd || $name == httpconst || $name == edgewamp-epoll || $name == wampfwd-epoll || $name == edgewamp-tls || $name == edgewamp-tls-epoll ]] || return 0
  [[ -n $PID ]] || return 0
  if ! kill -0 "$PID" 2>/dev/null; then
    wait "$PID" 2>/dev/null; local rc=$?
    say "   !! $name exited during $id (status $rc)"
    echo "$name exited during $id with status $rc; log tail:" >> "$OUT/events.txt"
    tail -20 "$OUT/logs/$id.log" | sed 's/^/    /' >> "$OUT/events.txt"
    return 0
  fi
  kill -TERM "$PID"
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if grep -qiE 'panic|fatal|level=ERROR|data race' "$OUT/logs/$id.log"; then
    echo "$name logged errors during $id:" >> "$OUT/events.txt"
    grep -iE 'panic|fatal|level=ERROR|data race' "$OUT/logs/$id.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /' >> "$OUT/events.txt"
  fi
  local warns
  warns=$(grep -c 'level=WARN' "$OUT/logs/$id.log" || true)
  if (( warns > 0 )); then
    echo "$name logged $warns warnings during $id, e.g.: $(grep 'level=WARN' "$OUT/logs/$id.log" | head -1 | cut -c1-300)" >> "$OUT/events.txt"
  fi
}

# busy_pct: the machine's non-idle CPU over half a second, in % of one CPU.
busy_pct() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  sleep 0.5
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); t=(y[1]-x[1])+(y[2]-x[2]); n='"$NCPU"'; if (t<=0) print 0; else printf "%d\n", 100*n*(y[1]-x[1])/t}'
}

wait_quiet() {
  local i busy
  for ((i = 0; i < QUIET_WAIT * 2; i++)); do
    busy=$(busy_pct)
    (( busy < 15 )) && return 0
  done
  say "   (machine still busy: ${busy}% of a CPU in use by others; running anyway)"
}

declare -A LOGGED
# bench cfg-id target rep args...: one run; appends its RESULT line.
bench() {
  local cfg=$1 target=$2 rep=$3; shift 3
  local id="$cfg-$target-$rep" line pidarg=()
  wait_quiet
  start_target "$target" "$id" || { LAST="RESULT scenario=none target=$target error=did_not_start"; echo "cfg=$cfg rep=$rep $LAST" >> "$RESULTS_FILE"; return 0; }
  [[ -n $PID ]] && pidarg=(-router-pid "$PID")
  if [[ $target == mesh ]]; then # the other nodes' CPU is the mesh's, not noise
    pidarg+=(-mesh-pids "${MESH_PIDS[1]},${MESH_PIDS[2]}")
  fi
  local cmd=(taskset -c "$TOOL_CPU" "$WB" -q -label "$target" "${pidarg[@]}" -warmup "$WARMUP" -duration "$DUR" "$@")
  if [[ -z ${LOGGED[$cfg-$target]:-} ]]; then
    LOGGED[$cfg-$target]=1
    echo "${cmd[*]}" | sed -E 's/-router-pid [0-9]+/-router-pid $PID/; s/-mesh-pids [0-9,]+/-mesh-pids $OTHER_NODES/' >> "$OUT/commands.txt"
  fi
  line=$("${cmd[@]}" 2>>"$OUT/logs/$id.tool.log" | grep '^RESULT' | tail -1) || true
  [[ -n $line ]] || line="RESULT scenario=none target=$target error=no_RESULT_line_(see_logs/$id.tool.log)"
  stop_target "$target" "$id"
  echo "cfg=$cfg rep=$rep $line" >> "$RESULTS_FILE"
  LAST=$line
  printf '   %-28s %-9s #%d %s\n' "$cfg" "$target" "$rep" \
    "$(tr ' ' '\n' <<<"$line" | grep -E '^(calls_per_s|events_per_s|kib_per_session|joins_per_s|storm_ms|p99_us|delivery_ratio|errors|lost|failed|failures|tool_cpu_pct|router_cpu_pct|mesh_cpu_pct|other_cpu_pct|error)=' | tr '\n' ' ')" | tee -a "$OUT/log.txt" >&2
}

# config cfg-id targets args...: REPS clean runs per target (up to MAX_REPS), the
# targets interleaved run by run so that they see the same machine conditions.
config() {
  local cfg=$1 targets=$2; shift 2
  local t rep other urlargs active
  declare -A clean=() done=()
  for ((rep = 1; rep <= MAX_REPS; rep++)); do
    active=0
    for t in $targets; do
      [[ " $* " == *@RSURL@* && -z ${RSURL[$t]:-} ]] && continue # no RawSocket URL for this target
      (( ${clean[$t]:-0} >= REPS )) && continue
      [[ -n ${done[$t]:-} ]] && continue
      active=1
      urlargs=("${@//@URL@/${URL[$t]:-}}")
      urlargs=("${urlargs[@]//@RSURL@/${RSURL[$t]:-}}")
      urlargs=("${urlargs[@]//@CURL@/${CURL[$t]:-${URL[$t]:-}}}")
      urlargs=("${urlargs[@]//@SURLS@/${SURLS[$t]:-${URL[$t]:-}}}")
      urlargs=("${urlargs[@]//@HTTPURL@/${HTTPURL[$t]:-}}")
      urlargs=("${urlargs[@]//@CALLEEURL@/${CALLEEURL[$t]:-}}")
      bench "$cfg" "$t" "$rep" "${urlargs[@]}"
      other=$(grep -oE 'other_cpu_pct=[0-9.]+' <<<"$LAST" | cut -d= -f2 || true)
      if [[ -z $other ]] || awk -v o="$other" 'BEGIN{exit !(o <= 25)}'; then clean[$t]=$(( ${clean[$t]:-0} + 1 )); fi
      if (( rep >= REPS )) && [[ $LAST == *error=* ]]; then done[$t]=1; fi
    done
    (( active )) || break
  done
}

ALL="${TARGETS[*]}"
# The rpc and pubsub sections also run the write(2) twins, interleaved.
AB="$ALL"
[[ $EPOLL == 1 ]] && AB="$ALL edgewamp-epoll wampfwd-epoll"
IDLE_SIZES="5000 10000 $IDLE_MAX"
[[ $QUICK == 1 ]] && IDLE_SIZES="5000"

if want idle; then
say "== idle (router RSS per session)"
for n in $IDLE_SIZES; do
  (( n <= IDLE_MAX )) || continue
  config "idle-ws-$n" "$ALL" -scenario idle -url @URL@ -sessions "$n" -src "$SRC"
done
[[ $QUICK == 1 ]] || config "idle-rs-$IDLE_MAX" "$ALL" -scenario idle -url @RSURL@ -ser msgpack -sessions "$IDLE_MAX" -src "$SRC"
fi

if want rpc; then
say "== rpc"
if [[ $QUICK == 1 ]]; then
  config rpc-ws-msgpack-c16-p64 "$AB" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
else
  for p in 64 4096; do
    for c in 1 16 128; do
      config "rpc-ws-msgpack-c$c-p$p" "$AB" -scenario rpc -url @URL@ -ser msgpack -callers "$c" -payload "$p"
    done
  done
  config rpc-ws-json-c16-p64 "$AB" -scenario rpc -url @URL@ -ser json -callers 16 -payload 64
  config rpc-rs-msgpack-c16-p64 "$AB" -scenario rpc -url @RSURL@ -ser msgpack -callers 16 -payload 64
  # 128 callers once more with the tool's io_uring driver: with gnet's client the tool can
  # saturate its CPU before a router on io_uring does (issue 15; bench/README.md).
  config rpc-ws-msgpack-c128-p64-uring "$AB" -scenario rpc -url @URL@ -ser msgpack -callers 128 -payload 64 -driver uring
fi
fi

if want pubsub; then
say "== pubsub"
SUBS="100 1000"
[[ $QUICK == 1 ]] && SUBS="100"
for s in $SUBS; do
  config "pubsub-ws-s$s-sat" "$AB" -scenario pubsub -url @URL@ -ser msgpack -subscribers "$s" -payload 64
  config "pubsub-ws-s$s-rate100k" "$AB" -scenario pubsub -url @URL@ -ser msgpack -subscribers "$s" -payload 64 -event-rate 100000
done
# The fixed rate once more with the tool's io_uring driver: with gnet's client the tool's
# read(2) per subscriber bounds the p99 of every target (bench/README.md, "-driver uring").
if [[ $QUICK != 1 ]]; then
  config "pubsub-ws-s1000-rate100k-uring" "$AB" -scenario pubsub -url @URL@ -ser msgpack -subscribers 1000 -payload 64 -event-rate 100000 -driver uring
fi
fi

if want churn; then
say "== churn"
config churn-ws "$ALL" -scenario churn -url @URL@ -ser msgpack -churn-rate 6000 -workers 64 -src "$SRC"
fi

if want authstorm; then
say "== authstorm (wampfwd does not authenticate: it is the control, the same connection storm without authentication)"
STORM_TARGETS="edgewamp wampfwd"
[[ -n ${TARGET_AUTHID:-} && -n ${TARGET_URL:-} ]] && STORM_TARGETS+=" ${TARGET_NAME:-other}"
config authstorm-ws "$STORM_TARGETS" -scenario authstorm -url @URL@ -ser msgpack -storm 1000 -authid "${TARGET_AUTHID:-bench}" -secret "${TARGET_SECRET:-bench-secret}"
# The same storm with OAuth2 access tokens as WAMP tickets (what a fleet of
# devices does after the device flow): 1,000 distinct tokens (each a
# signature check, on the router's auth worker pool) and one token shared by
# all (the verified-token cache). Minted by the load tool with the router's
# key and issuer, valid for an hour.
"$WB" -mint-jwt 1000 -jwt-key "$OUT/oauth-key.pem" > "$OUT/jwt-1000.txt"
"$WB" -mint-jwt 1 -jwt-key "$OUT/oauth-key.pem" > "$OUT/jwt-1.txt"
config authstorm-jwt-ws "edgewamp wampfwd" -scenario authstorm -url @URL@ -ser msgpack -storm 1000 -ticket-file "$OUT/jwt-1000.txt"
config authstorm-jwt1-ws "edgewamp wampfwd" -scenario authstorm -url @URL@ -ser msgpack -storm 1000 -ticket-file "$OUT/jwt-1.txt"
# OAuth2 token issuance on the gateway (client_credentials; the client's
# secret verified once, then from the server's cache), one WAMP caller
# measured meanwhile; httpconst, a bare net/http handler, is the HTTP
# ceiling of the same run.
config tokens-cc-c16 "edgewamp httpconst" -scenario tokens -url @HTTPURL@ -callee-url @CALLEEURL@ -callers 16 -client-id bench-svc -client-secret "$TOKEN_SECRET"
fi

if want tls; then
say "== tls (edgewamp over its TLS listener beside its plaintext one, same process, interleaved)"
TLS_IDLE="5000"
[[ $QUICK == 1 ]] || TLS_IDLE="5000 $IDLE_MAX"
for n in $TLS_IDLE; do
  config "tls-idle-rs-$n" "edgewamp edgewamp-tls" -scenario idle -url @RSURL@ -ser msgpack -sessions "$n" -src "$SRC"
done
# RPC over TLS on both send paths: the default (io_uring where available)
# and, with EPOLL=1, the write(2) twin, each beside its own plaintext.
TLS_AB="edgewamp edgewamp-tls"
[[ $EPOLL == 1 ]] && TLS_AB="$TLS_AB edgewamp-epoll edgewamp-tls-epoll"
config tls-rpc-rs-msgpack-c16-p64 "$TLS_AB" -scenario rpc -url @RSURL@ -ser msgpack -callers 16 -payload 64
config tls-rpc-ws-msgpack-c16-p64 "$TLS_AB" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
if [[ $QUICK != 1 ]]; then
  config tls-rpc-ws-msgpack-c1-p64 "edgewamp edgewamp-tls" -scenario rpc -url @URL@ -ser msgpack -callers 1 -payload 64
  config tls-rpc-ws-msgpack-c16-p4096 "edgewamp edgewamp-tls" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 4096
fi
fi

# ---------------------------------------------------------------- mesh
# Three edgewamp nodes meshed by NATS routes (-cluster-listen/-cluster-routes), all pinned
# to ROUTER_CPU: the mesh gets the single router's CPU budget. Target "mesh": the load
# tool's callers and publisher join node A; the callee joins node B (@CURL@), the
# subscribers spread over B and C (@SURLS@). Its baseline, the single node ("edgewamp"),
# runs interleaved in the same configurations, with every session on its one node.
# MESH_CPUS (default ROUTER_CPU) pins the mesh nodes elsewhere, e.g. MESH_CPUS=0-1.
MESH_CPUS=${MESH_CPUS:-$ROUTER_CPU}
MESH_PORT=$((PORT_BASE + 10))
MESH_CL=$((PORT_BASE + 20))
MESH_PIDS=()
mesh_routes() { echo "nats://127.0.0.1:$MESH_CL,nats://127.0.0.1:$((MESH_CL + 1)),nats://127.0.0.1:$((MESH_CL + 2))"; }
URL[mesh]="ws://127.0.0.1:$MESH_PORT/ws"
CURL[mesh]="ws://127.0.0.1:$((MESH_PORT + 1))/ws"
SURLS[mesh]="ws://127.0.0.1:$((MESH_PORT + 1))/ws,ws://127.0.0.1:$((MESH_PORT + 2))/ws"
start_mesh() { # run-id: starts nodes n0, n1, n2; PID is n0's (the loaded one)
  local id=$1 i joined n
  MESH_PIDS=()
  for i in 0 1 2; do
    taskset -c "$MESH_CPUS" "$START_BIN" run -config "$OUT/edgewamp-mesh.yaml" -log-level info -listen "127.0.0.1:$((MESH_PORT + i))" \
      -gateway-listen off -node "n$i" -cluster-listen "127.0.0.1:$((MESH_CL + i))" -cluster-routes "$(mesh_routes)" >"$OUT/logs/$id.n$i.log" 2>&1 &
    MESH_PIDS+=($!)
  done
  PID=${MESH_PIDS[0]}
  for _ in $(seq 300); do
    joined=0
    for i in 0 1 2; do
      # A log not created yet counts 0 (an empty count would end the script, nodes running).
      n=$(grep -c 'mesh: node joined' "$OUT/logs/$id.n$i.log" 2>/dev/null) || true
      joined=$(( joined + ${n:-0} ))
    done
    (( joined >= 6 )) && { sleep 0.5; return 0; }
    sleep 0.05
  done
  say "   !! the mesh did not form (see $OUT/logs/$id.n*.log)"
  stop_mesh "$id"
  return 1
}
stop_mesh() { # run-id
  local id=$1 p
  for p in "${MESH_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${MESH_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if grep -qiE 'panic|fatal|level=ERROR|data race' "$OUT"/logs/"$id".n*.log; then
    echo "mesh logged errors during $id:" >> "$OUT/events.txt"
    grep -hiE 'panic|fatal|level=ERROR|data race' "$OUT"/logs/"$id".n*.log | sort | uniq -c | sort -rn | head -5 | sed 's/^/    /' >> "$OUT/events.txt"
  fi
  MESH_PIDS=()
}

if want mesh; then
  say "== mesh (3 nodes, NATS routes, on CPU $MESH_CPUS; the baseline: one node on CPU $ROUTER_CPU, same run)"
  mkdir -p "$OUT/mesh"
  cp "$OUT/machine.txt" "$OUT/mesh/machine.txt"
  {
    echo "# mesh target: three nodes, started fresh for every run (i = 0, 1, 2):"
    echo "taskset -c $MESH_CPUS bin/edgewamp run -config $OUT/edgewamp-mesh.yaml -log-level info -listen 127.0.0.1:\$(($MESH_PORT+i)) -node n\$i -cluster-listen 127.0.0.1:\$(($MESH_CL+i)) -cluster-routes $(mesh_routes)"
  } >> "$OUT/commands.txt"
  # Their RESULT lines go to mesh/results.txt: a report of their own, where the ratio
  # column reads mesh ÷ one node.
  RESULTS_FILE=$OUT/mesh/results.txt
  config mesh-rpc-ws-msgpack-c16-p64 "mesh edgewamp" -scenario rpc -url @URL@ -callee-url @CURL@ -ser msgpack -callers 16 -payload 64
  config mesh-pubsub-ws-s1000-sat "mesh edgewamp" -scenario pubsub -url @URL@ -sub-urls @SURLS@ -ser msgpack -subscribers 1000 -payload 64
  RESULTS_FILE=$OUT/results.txt

  # Idle RSS at start: one node, and a node of a 3-node mesh (JetStream included).
  say "   idle RSS at start"
  for rep in $(seq "$REPS"); do
    taskset -c "$ROUTER_CPU" "$START_BIN" run -config "$OUT/edgewamp-mesh.yaml" >"$OUT/logs/rss-single-$rep.log" 2>&1 &
    sp=$!
    sleep 3
    single=$(awk '/VmRSS/{print $2}' "/proc/$sp/status")
    kill -TERM "$sp"; wait "$sp" 2>/dev/null || true
    start_mesh "rss-mesh-$rep" || continue
    sleep 2.5
    meshrss=$(awk '/VmRSS/{print $2}' "/proc/${MESH_PIDS[0]}/status")
    stop_mesh "rss-mesh-$rep"
    echo "rep=$rep single_kib=$single mesh_node_kib=$meshrss" >> "$OUT/mesh/rss.txt"
    say "   rep $rep: one node $single KiB, a mesh node $meshrss KiB"
  done

  # Fault timings: SIGKILL, restart and a black hole, on separate processes (the
  # process tests of cmd/edgewamp print what they measure).
  say "   fault timings: go test -run 'TestMeshSIGKILLAndRestart|TestMeshBlackHoledProcess' ./cmd/edgewamp"
  for rep in $(seq "$REPS"); do
    go test -count=1 -run 'TestMeshSIGKILLAndRestart|TestMeshBlackHoledProcess' -v ./cmd/edgewamp > "$OUT/logs/mesh-fault-$rep.log" 2>&1 ||
      say "   !! fault tests failed (rep $rep; see logs/mesh-fault-$rep.log)"
    grep -hE 'SIGKILL:|restart:|black hole:' "$OUT/logs/mesh-fault-$rep.log" | sed -E "s/^ *mesh_fault_test.go:[0-9]+: /rep=$rep /" >> "$OUT/mesh/faults.txt" || true
  done
  say "   $(cat "$OUT/mesh/faults.txt" 2>/dev/null | tr '\n' ';')"
fi

if want gateway; then
say "== gateway (HTTP: edgewamp's gateway and httpconst, a bare net/http handler, side by side)"
config gateway-call-c16-p64 "edgewamp httpconst" -scenario httpcall -url @HTTPURL@ -callee-url @CALLEEURL@ -callers 16 -payload 64
SSE_RATES="20 100"
[[ $QUICK == 1 ]] && SSE_RATES="20"
for r in $SSE_RATES; do
  config "gateway-sse-s1000-r$r" "edgewamp" -scenario sse -url @HTTPURL@ -subscribers 1000 -rate "$r" -payload 64
done
fi

# ---------------------------------------------------------------- profile
if [[ $PROFILE == 1 ]] && want profile; then
  say "== profile (syscalls per message and perf samples; not part of the medians)"
  EVENTS=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep
  prof() { # name target figure-key unit args...
    local name=$1 target=$2 key=$3 unit=$4; shift 4
    local id rate rcpu tpid
    id=$(tr -c 'A-Za-z0-9.+\n-' '_' <<<"profile-$name-$target")
    START_BIN=$BIN/edgewamp-sym
    wait_quiet
    start_target "$target" "$id" || return 0
    taskset -c "$TOOL_CPU" "$WB" -q -label "$target" -router-pid "$PID" -warmup 1s -duration 6s "${@//@URL@/${URL[$target]}}" > "$OUT/logs/$id.result" 2>&1 &
    tpid=$!
    sleep 2
    perf stat -x, -e "$EVENTS" -p "$PID" -- sleep 2 2> "$OUT/logs/$id.router.stat" >/dev/null || true
    perf stat -x, -e "$EVENTS" -p "$tpid" -- sleep 2 2> "$OUT/logs/$id.tool.stat" >/dev/null || true
    perf record -q -F 997 -p "$PID" -o "$OUT/logs/$id.router.perf" -- sleep 1.5 >/dev/null 2>&1 || true
    wait "$tpid" || true
    stop_target "$target" "$id"
    START_BIN=bin/edgewamp
    rate=$(tr ' ' '\n' < "$OUT/logs/$id.result" | grep -E "^$key=" | cut -d= -f2)
    rcpu=$(tr ' ' '\n' < "$OUT/logs/$id.result" | grep -E "^router_cpu_pct=" | cut -d= -f2)
    {
      echo "== $target, $name: $(tr ' ' '\n' < "$OUT/logs/$id.result" | grep -E "^($key|p50_us|p99_us|tool_cpu_pct|router_cpu_pct|other_cpu_pct)=" | tr '\n' ' ')"
      awk -v c="${rcpu:-0}" -v r="${rate:-0}" -v u="$unit" 'BEGIN { if (r > 0) printf "   router CPU per %s: %.2f µs\n", u, c * 1e4 / r }'
      for side in router tool; do
        printf '   %s syscalls per %s:' "$side" "$unit"
        awk -F, -v r="${rate:-0}" '$1 ~ /^[0-9]+$/ && $1 > 0 { n=$3; sub("syscalls:sys_enter_","",n); if (r > 0) printf " %s %.3f", n, $1/2/r }' "$OUT/logs/$id.$side.stat"
        echo
      done
      printf '   router CPU by place (perf):'
      perf report -i "$OUT/logs/$id.router.perf" --stdio --no-children --sort dso 2>/dev/null \
        | awk '/^ +[0-9]/ { printf " %s %s", $2, $1 }' || true
      echo
      echo "   router CPU profile (perf, top symbols):"
      perf report -i "$OUT/logs/$id.router.perf" --stdio --no-children --sort sym --percent-limit 2.5 2>/dev/null \
        | grep -E '^ +[0-9]' | head -14 | sed 's/^/     /' || true # an empty profile must not end the matrix (set -e)
    } >> "$OUT/profile.txt"
  }
  PROF_TARGETS="edgewamp wampfwd"
  [[ $EPOLL == 1 ]] && PROF_TARGETS="edgewamp edgewamp-epoll wampfwd wampfwd-epoll"
  for t in $PROF_TARGETS; do
    prof "rpc ws+msgpack 16 callers 64 B" "$t" calls_per_s call -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
    prof "pubsub ws+msgpack 1 -> 1000 saturation 64 B" "$t" events_per_s event -scenario pubsub -url @URL@ -ser msgpack -subscribers 1000 -payload 64
    prof "pubsub ws+msgpack 1 -> 1000 at 100,000 events/s 64 B" "$t" events_per_s event -scenario pubsub -url @URL@ -ser msgpack -subscribers 1000 -payload 64 -event-rate 100000
  done
fi

# ---------------------------------------------------------------- report
echo "elapsed: $(( $(date +%s) - T0 )) s for the whole matrix" >> "$OUT/machine.txt"
write_report
if [[ $QUICK != 1 && $SECTIONS == " idle rpc pubsub churn authstorm tls mesh gateway profile " ]]; then
  cp "$OUT/RESULTS.md" bench/RESULTS.md
  say "== wrote bench/RESULTS.md (raw: $OUT)"
else
  say "== QUICK or partial run: report in $OUT/RESULTS.md"
fi
say "   $(( $(date +%s) - T0 )) s"
