#!/usr/bin/env bash
# Builds sempre and runs every test, twice: a normal build with warnings as
# errors, then a Debug build under AddressSanitizer and UndefinedBehaviorSanitizer;
# then replays and briefly fuzzes the libFuzzer targets (tests/fuzz/run.sh).
#
#   bash tests/run.sh           every pass
#   bash tests/run.sh --quick   skip the sanitizer and fuzz passes
#
# Exits non-zero when any build or test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

jobs="$(nproc)"

section() {
  printf '\n==================== %s ====================\n' "$*"
}

section "Dependencies"
bash .ci/deps

section "Format: every source as .clang-format lays it out"
# A check, not a reformat: `clang-format -i FILE` fixes what it names.
mapfile -t sources < <(find cli common config daemon monitor tests examples \
  \( -name '*.cpp' -o -name '*.hpp' \) -type f | sort)
clang-format --dry-run --Werror "${sources[@]}"

section "Build: build-test/ (RelWithDebInfo, -Werror)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEMPRE_WERROR=ON
cmake --build build-test -j"$jobs"

section "Tests: build-test/"
ctest --test-dir build-test --output-on-failure --no-tests=error -j2 --timeout 120

if [ "$quick" -eq 1 ]; then
  section "Skipped the sanitizer pass (--quick)"
else
  section "Build: build-asan/ (Debug, ASan + UBSan, -Werror)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSEMPRE_SANITIZE=ON -DSEMPRE_WERROR=ON
  cmake --build build-asan -j"$jobs"

  section "Tests: build-asan/ (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --no-tests=error -j2 --timeout 120

  section "Fuzz: build-fuzz/ (clang-14, libFuzzer, seeds replayed, 10 s a target)"
  FUZZ_SECONDS=10 bash tests/fuzz/run.sh
fi

section "All tests passed"
