#!/usr/bin/env bash
# bench/ab-mesh.sh — two builds of edgewamp side by side on the mesh's RPC
# scenario, in interleaved pairs: three nodes meshed by NATS routes
# (pinned to MESH_CPUS), 16 callers on node A, the callee on node B
# (ws+msgpack, 64 B), the load tool on TOOL_CPU. Per run: calls/s, p50,
# p99, and the nodes' CPU per call, (router_cpu_pct + mesh_cpu_pct) /
# calls/s over the measured window, which other processes disturb much
# less than calls/s does on a shared machine. Medians over all pairs.
#
#   ./bench/ab-mesh.sh REV_A [REV_B]     git revisions (REV_B: the working tree)
#   PAIRS=6 MESH_CPUS=0-1 ./bench/ab-mesh.sh 9a6bd7a
#   GOMAXPROCS_B=1 ./bench/ab-mesh.sh HEAD HEAD   one build, an environment knob per side
#   ENV_B=GODEBUG=schedtrace=1000 ./bench/ab-mesh.sh HEAD HEAD   any environment variable per side
#   WRAP_B="chrt -b 0" ./bench/ab-mesh.sh HEAD HEAD   a command the nodes run under (it must exec them)
#
# Output: one line per run in bench/out/ab-mesh-<time>/runs.txt and the
# medians. Builds go to that directory (a revision is exported with
# git archive; nothing else in the tree changes).
set -euo pipefail
cd "$(dirname "$0")/.."
REV_A=${1:?usage: bench/ab-mesh.sh REV_A [REV_B]}
REV_B=${2:-}
PAIRS=${PAIRS:-4}
DUR=${DUR:-8s}
WARMUP=${WARMUP:-1s}
MESH_CPUS=${MESH_CPUS:-0}
TOOL_CPU=${TOOL_CPU:-1}
CALLERS=${CALLERS:-16}
PORT=${PORT:-23400} # below the ephemeral range: NATS routes dial from ephemeral ports
OUT=bench/out/ab-mesh-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"

build() { # rev dest
  local rev=$1 dest=$2
  if [[ -z $rev ]]; then
    CGO_ENABLED=0 go build -trimpath -o "$dest" ./cmd/edgewamp
    return
  fi
  local src=$OUT/src-$rev
  mkdir -p "$src"
  git archive "$rev" | tar -x -C "$src"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$OLDPWD/$dest" ./cmd/edgewamp)
}
build "$REV_A" "$OUT/edgewamp-A"
build "$REV_B" "$OUT/edgewamp-B"
go build -o "$OUT/wampbench" ./bench/cmd/wampbench
printf 'log: {level: warn}\nrealms:\n  - name: realm1\n    anonymous: true\n' > "$OUT/cfg.yaml"
routes="nats://127.0.0.1:$((PORT + 20)),nats://127.0.0.1:$((PORT + 21)),nats://127.0.0.1:$((PORT + 22))"
{
  echo "A: ${REV_A} ${GOMAXPROCS_A:+(GOMAXPROCS=$GOMAXPROCS_A)} ${ENV_A:-} ${WRAP_A:+(under $WRAP_A)}; B: ${REV_B:-working tree} ${GOMAXPROCS_B:+(GOMAXPROCS=$GOMAXPROCS_B)} ${ENV_B:-} ${WRAP_B:+(under $WRAP_B)}"
  echo "nodes: taskset -c $MESH_CPUS edgewamp run -config cfg.yaml -listen 127.0.0.1:\$(($PORT+10+i)) -gateway-listen off -node n\$i -cluster-listen 127.0.0.1:\$(($PORT+20+i)) -cluster-routes $routes"
  echo "tool: taskset -c $TOOL_CPU wampbench -scenario rpc -url ws://127.0.0.1:$((PORT + 10))/ws -callee-url ws://127.0.0.1:$((PORT + 11))/ws -ser msgpack -callers $CALLERS -payload 64 -warmup $WARMUP -duration $DUR"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

run() { # side pair
  local side=$1 pair=$2 bin=$OUT/edgewamp-$1 env=() pids=() i line
  local gmp=GOMAXPROCS_$side
  [[ -n ${!gmp:-} ]] && env=(GOMAXPROCS="${!gmp}")
  local ev=ENV_$side
  [[ -n ${!ev:-} ]] && env+=(${!ev})
  local wv=WRAP_$side wrap=()
  [[ -n ${!wv:-} ]] && wrap=(${!wv})
  for i in 0 1 2; do
    env "${env[@]}" taskset -c "$MESH_CPUS" "${wrap[@]}" "$bin" run -config "$OUT/cfg.yaml" -log-level warn -listen "127.0.0.1:$((PORT + 10 + i))" \
      -gateway-listen off -node "n$i" -cluster-listen "127.0.0.1:$((PORT + 20 + i))" -cluster-routes "$routes" >"$OUT/$side$pair.n$i.log" 2>&1 &
    pids+=($!)
  done
  sleep 2.5 # the mesh forms (wampbench retries the first call until the registration is known)
  line=$(taskset -c "$TOOL_CPU" "$OUT/wampbench" -q -label "$side" -router-pid "${pids[0]}" -mesh-pids "${pids[1]},${pids[2]}" \
    -warmup "$WARMUP" -duration "$DUR" -scenario rpc -url "ws://127.0.0.1:$((PORT + 10))/ws" \
    -callee-url "ws://127.0.0.1:$((PORT + 11))/ws" -ser msgpack -callers "$CALLERS" -payload 64 2>"$OUT/$side$pair.tool.log" | grep '^RESULT' | tail -1) || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  g() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
  local cps p50 p99 rc mc oth us
  cps=$(g calls_per_s) p50=$(g p50_us) p99=$(g p99_us) rc=$(g router_cpu_pct) mc=$(g mesh_cpu_pct) oth=$(g other_cpu_pct)
  us=$(awk -v a="${rc:-0}" -v b="${mc:-0}" -v c="${cps:-0}" 'BEGIN { if (c > 0) printf "%.1f", (a + b) * 1e4 / c; else print 0 }')
  echo "$side $pair calls_per_s=${cps:-0} p50_us=${p50:-0} p99_us=${p99:-0} node_us_per_call=$us other_cpu_pct=${oth:-0}" | tee -a "$OUT/runs.txt"
}
for pair in $(seq "$PAIRS"); do
  run A "$pair"
  run B "$pair"
done
med() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for side in A B; do
  line="median $side:"
  for k in calls_per_s p50_us p99_us node_us_per_call other_cpu_pct; do
    line="$line $k=$(grep "^$side " "$OUT/runs.txt" | tr ' ' '\n' | sed -n "s/^$k=//p" | med)"
  done
  echo "$line" | tee -a "$OUT/runs.txt"
done
