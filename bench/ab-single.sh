#!/usr/bin/env bash
# bench/ab-single.sh — two edgewamp binaries side by side on the single
# node's call and publish paths, in interleaved pairs: for each pair, A then
# B, each a fresh router (default configuration) pinned to ROUTER_CPU, with
# wampbench on TOOL_CPU running pubsub 1 -> 100 at saturation, then rpc with
# 16 callers (ws+msgpack, 64 B). For a change on the call or publish path:
#
#   git worktree add /tmp/before REV && (cd /tmp/before && CGO_ENABLED=0 go build -trimpath -o /tmp/ew-before ./cmd/edgewamp)
#   CGO_ENABLED=0 go build -trimpath -o /tmp/ew-after ./cmd/edgewamp
#   ./bench/ab-single.sh /tmp/ew-before /tmp/ew-after
#
# PAIRS (4), DUR (3s), PORT (28380; the gateway takes PORT+1).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# == 2 ]] || { echo "usage: $0 BINARY_A BINARY_B" >&2; exit 2; }
PAIRS=${PAIRS:-4}
DUR=${DUR:-3s}
PORT=${PORT:-28380}
ROUTER_CPU=${ROUTER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
OUT=bench/out/ab-single-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT" bench/out/bin
go build -o bench/out/bin/wampbench ./bench/cmd/wampbench
printf 'listeners: [{address: "127.0.0.1:%s"}]\ngateway: {listen: "127.0.0.1:%s"}\nlog: {level: warn}\n' \
  "$PORT" "$((PORT + 1))" >"$OUT/edgewamp.yaml"
for pair in $(seq "$PAIRS"); do
  for side in A B; do
    bin=$1; [[ $side == B ]] && bin=$2
    taskset -c "$ROUTER_CPU" "$bin" run -config "$OUT/edgewamp.yaml" >"$OUT/router-$side-$pair.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
    for args in "-scenario pubsub -subscribers 100" "-scenario rpc -callers 16"; do
      # shellcheck disable=SC2086
      r=$(taskset -c "$TOOL_CPU" bench/out/bin/wampbench -q -label "$side" -router-pid "$pid" -warmup 500ms \
        -duration "$DUR" -url "ws://127.0.0.1:$PORT/ws" -ser msgpack -payload 64 $args)
      echo "pair=$pair side=$side $(tr ' ' '\n' <<<"$r" | grep -E '^(scenario|events_per_s|calls_per_s|p99_us|router_cpu_pct|other_cpu_pct)=' | tr '\n' ' ')" | tee -a "$OUT/runs.txt"
    done
    kill -TERM "$pid"; wait "$pid" || true
  done
done
echo "runs: $OUT/runs.txt"
