#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang-14 into build-fuzz/,
# replays each one's seed corpus (ctest), then fuzzes each in turn.
#
#   bash tests/fuzz/run.sh                     every target, 20 s each
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh    the longer run (docs/fuzzing.md)
#   bash tests/fuzz/run.sh protocol state      only these targets
#   FUZZ_SEED=0 bash tests/fuzz/run.sh         a random seed (default: 1, the
#                                              same inputs on every run)
#
# Prints the executions of each target. Exits non-zero when the build fails,
# or a seed or a fuzzed input crashes, leaks, hangs (-timeout) or breaks a
# property; the input is kept in build-fuzz/artifacts/NAME/ and the output in
# build-fuzz/NAME.log. What the fuzzing finds is kept in build-fuzz/corpus/NAME/,
# for the next run to start from; the seeds in tests/fuzz/corpus/ are never
# written.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-20}"
# The same inputs on every run (FUZZ_SEED=0: a new random seed each time).
seed="${FUZZ_SEED:-1}"
build=build-fuzz
all=(protocol config state option_text)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
  case " ${all[*]} " in
    *" $t "*) ;;
    *) echo "fuzz/run.sh: unknown target: $t (targets: ${all[*]})" >&2; exit 2 ;;
  esac
done

# No -Werror: clang-14 warns where GCC does not (docs/fuzzing.md), and a
# warning is the other builds' to refuse.
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -DSEMPRE_FUZZ=ON -DSEMPRE_TESTS=OFF \
  -DSEMPRE_WERROR=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/%/_fuzz}"

pattern="$(IFS='|'; echo "${targets[*]}")"
ctest --test-dir "$build" --output-on-failure --no-tests=error -R "^Fuzz\.($pattern)\."

# The config and state targets write files; a tmpfs keeps that from being
# the fuzzing's bottleneck.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  log="$build/$t.log"
  status=ok
  start=$SECONDS
  "$build/tests/fuzz/${t}_fuzz" -max_total_time="$seconds" -seed="$seed" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" "${dict[@]}" \
    "$build/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || status=FAILED
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  printf '%-12s %12s executions in %s s, corpus %s files: %s\n' "$t" "${runs:-?}" \
    "$((SECONDS - start))" \
    "$(find "$build/corpus/$t" -type f | wc -l)" "$status"
  if [ "$status" != ok ]; then
    failed+=("$t")
    grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: property|artifact_prefix|Test unit written)' "$log" |
      sed 's/^/    /' || true
    echo "    full output: $log"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
