#!/usr/bin/env bash
# bench/ab-tool.sh — one build of edgewamp, one node and the three-node mesh,
# each measured under two settings of the load tool, in interleaved rounds:
# how much of a figure, and of the mesh ÷ one node ratio, is the tool's.
# RPC, 16 callers (ws+msgpack, 64 B); the one node, or the mesh's three
# nodes, pinned to CPU 0 (the callers on node A, the callee on node B, as in
# bench/ab-mesh.sh and the matrix's mesh section), the tool on CPU 1.
#
#   ./bench/ab-tool.sh                     TOOL_A="-driver uring", TOOL_B="-driver uring -spin"
#   TOOL_A="" TOOL_B="-driver uring" PAIRS=6 ./bench/ab-tool.sh
#
# Output: one line per run in bench/out/ab-tool-<time>/runs.txt, then the
# medians per target and tool setting, with the nodes' CPU per call
# ((router_cpu_pct + mesh_cpu_pct) / calls/s) and the mesh ÷ one node ratio
# of the medians, by calls/s and by CPU per call.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-4}
DUR=${DUR:-6s}
WARMUP=${WARMUP:-1s}
CALLERS=${CALLERS:-16}
TOOL_A=${TOOL_A--driver uring}
TOOL_B=${TOOL_B--driver uring -spin}
PORT=${PORT:-23400} # below the ephemeral range: NATS routes dial from ephemeral ports
OUT=bench/out/ab-tool-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
CGO_ENABLED=0 go build -trimpath -o "$OUT/edgewamp" ./cmd/edgewamp
go build -o "$OUT/wampbench" ./bench/cmd/wampbench
printf 'log: {level: warn}\nrealms:\n  - name: realm1\n    anonymous: true\n' > "$OUT/cfg.yaml"
routes="nats://127.0.0.1:$((PORT + 20)),nats://127.0.0.1:$((PORT + 21)),nats://127.0.0.1:$((PORT + 22))"
{
  echo "tool A: wampbench ${TOOL_A:-(defaults)}; tool B: wampbench ${TOOL_B:-(defaults)}; commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' + changes')"
  echo "single: taskset -c 0 edgewamp run -config cfg.yaml -listen 127.0.0.1:$((PORT + 10)) -gateway-listen off"
  echo "mesh: taskset -c 0 edgewamp run -config cfg.yaml -listen 127.0.0.1:\$(($PORT+10+i)) -gateway-listen off -node n\$i -cluster-listen 127.0.0.1:\$(($PORT+20+i)) -cluster-routes $routes"
  echo "tool: taskset -c 1 wampbench -scenario rpc -url ws://127.0.0.1:$((PORT + 10))/ws -callee-url (node A or B) -ser msgpack -callers $CALLERS -payload 64 -warmup $WARMUP -duration $DUR \$TOOL"
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

run() { # target side pair
  local target=$1 side=$2 pair=$3 pids=() meshp=() n callee i line
  local tv=TOOL_$side
  read -r -a targs <<<"${!tv}"
  if [[ $target == single ]]; then
    n=1 callee=$((PORT + 10))
    taskset -c 0 "$OUT/edgewamp" run -config "$OUT/cfg.yaml" -log-level warn -listen "127.0.0.1:$((PORT + 10))" \
      -gateway-listen off >"$OUT/$target$side$pair.log" 2>&1 &
    pids+=($!)
    sleep 1
  else
    n=3 callee=$((PORT + 11))
    for i in 0 1 2; do
      taskset -c 0 "$OUT/edgewamp" run -config "$OUT/cfg.yaml" -log-level warn -listen "127.0.0.1:$((PORT + 10 + i))" \
        -gateway-listen off -node "n$i" -cluster-listen "127.0.0.1:$((PORT + 20 + i))" -cluster-routes "$routes" >"$OUT/$target$side$pair.n$i.log" 2>&1 &
      pids+=($!)
    done
    meshp=(-mesh-pids "${pids[1]},${pids[2]}")
    sleep 2.5 # the mesh forms (wampbench retries the first call until the registration is known)
  fi
  line=$(taskset -c 1 "$OUT/wampbench" -q -label "$target$side" -router-pid "${pids[0]}" "${meshp[@]}" \
    -warmup "$WARMUP" -duration "$DUR" -scenario rpc -url "ws://127.0.0.1:$((PORT + 10))/ws" \
    -callee-url "ws://127.0.0.1:$callee/ws" -ser msgpack -callers "$CALLERS" -payload 64 "${targs[@]}" \
    2>"$OUT/$target$side$pair.tool.log" | grep '^RESULT' | tail -1) || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  g() { tr ' ' '\n' <<<"$line" | sed -n "s/^$1=//p"; }
  local cps rc mc us
  cps=$(g calls_per_s) rc=$(g router_cpu_pct) mc=$(g mesh_cpu_pct)
  us=$(awk -v a="${rc:-0}" -v b="${mc:-0}" -v c="${cps:-0}" 'BEGIN { if (c > 0) printf "%.1f", (a + b) * 1e4 / c; else print 0 }')
  echo "$target $side $pair calls_per_s=${cps:-0} p50_us=$(g p50_us) p99_us=$(g p99_us) node_us_per_call=$us tool_cpu_pct=$(g tool_cpu_pct) other_cpu_pct=$(g other_cpu_pct)" |
    tee -a "$OUT/runs.txt"
}
for pair in $(seq "$PAIRS"); do
  for side in A B; do
    run single "$side" "$pair"
    run mesh "$side" "$pair"
  done
done
med() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
m() { grep "^$1 $2 " "$OUT/runs.txt" | tr ' ' '\n' | sed -n "s/^$3=//p" | med; }
for side in A B; do
  line="median tool $side:"
  for target in single mesh; do
    for k in calls_per_s p99_us node_us_per_call tool_cpu_pct; do
      line="$line $target.$k=$(m $target $side $k)"
    done
  done
  line="$line ratio_calls=$(awk -v a="$(m mesh $side calls_per_s)" -v b="$(m single $side calls_per_s)" 'BEGIN { printf "%.2f", a / b }')"
  line="$line ratio_cpu=$(awk -v a="$(m single $side node_us_per_call)" -v b="$(m mesh $side node_us_per_call)" 'BEGIN { printf "%.2f", a / b }')"
  echo "$line" | tee -a "$OUT/runs.txt"
done
