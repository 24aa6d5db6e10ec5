// Fuzzes state.json as the daemon reads it at start: the input is written to
// a state file in a temporary directory and loaded with load_state(), which
// sets an unusable file aside (PATH.bad-<time>); the directory is emptied
// after every input.
//
// Properties besides "no crash, no leak, no undefined behaviour":
//   - a readable file always loads: as a state, or set aside with a warning
//     (and then it is no longer at PATH);
//   - a file that stays at PATH with warnings (entries left out) has a copy
//     of its bytes beside it (PATH.bad-<time>);
//   - a state that loads, saved and loaded again, saves the same bytes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.hpp"
#include "state_store.hpp"
#include "test_util.hpp"

namespace {

using sempre::fuzz::require;
namespace fs = std::filesystem;

// What save_state() writes for `state`, by way of the file `path`.
std::string saved_text(const std::string& path, const sempre::SavedState& state) {
  const sempre::Status saved = sempre::save_state(path, state);
  require(saved.ok(), "a loaded state can be saved", saved.ok() ? "" : saved.error().message);
  return sempre::test::read_file(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const sempre::test::TempDir dir;
  const std::string path = dir.file("state.json");
  sempre::test::write_file(path, std::string(reinterpret_cast<const char*>(data), size));

  auto loaded = sempre::load_state(path);
  require(loaded.ok(), "a readable state file loads or is set aside",
          loaded.ok() ? "" : loaded.error().message);
  const std::string said = loaded->warnings.empty() ? "" : loaded->warnings.front();
  if (!fs::exists(path)) {
    require(!loaded->warnings.empty(), "a state file set aside is said", "");
  } else {
    if (!loaded->warnings.empty()) {
      bool copied = false;
      for (const auto& entry : fs::directory_iterator(dir.path())) {
        if (entry.path().filename().string().rfind("state.json.bad-", 0) == 0) {
          copied = copied || sempre::test::read_file(entry.path()) ==
                                 std::string(reinterpret_cast<const char*>(data), size);
        }
      }
      require(copied, "a state file with entries left out is copied first", said);
    }
    const std::string once = saved_text(dir.file("once.json"), loaded->state);
    auto again = sempre::load_state(dir.file("once.json"));
    require(again.ok() && again->warnings.empty(), "a saved state loads",
            again.ok() ? (again->warnings.empty() ? "" : again->warnings.front())
                       : again.error().message);
    require(saved_text(dir.file("twice.json"), again->state) == once,
            "a saved state loads back to the same state", once);
  }

  for (const auto& entry : fs::directory_iterator(dir.path())) fs::remove(entry.path());
  return 0;
}
