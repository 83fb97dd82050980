#!/usr/bin/env bash
# bench/run-e2e.sh — the end-to-end benchmark matrix (make bench-e2e).
#
#   ./bench/run-e2e.sh              full matrix (~15 min); writes bench/RESULTS.md
#   QUICK=1 ./bench/run-e2e.sh      2-minute smoke subset; report in bench/out/<run>/ only
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
# each run), PORT_BASE (18080), SECTIONS ("idle rpc pubsub churn authstorm profile": the
# parts to run).
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
SRC=${SRC:-127.0.0.2-127.0.0.40}
SECTIONS=" ${SECTIONS:-idle rpc pubsub churn authstorm tls profile} "
want() { [[ $SECTIONS == *" $1 "* ]]; }
if [[ $QUICK == 1 ]]; then
  REPS=1 MAX_REPS=1 DUR=2s WARMUP=500ms PROFILE=0 QUIET_WAIT=3
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
TLS_PORT=$((PORT_BASE + 2))
bin/edgewamp oauth keygen > "$OUT/oauth-key.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout "$OUT/tls-key.pem" -out "$OUT/tls-cert.pem" 2>/dev/null
cat > "$OUT/edgewamp.yaml" <<EOF
# The embedded default configuration plus one WAMP-CRA user and OAuth2
# access tokens as WAMP tickets (signed with a key file the load tool mints
# tokens with) for authstorm, and a TLS listener (self-signed P-256) for
# the tls section.
log: {level: warn}
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
    oauth: {}
EOF
bin/edgewamp check-config "$OUT/edgewamp.yaml" >/dev/null

TARGETS=(edgewamp wampfwd)
declare -A URL=([edgewamp]="ws://127.0.0.1:$EW_PORT/ws" [wampfwd]="ws://127.0.0.1:$FWD_PORT/ws" [edgewamp-tls]="wss://127.0.0.1:$TLS_PORT/ws")
declare -A RSURL=([edgewamp]="rs://127.0.0.1:$EW_PORT" [wampfwd]="rs://127.0.0.1:$FWD_PORT" [edgewamp-tls]="rss://127.0.0.1:$TLS_PORT")
if [[ -n ${TARGET_URL:-} ]]; then
  X=${TARGET_NAME:-other}
  TARGETS+=("$X")
  URL[$X]=$TARGET_URL
  RSURL[$X]=${TARGET_RS_URL:-}
fi
echo "targets: ${TARGETS[*]} (edgewamp: bin/edgewamp run -config edgewamp.yaml; wampfwd: bench/cmd/wampfwd, flush adaptive; tls section: edgewamp-tls, the same edgewamp over its TLS listener)" >> "$OUT/machine.txt"
{
  echo "# targets, started fresh for every run:"
  echo "taskset -c $ROUTER_CPU bin/edgewamp run -config $OUT/edgewamp.yaml   # default config + a WAMP-CRA user (below)"
  echo "taskset -c $ROUTER_CPU $BIN/wampfwd -listen 127.0.0.1:$FWD_PORT"
  [[ -n ${TARGET_URL:-} ]] && echo "# ${TARGET_NAME:-other}: $TARGET_URL (started by the caller${TARGET_PID:+, pid $TARGET_PID})"
  echo "# load tool, one line per configuration and target (\$PID: the target's process):"
} > "$OUT/commands.txt"

PID=""
START_BIN=bin/edgewamp
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
    *) PID=${TARGET_PID:-}; return 0 ;;
  esac
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  say "   !! $name did not start (see $OUT/logs/$id.log)"
  echo "$name failed to start for $id: $(tail -3 "$OUT/logs/$id.log")" >> "$OUT/events.txt"
  return 1
}

