#include "spec_changes.hpp"

#include <map>

#include "option_schema.hpp"

namespace sempre {

std::vector<std::string> spec_changes(const AppSpec& before, const AppSpec& after) {
  const MonitorOptions& a = before.monitor;
  const MonitorOptions& b = after.monitor;
  std::vector<std::string> changes;
  // The keys the option schema leaves to each reader, then its rows.
  if (before.name != after.name) changes.emplace_back("name");
  if (a.argv != b.argv) changes.emplace_back("cmd");
  if (a.cwd != b.cwd) changes.emplace_back("cwd");
  if (a.logs.out_path != b.logs.out_path) changes.emplace_back("out");
  if (a.logs.err_path != b.logs.err_path) changes.emplace_back("err");
  if (a.watch != b.watch) changes.emplace_back("watch");
  for (const OptionRow& row : option_rows()) {
    if (!same_value(row, before, after)) changes.emplace_back(row.key);
  }
  auto vars = [](const std::vector<std::string>& env) {
    std::map<std::string, std::string> out;
    for (const auto& kv : env) {
      const auto eq = kv.find('=');
      out[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    return out;
  };
  const auto va = vars(before.monitor.env);
  const auto vb = vars(after.monitor.env);
  for (const auto& [k, v] : vb) {
    if (auto it = va.find(k); it == va.end() || it->second != v) changes.push_back("env." + k);
  }
  for (const auto& [k, v] : va) {
    if (!vb.contains(k)) changes.push_back("env." + k);
  }
  return changes;
}

}  // namespace sempre
