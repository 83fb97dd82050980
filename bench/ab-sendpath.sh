#!/usr/bin/env bash
# bench/ab-sendpath.sh — the send paths of issue 15 side by side, as many
# interleaved pairs as you like: for each scenario, edgewamp on io_uring
# (tuning.io_uring: on), then with io_uring off (write(2)), then again...,
# each run a fresh router pinned to ROUTER_CPU and the load tool to
# TOOL_CPU, as bench/run-e2e.sh does. On a shared machine, pairs where
# either run saw other processes use more than NOISY % of a CPU are
# reported but left out of the medians.
#
#   ./bench/ab-sendpath.sh                 PAIRS=5, the four scenarios below
#   PAIRS=10 SCENARIOS="rate100k sat" ./bench/ab-sendpath.sh
#   FWD=1 ./bench/ab-sendpath.sh           the forwarder (wampfwd -io-uring on|off) instead
#   DRIVER=gnet ./bench/ab-sendpath.sh     the load tool on gnet's client loops (one read(2)
#                                          and write(2) per session) instead of its own
#                                          io_uring loops (the default, -driver uring)
#   QUOTA=30 SCENARIOS=sat ./bench/ab-sendpath.sh
#                                          the router limited to 30 % of a CPU (a cgroup's CPU
#                                          quota), so that it, not the load tool, bounds a
#                                          saturation run: the events/s then compare the two
#                                          paths' capacity on equal CPU (needs root and the
#                                          cgroup v1 cpu controller or cgroup v2)
#
# Scenarios (ws+msgpack, 64 B): rate100k (pubsub 1 -> 1,000 at 100,000
# events/s), sat (pubsub 1 -> 1,000, saturation), rpc128, rpc16, rpc1
# (callers). Output: one line per run in bench/out/ab-<time>/runs.txt and a
# summary (medians of the clean pairs, io_uring ÷ write(2)).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-5}
DUR=${DUR:-5s}
WARMUP=${WARMUP:-1s}
ROUTER_CPU=${ROUTER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
PORT=${PORT:-18180}
NOISY=${NOISY:-25}
FWD=${FWD:-0}
DRIVER=${DRIVER:-uring}
QUOTA=${QUOTA:-}
SCENARIOS=${SCENARIOS:-"rate100k sat rpc128 rpc16 rpc1"}
OUT=bench/out/ab-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT" bench/out/bin
CGO_ENABLED=0 go build -trimpath -o bench/out/bin/edgewamp-ab ./cmd/edgewamp
go build -o bench/out/bin/wampbench ./bench/cmd/wampbench
go build -o bench/out/bin/wampfwd ./bench/cmd/wampfwd

args_of() {
  case $1 in
    rate100k) echo "-scenario pubsub -subscribers 1000 -payload 64 -event-rate 100000" ;;
    sat) echo "-scenario pubsub -subscribers 1000 -payload 64" ;;
    rpc128) echo "-scenario rpc -callers 128 -payload 64" ;;
    rpc16) echo "-scenario rpc -callers 16 -payload 64" ;;
    rpc1) echo "-scenario rpc -callers 1 -payload 64" ;;
    *) echo "ab-sendpath: unknown scenario $1" >&2; exit 2 ;;
  esac
}

# With QUOTA, the routers run in a cgroup limited to QUOTA % of one CPU
# (100 ms periods). `limited` runs its command inside it; it is only called
# in the background (`limited ... &`), and it execs, so that $! is the
# router's process id.
CG=
if [[ -n $QUOTA ]]; then
  if [[ -d /sys/fs/cgroup/cpu && -w /sys/fs/cgroup/cpu ]]; then # cgroup v1
    CG=/sys/fs/cgroup/cpu/edgewamp-ab-$$
    mkdir "$CG"
    echo 100000 > "$CG/cpu.cfs_period_us"
    echo $((QUOTA * 1000)) > "$CG/cpu.cfs_quota_us"
  elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then # cgroup v2 (not tried: this VM has v1)
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control
    CG=/sys/fs/cgroup/edgewamp-ab-$$
    mkdir "$CG"
    echo "$((QUOTA * 1000)) 100000" > "$CG/cpu.max"
  else
    echo "ab-sendpath: QUOTA needs a writable cgroup cpu controller" >&2
    exit 2
  fi
  trap 'rmdir "$CG" 2>/dev/null || true' EXIT
fi
limited() {
  if [[ -n $CG ]]; then
    exec sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CG" "$@"
  else
    exec "$@"
  fi
}

