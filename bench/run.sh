#!/usr/bin/env bash
# Measures sempre beside the peer process managers with the shared harness
# (../shared/bench, beside this repository): footprint, control latency,
# restart latency, bulk start, log capture with and without rotation, idle CPU.
#
#   bash bench/run.sh                    quick look: sempre alone, tiny sizes (~5 min)
#   bash bench/run.sh -r 3 -m "sempre pm2 supervisord s6"   full comparison
#
# Builds sempre first (build/). Results land in $PEERS_ROOT (default /tmp/peers)/runs/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
harness="$root/../shared/bench/peers.sh"
[ -f "$harness" ] || { echo "bench/run.sh: no harness at $harness" >&2; exit 2; }
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target sempre sempred >/dev/null
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-q -r 1 -m sempre)
SEMPRE_BIN="$root/build/sempre" exec bash "$harness" "${args[@]}"
