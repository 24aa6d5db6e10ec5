// What the fuzz targets share: a broken property stops the run the way a
// crash does, so that libFuzzer keeps the input that broke it; a known
// finding is passed over, so that the fuzzing goes on past it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace sempre::fuzz {

// Aborts, naming the property and what it was about, unless `holds`.
inline void require(bool holds, std::string_view property, std::string_view detail = {}) {
  if (holds) return;
  std::fprintf(stderr, "fuzz: property broken: %.*s\n%.*s\n", static_cast<int>(property.size()),
               property.data(), static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// Whether the targets pass over the inputs of known findings, each kept in
// tests/fuzz/crashes/ (see the README there) until it is fixed: yes, unless
// SEMPRE_FUZZ_KNOWN=1, with which those inputs reproduce.
inline bool pass_over_known() {
  static const bool pass = [] {
    const char* known = std::getenv("SEMPRE_FUZZ_KNOWN");
    return known == nullptr || std::string_view(known) != "1";
  }();
  return pass;
}

}  // namespace sempre::fuzz
