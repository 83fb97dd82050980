#!/usr/bin/env bash
# bench/ab-gateway.sh — the HTTP gateway's POST /call budget, before and
# after a change, side by side with the ceiling (bench/cmd/httpconst, a bare
# net/http handler) in the same sitting. Each round runs three fresh
# targets pinned to ROUTER_CPU, one after the other in a rotating order:
# the gateway built from BASE (a git revision), the gateway of the working
# tree, and httpconst; the load tool (wampbench -scenario httpcall, 16
# keep-alive clients, 64 B, 1 WAMP callee) runs pinned to TOOL_CPU. Each
# gateway run is compared with the httpconst run of its round.
#
#   ./bench/ab-gateway.sh                  ROUNDS=7, BASE=main
#   BASE=9a6bd7a ROUNDS=11 ./bench/ab-gateway.sh
#   ONLY=new ROUNDS=7 ./bench/ab-gateway.sh   the working tree and httpconst only
#
# Rounds where any run saw other processes use more than NOISY % of a CPU
# are reported but left out of the "clean" medians.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
BASE=${BASE:-main}
ONLY=${ONLY:-}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
CLIENTS=${CLIENTS:-16}
ROUTER_CPU=${ROUTER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
PORT=${PORT:-18280}
NOISY=${NOISY:-25}
OUT=bench/out/abgw-$(date -u +%Y%m%d-%H%M%S)
BIN=bench/out/bin
mkdir -p "$OUT" "$BIN"
CGO_ENABLED=0 go build -trimpath -o "$BIN/edgewamp-new" ./cmd/edgewamp
go build -o "$BIN/wampbench" ./bench/cmd/wampbench
go build -o "$BIN/httpconst" ./bench/cmd/httpconst
TARGETS="new httpconst"
if [[ -z $ONLY ]]; then
  wt=$OUT/base-src
  mkdir -p "$wt"
  git archive "$BASE" | tar -x -C "$wt"
  (cd "$wt" && CGO_ENABLED=0 go build -trimpath -o "../../bin/edgewamp-base" ./cmd/edgewamp)
  rm -rf "$wt"
  TARGETS="base new httpconst"
fi
GW=$((PORT + 1))
printf 'log: {level: warn}\nlisteners:\n  - address: 127.0.0.1:%s\ngateway:\n  listen: 127.0.0.1:%s\n' "$PORT" "$GW" > "$OUT/edgewamp.yaml"

one() { # target round
  local t=$1 round=$2 pid line url callee
  case $t in
    httpconst)
      taskset -c "$ROUTER_CPU" "$BIN/httpconst" -listen "127.0.0.1:$GW" >"$OUT/$t.log" 2>&1 &
      url=http://127.0.0.1:$GW callee="" ;;
    *)
      taskset -c "$ROUTER_CPU" "$BIN/edgewamp-$t" run -config "$OUT/edgewamp.yaml" >"$OUT/$t.log" 2>&1 &
      url=http://127.0.0.1:$GW callee=ws://127.0.0.1:$PORT/ws ;;
  esac
  pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$GW") 2>/dev/null && break; sleep 0.05; done
  line=$(taskset -c "$TOOL_CPU" "$BIN/wampbench" -q -label "$t" -router-pid "$pid" -warmup "$WARMUP" -duration "$DUR" \
    -scenario httpcall -url "$url" -callee-url "$callee" -callers "$CLIENTS" -payload 64 2>>"$OUT/tool.log" | grep '^RESULT' | tail -1) || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "round=$round target=$t $line" | tee -a "$OUT/runs.txt" |
    tr ' ' '\n' | grep -E '^(round|target|calls_per_s|p50_us|p99_us|router_cpu_pct|tool_cpu_pct|other_cpu_pct)=' | tr '\n' ' '
  echo
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), new = working tree at $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'), base = $BASE ($(git rev-parse --short "$BASE" 2>/dev/null || echo '?'))"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); router on CPU $ROUTER_CPU, tool on CPU $TOOL_CPU, $DUR after $WARMUP warm-up, $CLIENTS clients, 64 B"
} | tee "$OUT/machine.txt"
read -r -a order <<<"$TARGETS"
for ((r = 1; r <= ROUNDS; r++)); do
  n=${#order[@]}
  for ((i = 0; i < n; i++)); do one "${order[$(((i + r) % n))]}" "$r"; done
done

# Summary: per gateway build, medians over rounds of requests/s, p99,
# router CPU per request and the ratio to the same round's httpconst.
summary() { # max-other-cpu label
  awk -v noisy="$1" -v label="$2" '
    function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }
    { delete f; for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      k = f["round"] SUBSEP f["target"]; R[k] = f["calls_per_s"]; P99[k] = f["p99_us"]; P50[k] = f["p50_us"]
      C[k] = f["router_cpu_pct"]; O[k] = f["other_cpu_pct"]; rounds[f["round"]] = 1; tg[f["target"]] = 1 }
    END {
      for (t in tg) { if (t == "httpconst") continue
        n = 0; all = 0
        for (r in rounds) { all++; a = r SUBSEP t; h = r SUBSEP "httpconst"
          if (R[a] == "" || R[h] == "" || R[a] == 0 || R[h] == 0) continue
          bad = 0; for (u in tg) if (O[r SUBSEP u] > noisy) bad = 1
          if (bad) continue
          n++; x[n] = R[a]; y[n] = R[h]; q[n] = R[a] / R[h]; p[n] = P99[a]; hp[n] = P99[h]; m[n] = P50[a]
          c[n] = C[a] * 1e4 / R[a]; hc[n] = C[h] * 1e4 / R[h] }
        if (n == 0) { printf "%-5s %s: no round of %d\n", t, label, all; continue }
        printf "%-5s %s: %d of %d rounds: %.0f req/s vs httpconst %.0f = %.1f %% (median of ratios); p50 %.0f us; p99 %.0f us (httpconst %.0f); router CPU per request %.1f us (httpconst %.1f)\n",
          t, label, n, all, med(x, n), med(y, n), 100 * med(q, n), med(m, n), med(p, n), med(hp, n), med(c, n), med(hc, n) }
    }' "$OUT/runs.txt" | sort
}
{
  summary "$NOISY" "clean (other CPU <= $NOISY %)"
  summary 1000000 "all"
} | tee "$OUT/summary.txt"
echo "runs: $OUT/runs.txt"
