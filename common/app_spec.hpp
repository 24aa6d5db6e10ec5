// AppSpec: everything needed to run and supervise one app under the daemon,
// whether it came from the command line or (later) a config file.
#pragma once

#include <filesystem>
#include <string>

#include "sempre/options.hpp"

namespace sempre {

struct AppSpec {
  std::string name;
  MonitorOptions monitor;
  // Whether adding the app starts it (--no-autostart, `autostart = false`:
  // it is added stopped, wanted down, as `sempre save` records a stopped app).
  bool autostart = true;

  bool operator==(const AppSpec&) const = default;
};

// The name an app gets when none is given: the program's base name without
// its extension ("/srv/app/server.js" -> "server"), as forever and PM2 do.
inline std::string default_app_name(const std::string& program) {
  std::string base = std::filesystem::path(program).filename().string();
  if (base.empty()) base = program;
  const auto dot = base.find('.');
  if (dot != std::string::npos && dot > 0) base.erase(dot);
  return base;
}

}  // namespace sempre
