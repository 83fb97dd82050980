#!/usr/bin/env bash
# bench/footprint.sh — footprint of a release build for edge hardware
# (issue 14): stripped binary size per architecture, time from exec to
# READY=1, RSS at start and with 1,000 idle sessions. Writes
# bench/footprint.md and the section of bench/RESULTS.md between the
# footprint markers (run-e2e.sh keeps it there).
#
#   ./bench/footprint.sh
#   CONFIGS="plain=/tmp/plain.yaml mesh=/etc/edgewamp/mesh.yaml" ./bench/footprint.sh
#
# CONFIGS lists label=file pairs to measure (default: a plain single node
# with Go's GOGC 100, the same at GOGC 50, and deploy/small-board.yaml).
# "all" (default) is a mesh node, the HTTP gateway and an OAuth2 realm at
# once: what they cost beside "plain", which (like every configuration
# file) has the default gateway. RUNS (10) starts per configuration for the
# READY and RSS-at-start figures; SESSIONS (1000) idle WebSocket sessions.
# The router runs pinned to ROUTER_CPU (0), the load tool to TOOL_CPU (1).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
SESSIONS=${SESSIONS:-1000}
ROUTER_CPU=${ROUTER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
OUT=bench/out/footprint
VERSION=0.0.0+footprint
mkdir -p "$OUT"
say() { printf '%s\n' "$*" >&2; }

say "== make release (all architectures)"
make --no-print-directory release VERSION=$VERSION DIST="$OUT/dist" >"$OUT/release.log" 2>&1 ||
  { cat "$OUT/release.log" >&2; exit 1; }
go build -o "$OUT/wampstart" ./bench/cmd/wampstart
go build -o "$OUT/wampbench" ./bench/cmd/wampbench
BIN=$OUT/dist/edgewamp-$VERSION-linux-amd64

if [[ -z ${CONFIGS:-} ]]; then
  printf 'listeners: [{address: "127.0.0.1:0"}]\nrealms: [{name: realm1}]\n' >"$OUT/plain.yaml"
  printf 'listeners: [{address: "127.0.0.1:0"}]\nrealms: [{name: realm1}]\nruntime: {gogc: 50}\n' >"$OUT/gogc50.yaml"
  # Everything in: a mesh node (embedded NATS server with JetStream and a
  # cluster listener), the HTTP gateway and an OAuth2 realm, on free ports.
  read -r clport gwport < <(python3 -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  cat >"$OUT/all.yaml" <<EOF
listeners: [{address: "127.0.0.1:0"}]
gateway: {listen: "127.0.0.1:$gwport"}
oauth: {issuer: "http://127.0.0.1:$gwport"}
realms:
  - name: realm1
    anonymous: true
    oauth:
      clients: [{id: sensor, public: true, grants: [device_code, refresh_token]}]
mesh:
  node: footprint
  cluster: {listen: "127.0.0.1:$clport"}
EOF
  CONFIGS="plain=$OUT/plain.yaml plain-gogc50=$OUT/gogc50.yaml small-board=deploy/small-board.yaml all=$OUT/all.yaml"
fi

field() { # field KEY LINE
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

rows=()
for pair in $CONFIGS; do
  label=${pair%%=*} cfg=${pair#*=}
  say "== $label ($cfg)"
  start=$(taskset -c "$ROUTER_CPU" "$OUT/wampstart" -bin "$BIN" -runs "$RUNS" -label "$label" -- \
    run -config "$cfg" -listen 127.0.0.1:0 -log-level warn)
  say "   $start"
  # 1,000 idle sessions: a fresh router on a free port.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  taskset -c "$ROUTER_CPU" "$BIN" run -config "$cfg" -listen "127.0.0.1:$port" -log-level warn 2>"$OUT/$label.log" &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  idle=$(taskset -c "$TOOL_CPU" "$OUT/wampbench" -scenario idle -url "ws://127.0.0.1:$port/ws" -sessions "$SESSIONS" \
    -router-pid "$pid" -label "$label" -q || true)
  kill -TERM "$pid"; wait "$pid" || true
  say "   $idle"
  rows+=("| $label | $(field ready_ms_p50 "$start") ($(field ready_ms_min "$start")–$(field ready_ms_max "$start")) | $(awk -v k="$(field rss_kib_p50 "$start")" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(field rss_anon_kib_p50 "$start")" 'BEGIN { printf "%.1f", k / 1024 }') | $(awk -v k="$(field router_rss_kib "$idle")" 'BEGIN { printf "%.1f", k / 1024 }') | $(field kib_per_session "$idle") | $(field joined "$idle") |")
done

sizes=()
for arch in amd64 arm64 armv7; do
  b=$(stat -c %s "$OUT/dist/edgewamp-$VERSION-linux-$arch")
  d=$(ls "$OUT/dist"/edgewamp_${VERSION}_*.deb | grep -E "_(${arch/armv7/armhf})\.deb$")
  sizes+=("| linux/$arch | $(awk -v b="$b" 'BEGIN { printf "%.1f MiB (%d bytes)", b / 1048576, b }') | $(awk -v b="$(stat -c %s "$d")" 'BEGIN { printf "%.1f MiB", b / 1048576 }') |")
done

{
  echo "<!-- footprint:begin (bench/footprint.sh writes this section) -->"
  echo "## Footprint for edge hardware (release build)"
  echo
  echo "\`bench/footprint.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $(go env GOVERSION), $(nproc) CPUs"
  echo "(router on CPU $ROUTER_CPU, load tool on CPU $TOOL_CPU), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Release binaries: \`make release\` (static, stripped, -trimpath)."
  echo
  echo "| architecture | stripped binary | .deb |"
  echo "|---|---|---|"
  printf '%s\n' "${sizes[@]}"
  echo
  echo "Budget: ≤ 30 MiB with everything in."
  echo
  echo "| configuration (amd64) | exec → READY=1, ms: median (min–max of $RUNS) | RSS at start, MiB | of it anonymous, MiB | RSS with $SESSIONS idle WebSocket sessions, MiB | KiB per session | joined |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Budgets: RSS at start ≤ 20 MiB for a single node (≤ 40 MiB with the mesh); READY in ≤ 300 ms."
  echo "RSS at start is read 1 s after READY=1; the idle figure after the $SESSIONS sessions joined and settled."
  echo "plain: a single node with the default gateway (health, metrics); all: a mesh node (embedded NATS"
  echo "server with JetStream and a cluster listener, alone), the gateway and an OAuth2 realm."
  echo "VmRSS counts the pages of the binary the process touched (file-backed, shared by every process"
  echo "running it, reclaimable); RssAnon, the process's own memory, is the anonymous column."
  echo "<!-- footprint:end -->"
} >bench/footprint.md

# Replace the section in RESULTS.md, or append it.
if grep -q '<!-- footprint:begin' bench/RESULTS.md; then
  awk 'FNR == NR { sec = sec $0 "\n"; next }
       /<!-- footprint:begin/ { printf "%s", sec; skip = 1; next }
       /<!-- footprint:end/ { skip = 0; next }
       !skip { print }' bench/footprint.md bench/RESULTS.md >"$OUT/RESULTS.md"
  cp "$OUT/RESULTS.md" bench/RESULTS.md
else
  { echo; cat bench/footprint.md; } >>bench/RESULTS.md
fi
say "== wrote bench/footprint.md and its section in bench/RESULTS.md"
cat bench/footprint.md
