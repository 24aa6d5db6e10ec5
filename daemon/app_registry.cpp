#include "app_registry.hpp"

#include <algorithm>
#include <cassert>

namespace sempre {

pid_t App::pid() const { return monitor ? monitor->status().pid : 0; }

std::string check_app_name(const std::string& name) {
  if (name.empty()) return "the app name must not be empty";
  if (name == "all") return "\"all\" cannot name an app: it means every app";
  if (name.find('/') != std::string::npos || name == "." || name == "..") {
    return "invalid app name \"" + name + "\": it must not contain '/'";
  }
  if (name.find_first_not_of("0123456789") == std::string::npos) {
    return "invalid app name \"" + name + "\": a number would read as an id or a pid";
  }
  return {};
}

void AppRegistry::skip_ids_below(std::uint64_t next) { next_id_ = std::max(next_id_, next); }

App& AppRegistry::add(AppSpec spec) { return add_with_id(next_id_, std::move(spec)); }

App& AppRegistry::add_with_id(std::uint64_t id, AppSpec spec) {
  assert(!apps_.contains(id));
  auto app = std::make_unique<App>();
  app->id = id;
  app->spec = std::move(spec);
  App& record = *app;
  apps_[id] = std::move(app);
  next_id_ = std::max(next_id_, id + 1);
  return record;
}

std::unique_ptr<App> AppRegistry::remove(std::uint64_t id) {
  auto it = apps_.find(id);
  if (it == apps_.end()) return nullptr;
  std::unique_ptr<App> app = std::move(it->second);
  apps_.erase(it);
  return app;
}

std::unique_ptr<App> AppRegistry::withdraw(std::uint64_t id) {
  std::unique_ptr<App> app = remove(id);
  if (app != nullptr && next_id_ == id + 1) next_id_ = id;
  return app;
}

App* AppRegistry::find_id(std::uint64_t id) {
  auto it = apps_.find(id);
  return it == apps_.end() ? nullptr : it->second.get();
}

App* AppRegistry::find_name(const std::string& name) {
  for (auto& [id, app] : apps_) {
    if (app->spec.name == name) return app.get();
  }
  return nullptr;
}

Result<std::vector<App*>> AppRegistry::resolve(const std::vector<std::string>& targets) {
  std::vector<App*> found;
  auto add_once = [&found](App* app) {
    if (std::find(found.begin(), found.end(), app) == found.end()) found.push_back(app);
  };
  for (const std::string& target : targets) {
    if (target == "all") {
      for (auto& [id, app] : apps_) add_once(app.get());
      continue;
    }
    App* match = find_name(target);
    if (match == nullptr && !target.empty() &&
        target.find_first_not_of("0123456789") == std::string::npos && target.size() < 19) {
      const auto number = std::stoull(target);
      match = find_id(number);
      // Else the pid of a running app's main process: an app that does not
      // run has pid 0, which must never match "0".
      for (auto it = apps_.begin(); match == nullptr && number != 0 && it != apps_.end(); ++it) {
        const pid_t pid = it->second->pid();
        if (pid > 0 && static_cast<std::uint64_t>(pid) == number) match = it->second.get();
      }
    }
    if (match == nullptr) {
      return Error{ErrorKind::kNotFound, "no app matches \"" + target + "\""};
    }
    add_once(match);
  }
  std::sort(found.begin(), found.end(), [](App* a, App* b) { return a->id < b->id; });
  return found;
}

std::vector<App*> AppRegistry::all() {
  std::vector<App*> apps;
  apps.reserve(apps_.size());
  for (auto& [id, app] : apps_) apps.push_back(app.get());
  return apps;
}

}  // namespace sempre
