#include "spec_changes.hpp"

#include <boost/json.hpp>
#include <map>

#include "protocol.hpp"

namespace sempre {

std::vector<std::string> spec_changes(const AppSpec& before, const AppSpec& after) {
  namespace json = boost::json;
  const json::object a = protocol::to_json(before);
  const json::object b = protocol::to_json(after);
  std::vector<std::string> changes;
  for (const auto& [key, value] : b) {
    if (key == "env") continue;
    const json::value* old = a.if_contains(key);
    if (old == nullptr || *old != value) {
      std::string name(key);
      if (name.ends_with("_ms")) name.resize(name.size() - 3);  // the file's key
      changes.push_back(name);
    }
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