stop_target() { # name run-id
  local name=$1 id=$2
  [[ $name == edgewamp || $name == edgewamp-tls || $name == wampfwd ]] || return 0
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
  start_target "$target" "$id" || { echo "cfg=$cfg rep=$rep RESULT scenario=none target=$target error=did_not_start" >> "$OUT/results.txt"; return 0; }
  [[ -n $PID ]] && pidarg=(-router-pid "$PID")
  local cmd=(taskset -c "$TOOL_CPU" "$WB" -q -label "$target" "${pidarg[@]}" -warmup "$WARMUP" -duration "$DUR" "$@")
  if [[ -z ${LOGGED[$cfg-$target]:-} ]]; then
    LOGGED[$cfg-$target]=1
    echo "${cmd[*]}" | sed -E 's/-router-pid [0-9]+/-router-pid $PID/' >> "$OUT/commands.txt"
  fi
  line=$("${cmd[@]}" 2>>"$OUT/logs/$id.tool.log" | grep '^RESULT' | tail -1) || true
  [[ -n $line ]] || line="RESULT scenario=none target=$target error=no_RESULT_line_(see_logs/$id.tool.log)"
  stop_target "$target" "$id"
  echo "cfg=$cfg rep=$rep $line" >> "$OUT/results.txt"
  LAST=$line
  printf '   %-28s %-9s #%d %s\n' "$cfg" "$target" "$rep" \
    "$(tr ' ' '\n' <<<"$line" | grep -E '^(calls_per_s|events_per_s|kib_per_session|joins_per_s|storm_ms|p99_us|delivery_ratio|errors|lost|failed|failures|tool_cpu_pct|router_cpu_pct|other_cpu_pct|error)=' | tr '\n' ' ')" | tee -a "$OUT/log.txt" >&2
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
      [[ " $* " == *@RSURL@* && -z ${RSURL[$t]} ]] && continue # no RawSocket URL for this target
      (( ${clean[$t]:-0} >= REPS )) && continue
      [[ -n ${done[$t]:-} ]] && continue
      active=1
      urlargs=("${@//@URL@/${URL[$t]}}")
      urlargs=("${urlargs[@]//@RSURL@/${RSURL[$t]}}")
      bench "$cfg" "$t" "$rep" "${urlargs[@]}"
      other=$(grep -oE 'other_cpu_pct=[0-9.]+' <<<"$LAST" | cut -d= -f2 || true)
      if [[ -z $other ]] || awk -v o="$other" 'BEGIN{exit !(o <= 25)}'; then clean[$t]=$(( ${clean[$t]:-0} + 1 )); fi
      if (( rep >= REPS )) && [[ $LAST == *error=* ]]; then done[$t]=1; fi
    done
    (( active )) || break
  done
}

ALL="${TARGETS[*]}"
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
  config rpc-ws-msgpack-c16-p64 "$ALL" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
else
  for p in 64 4096; do
    for c in 1 16 128; do
      config "rpc-ws-msgpack-c$c-p$p" "$ALL" -scenario rpc -url @URL@ -ser msgpack -callers "$c" -payload "$p"
    done
  done
  config rpc-ws-json-c16-p64 "$ALL" -scenario rpc -url @URL@ -ser json -callers 16 -payload 64
  config rpc-rs-msgpack-c16-p64 "$ALL" -scenario rpc -url @RSURL@ -ser msgpack -callers 16 -payload 64
fi
fi

if want pubsub; then
say "== pubsub"
SUBS="100 1000"
[[ $QUICK == 1 ]] && SUBS="100"
for s in $SUBS; do
  config "pubsub-ws-s$s-sat" "$ALL" -scenario pubsub -url @URL@ -ser msgpack -subscribers "$s" -payload 64
  config "pubsub-ws-s$s-rate100k" "$ALL" -scenario pubsub -url @URL@ -ser msgpack -subscribers "$s" -payload 64 -event-rate 100000
done
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
fi

if want tls; then
say "== tls (edgewamp over its TLS listener beside its plaintext one, same process, interleaved)"
TLS_IDLE="5000"
[[ $QUICK == 1 ]] || TLS_IDLE="5000 $IDLE_MAX"
for n in $TLS_IDLE; do
  config "tls-idle-rs-$n" "edgewamp edgewamp-tls" -scenario idle -url @RSURL@ -ser msgpack -sessions "$n" -src "$SRC"
