#!/usr/bin/env bash
# Installs a complete build into a temporary prefix, then builds and runs a
# small program against it twice: with find_package(sempre) and with
# `pkg-config sempre`. Each run must supervise a child and see it exit.
#
#   bash tests/install/install_test.sh BUILD_DIR CMAKE CXX VERSION [FLAGS]
#
# FLAGS go to the consumer's compile and link: the sanitizer flags of a
# -DSEMPRE_SANITIZE=ON build, whose library needs their runtime.
set -euo pipefail

build="$1" cmake="$2" cxx="$3" version="$4" flags="${5:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

fail() {
  echo "install_test: $*" >&2
  exit 1
}

"$cmake" --install "$build" --prefix "$prefix" >/dev/null

for header in "$root"/monitor/include/sempre/*.hpp; do
  name="include/sempre/$(basename "$header")"
  [ -f "$prefix/$name" ] || fail "not installed: $name"
done
config="$(find "$prefix" -name sempreConfig.cmake)"
[ -n "$config" ] || fail "not installed: sempreConfig.cmake"
[ -f "${config%/*}/sempreConfigVersion.cmake" ] || fail "not installed: sempreConfigVersion.cmake"
pc="$(find "$prefix" -name sempre.pc)"
[ -n "$pc" ] || fail "not installed: sempre.pc"

echo "== find_package(sempre CONFIG)"
"$cmake" -S "$here" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  -DSEMPRE_EXPECTED_VERSION="$version" >"$tmp/cmake.log" ||
  { cat "$tmp/cmake.log"; fail "configuring the consumer failed"; }
grep -q "^sempre_DIR:PATH=$prefix/" "$tmp/cmake/CMakeCache.txt" ||
  fail "find_package found a sempre outside $prefix"
"$cmake" --build "$tmp/cmake"
"$tmp/cmake/consumer"

echo "== pkg-config sempre"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH="$(dirname "$pc")"
[ "$(pkg-config --modversion sempre)" = "$version" ] || fail "sempre.pc: version is not $version"
libdir="$(pkg-config --variable=libdir sempre)"
# shellcheck disable=SC2046,SC2086  # the flags are word lists
"$cxx" -std=c++20 -Wall -Wextra -Werror $flags -o "$tmp/consumer" "$here/consumer.cpp" \
  $(pkg-config --cflags --libs sempre) -Wl,-rpath,"$libdir"
"$tmp/consumer"
