// AppSpec: everything needed to run and supervise one app under the daemon,
// whether it came from the command line or (later) a config file.
#pragma once

#include <string>

#include "sempre/options.hpp"

namespace sempre {

struct AppSpec {
  std::string name;
  MonitorOptions monitor;

  bool operator==(const AppSpec&) const = default;
};

}  // namespace sempre
