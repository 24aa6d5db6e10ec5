#!/usr/bin/env bash
# Builds sempre and shows it keeping servers running.
#
#   bash examples/demo.sh            build, start examples/demo.toml under the daemon,
#                                    stream its lifecycle events (Ctrl-C ends the demo)
#   bash examples/demo.sh --run      build, then supervise one demo server in the
#                                    foreground with `sempre run` instead
#   bash examples/demo.sh --no-run   build only
#
# The daemon of the demo keeps its state in build/demo-home (SEMPRE_HOME), so
# it does not touch ~/.sempre. The web server answers on http://127.0.0.1:8080
# and crashes after every 3 requests, so a few curls show sempre restart it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode=daemon
for arg in "$@"; do
  case "$arg" in
    --no-run) mode=none ;;
    --run) mode=run ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

echo "==> Checking build dependencies"
bash .ci/deps

echo "==> Building into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"

case "$mode" in
  none)
    echo "==> Built build/sempre, build/sempred and build/sempre_demo_server"
    exit 0
    ;;
  run)
    port="${PORT:-8080}"
    echo "==> Try: curl 127.0.0.1:${port} (it crashes after every 3 requests and sempre restarts it); Ctrl-C stops it."
    exec build/sempre run --name demo --restart-delay 1s -- \
      build/sempre_demo_server --port "$port" --crash-after 3
    ;;
esac

export SEMPRE_HOME="$root/build/demo-home"
sempre() { "$root/build/sempre" "$@"; }
trap 'echo; echo "==> Stopping the demo: sempre kill"; sempre kill' EXIT
trap 'exit 0' INT TERM

echo "==> sempre start examples/demo.toml"
sempre start examples/demo.toml
echo "==> sempre list"
sempre list
cat <<MSG
==> Try, in another terminal:
      curl 127.0.0.1:8080                 (the 3rd request crashes it; watch the restart below)
      SEMPRE_HOME=$SEMPRE_HOME build/sempre list
      SEMPRE_HOME=$SEMPRE_HOME build/sempre logs ticker -f
==> Lifecycle events follow (sempre events); Ctrl-C ends the demo and stops every app.
MSG
sempre events