done
config tls-rpc-rs-msgpack-c16-p64 "edgewamp edgewamp-tls" -scenario rpc -url @RSURL@ -ser msgpack -callers 16 -payload 64
config tls-rpc-ws-msgpack-c16-p64 "edgewamp edgewamp-tls" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
if [[ $QUICK != 1 ]]; then
  config tls-rpc-ws-msgpack-c1-p64 "edgewamp edgewamp-tls" -scenario rpc -url @URL@ -ser msgpack -callers 1 -payload 64
  config tls-rpc-ws-msgpack-c16-p4096 "edgewamp edgewamp-tls" -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 4096
fi
fi

# ---------------------------------------------------------------- profile
if [[ $PROFILE == 1 ]] && want profile; then
  say "== profile (syscalls per message and perf samples; not part of the medians)"
  EVENTS=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep
  prof() { # name target figure-key unit args...
    local name=$1 target=$2 key=$3 unit=$4; shift 4
    local id rate tpid
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
    {
      echo "== $target, $name: $(tr ' ' '\n' < "$OUT/logs/$id.result" | grep -E "^($key|tool_cpu_pct|router_cpu_pct)=" | tr '\n' ' ')"
      for side in router tool; do
        printf '   %s syscalls per %s:' "$side" "$unit"
        awk -F, -v r="${rate:-0}" '$1 ~ /^[0-9]+$/ && $1 > 0 { n=$3; sub("syscalls:sys_enter_","",n); if (r > 0) printf " %s %.3f", n, $1/2/r }' "$OUT/logs/$id.$side.stat"
        echo
      done
      printf '   router CPU by place (perf):'
      perf report -i "$OUT/logs/$id.router.perf" --stdio --no-children --sort dso 2>/dev/null \
        | awk '/^ +[0-9]/ { printf " %s %s", $2, $1 }'
      echo
      echo "   router CPU profile (perf, top symbols):"
      perf report -i "$OUT/logs/$id.router.perf" --stdio --no-children --sort sym --percent-limit 2.5 2>/dev/null \
        | grep -E '^ +[0-9]' | head -14 | sed 's/^/     /'
    } >> "$OUT/profile.txt"
  }
  for t in edgewamp wampfwd; do
    prof "rpc ws+msgpack 16 callers 64 B" "$t" calls_per_s call -scenario rpc -url @URL@ -ser msgpack -callers 16 -payload 64
    prof "pubsub ws+msgpack 1 -> 1000 saturation 64 B" "$t" events_per_s event -scenario pubsub -url @URL@ -ser msgpack -subscribers 1000 -payload 64
    prof "pubsub ws+msgpack 1 -> 1000 at 100,000 events/s 64 B" "$t" events_per_s event -scenario pubsub -url @URL@ -ser msgpack -subscribers 1000 -payload 64 -event-rate 100000
  done
fi

# ---------------------------------------------------------------- report
echo "elapsed: $(( $(date +%s) - T0 )) s for the whole matrix" >> "$OUT/machine.txt"
"$WB" -report "$OUT" > "$OUT/RESULTS.md"
# Hand-maintained micro-benchmark figures and tuning notes go at the end.
if [[ -f bench/micro.md ]]; then
  { echo; cat bench/micro.md; } >> "$OUT/RESULTS.md"
fi
# The release footprint (bench/footprint.sh) keeps its section.
if [[ -f bench/footprint.md ]]; then
  { echo; cat bench/footprint.md; } >> "$OUT/RESULTS.md"
fi
if [[ $QUICK != 1 && $SECTIONS == " idle rpc pubsub churn authstorm tls profile " ]]; then
  cp "$OUT/RESULTS.md" bench/RESULTS.md
  say "== wrote bench/RESULTS.md (raw: $OUT)"
else
  say "== QUICK or partial run: report in $OUT/RESULTS.md"
fi
say "   $(( $(date +%s) - T0 )) s"
