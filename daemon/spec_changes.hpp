// What differs between two specs of one app, named as a config file names
// its keys. `sempre reload` prints it ("restarted web (cmd, env.PORT
// changed)") and the reload planner records it for every app it restarts.
#pragma once

#include <string>
#include <vector>

#include "app_spec.hpp"

namespace sempre {

// The keys of `after` whose value differs from `before`'s, in the order of
// the spec's wire form ("cmd", "kill_timeout", ...: a "_ms" suffix is
// dropped), then one "env.NAME" for each variable added or changed and each
// one removed. Empty when the specs are equal.
std::vector<std::string> spec_changes(const AppSpec& before, const AppSpec& after);

}  // namespace sempre
