#!/usr/bin/env bash
# Builds sempre and runs the demo server under `sempre run` in the foreground.
#
#   bash examples/demo.sh            build, then supervise the demo server (Ctrl-C stops)
#   bash examples/demo.sh --no-run   build only
#
# PORT (default 8080) picks the port. The server exits with code 1 after every
# 3 requests, so each few requests show sempre's exit and restart events.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

run=1
for arg in "$@"; do
  case "$arg" in
    --no-run) run=0 ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

port="${PORT:-8080}"

echo "==> Checking build dependencies"
bash .ci/deps

echo "==> Building into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

if [ "$run" -eq 0 ]; then
  echo "==> Built build/sempre and build/sempre_demo_server"
  exit 0
fi

echo "==> Open http://127.0.0.1:${port} in a browser or run 'curl http://127.0.0.1:${port}' (it crashes after every 3 requests and sempre restarts it); press Ctrl-C to stop."
exec build/sempre run --name demo --restart-delay 1s -- \
  build/sempre_demo_server --port "$port" --crash-after 3
