// Fuzzes the config files: the input is read as an apps.toml (parse_apps)
// and, written to a temporary file, as SEMPRE_HOME/config.toml
// (load_daemon_settings, load_app_defaults, and the [defaults] beneath an
// apps file).
//
// Properties besides "no crash, no leak, no undefined behaviour":
//   - every error has a message;
//   - the apps a file gives are what to_toml() of them reads back to
//     (`sempre save` writes a file that starts the same apps).
#include <toml++/toml.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "app_config.hpp"
#include "fuzz/fuzz_util.hpp"
#include "test_util.hpp"

namespace {

using sempre::ConfigError;
using sempre::fuzz::require;
namespace fs = std::filesystem;

const std::vector<std::string> kBaseEnv = {"PATH=/usr/bin:/bin", "HOME=/home/fuzz", "LANG=C"};
constexpr std::string_view kOneApp = "[[app]]\nname = \"web\"\ncmd = \"python3 -m http.server\"\n";

void check_errors(const std::vector<ConfigError>& errors) {
  for (const ConfigError& e : errors) {
    require(!e.message.empty(), "a config error has a message", e.str());
    require(e.line >= 0 && e.column >= 0, "a config error's position is not negative", e.str());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Relative paths in the input resolve here; nothing is written but config.toml.
  static const sempre::test::TempDir dir;
  const std::string apps_path = dir.file("apps.toml");
  const std::string home_config = dir.file("config.toml");
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const sempre::AppsFile file = sempre::parse_apps(text, apps_path, kBaseEnv);
  check_errors(file.errors);
  if (file.ok()) {
    const std::string saved = sempre::to_toml(file.apps);
    const sempre::AppsFile again = sempre::parse_apps(saved, apps_path, kBaseEnv);
    require(again.ok(), "what to_toml() writes parses",
            saved + (again.errors.empty() ? "" : again.errors[0].str()));
    require(again.apps == file.apps, "what to_toml() writes reads back to the same apps", saved);
  }

  sempre::test::write_file(home_config, std::string(text));
  check_errors(sempre::load_daemon_settings(home_config).errors);
  check_errors(sempre::load_app_defaults(home_config, kBaseEnv).errors);
  check_errors(sempre::parse_apps(kOneApp, apps_path, kBaseEnv, home_config).errors);
  return 0;
}