one() { # scenario mode(on|off) pair
  local sc=$1 mode=$2 pair=$3 pid line
  if [[ $FWD == 1 ]]; then
    limited taskset -c "$ROUTER_CPU" bench/out/bin/wampfwd -listen "127.0.0.1:$PORT" -io-uring "$mode" >"$OUT/router.log" 2>&1 &
  else
    printf 'log: {level: warn}\nlisteners:\n  - address: 127.0.0.1:%s\ntuning:\n  io_uring: %s\n' "$PORT" "$mode" > "$OUT/edgewamp-$mode.yaml"
    limited taskset -c "$ROUTER_CPU" bench/out/bin/edgewamp-ab run -config "$OUT/edgewamp-$mode.yaml" >"$OUT/router.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
  # shellcheck disable=SC2046
  line=$(taskset -c "$TOOL_CPU" bench/out/bin/wampbench -q -label "$mode" -router-pid "$pid" -warmup "$WARMUP" -duration "$DUR" \
    -driver "$DRIVER" -url "ws://127.0.0.1:$PORT/ws" -ser msgpack $(args_of "$sc") 2>>"$OUT/tool.log" | grep '^RESULT' | tail -1) || true
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "case=$sc pair=$pair path=$mode $line" | tee -a "$OUT/runs.txt" |
    tr ' ' '\n' | grep -E '^(case|pair|path|calls_per_s|events_per_s|p50_us|p99_us|arrive_p99_us|router_cpu_pct|tool_cpu_pct|other_cpu_pct)=' | tr '\n' ' '
  echo
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), kernel $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "target: $([[ $FWD == 1 ]] && echo wampfwd || echo edgewamp), router on CPU $ROUTER_CPU${QUOTA:+ limited to $QUOTA % of it}, tool on CPU $TOOL_CPU (-driver $DRIVER), $DUR after $WARMUP warm-up"
} | tee "$OUT/machine.txt"
for ((p = 1; p <= PAIRS; p++)); do
  for sc in $SCENARIOS; do
    # Alternate which path goes first, so that neither always follows the other.
    if (( p % 2 )); then one "$sc" on "$p"; one "$sc" off "$p"; else one "$sc" off "$p"; one "$sc" on "$p"; fi
  done
done

# Summary: per scenario, medians of each path's figures and of the
# per-pair ratios (io_uring ÷ write(2)), over the clean pairs and over all
# pairs (on a busy machine there may be no clean pair; the alternating
# order keeps the disturbance from favouring either path).
summary() { # max-other-cpu label
  awk -v noisy="$1" -v label="$2" '
    function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n == 0 ? 0 : (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) }
    {
      delete f; for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      k = f["case"] SUBSEP f["pair"]; sc[f["case"]] = 1
      rate = f["calls_per_s"] != "" ? f["calls_per_s"] : f["events_per_s"]
      R[k, f["path"]] = rate; P50[k, f["path"]] = f["p50_us"]; P99[k, f["path"]] = f["p99_us"]; CPU[k, f["path"]] = f["router_cpu_pct"]
      A99[k, f["path"]] = f["arrive_p99_us"]
      O[k, f["path"]] = f["other_cpu_pct"]; pairs[k] = 1
    }
    END {
      for (s in sc) {
        n = 0; all = 0; na = 0
        for (k in pairs) { split(k, x, SUBSEP); if (x[1] != s) continue; all++
          if (R[k, "on"] == "" || R[k, "off"] == "" || O[k, "on"] > noisy || O[k, "off"] > noisy || R[k, "off"] == 0 || R[k, "on"] == 0) continue
          n++; ron[n] = R[k, "on"]; roff[n] = R[k, "off"]; rr[n] = R[k, "on"] / R[k, "off"]
          a50[n] = P50[k, "on"]; b50[n] = P50[k, "off"]; a99[n] = P99[k, "on"]; b99[n] = P99[k, "off"]
          c1[n] = CPU[k, "on"]; c2[n] = CPU[k, "off"]; cp1[n] = CPU[k, "on"] * 1e4 / R[k, "on"]; cp2[n] = CPU[k, "off"] * 1e4 / R[k, "off"]
          q99[n] = (P99[k, "off"] > 0) ? P99[k, "on"] / P99[k, "off"] : 0; q50[n] = (P50[k, "off"] > 0) ? P50[k, "on"] / P50[k, "off"] : 0
          if (A99[k, "on"] != "" && A99[k, "off"] != "") { na++; aa[na] = A99[k, "on"]; ab[na] = A99[k, "off"] }
          qc[n] = cp2[n] > 0 ? cp1[n] / cp2[n] : 0 }
        if (n == 0) { printf "%-9s %s: no pair of %d\n", s, label, all; continue }
        printf "%-9s %s: %d of %d pairs: rate io_uring %.0f / write(2) %.0f = %.2fx; p50 %.0f / %.0f us (%.2fx); p99 %.0f / %.0f us (%.2fx); router CPU %.1f / %.1f %%, per message %.2f / %.2f us (%.2fx)\n",
          s, label, n, all, med(ron, n), med(roff, n), med(rr, n), med(a50, n), med(b50, n), med(q50, n), med(a99, n), med(b99, n), med(q99, n), med(c1, n), med(c2, n), med(cp1, n), med(cp2, n), med(qc, n)
        if (na > 0) printf "%-9s %s: p99 to the kernel'"'"'s arrival in the subscriber'"'"'s socket (arrive_p99_us) %.0f / %.0f us\n", s, label, med(aa, na), med(ab, na)
      }
    }' "$OUT/runs.txt" | sort
}
{
  summary "$NOISY" "clean (other CPU <= $NOISY %)"
  summary 1000000 "all"
} | tee "$OUT/summary.txt"
echo "runs: $OUT/runs.txt"
