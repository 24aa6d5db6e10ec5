#include "reload_planner.hpp"

#include <algorithm>

#include "app_registry.hpp"
#include "spec_changes.hpp"

namespace sempre {
namespace {

const CurrentApp* find_name(const std::vector<CurrentApp>& apps, const std::string& name) {
  for (const CurrentApp& app : apps) {
    if (app.spec.name == name) return &app;
  }
  return nullptr;
}

bool has_name(const std::vector<AppSpec>& specs, const std::string& name) {
  return std::any_of(specs.begin(), specs.end(), [&](const AppSpec& s) { return s.name == name; });
}

ReloadPlan refused(PlanError::Kind kind, std::string message) {
  ReloadPlan plan;
  plan.error = PlanError{kind, std::move(message)};
  return plan;
}

}  // namespace

ReloadPlan plan_reload(const std::string& path, const std::vector<CurrentApp>& current,
                       std::vector<AppSpec> specs, ApplyMode mode,
                       const std::vector<std::string>& only) {
  const bool reload = mode == ApplyMode::kReload;
  for (const std::string& name : only) {
    if (!has_name(specs, name)) {
      return refused(PlanError::Kind::kUnknownOnly, "no app named \"" + name + "\" in " + path);
    }
  }
  if (!only.empty()) {
    std::erase_if(specs, [&](const AppSpec& s) {
      return std::find(only.begin(), only.end(), s.name) == only.end();
    });
  }
  // Everything is checked before anything is planned: a file with one bad
  // app changes nothing.
  for (auto it = specs.begin(); it != specs.end(); ++it) {
    const AppSpec& spec = *it;
    if (auto problem = check_app_name(spec.name); !problem.empty()) {
      return refused(PlanError::Kind::kInvalidApp, path + ": " + problem);
    }
    if (auto st = validate(spec.monitor); !st) {
      return refused(PlanError::Kind::kInvalidApp,
                     path + ": app \"" + spec.name + "\": " + st.error().message);
    }
    // A file cannot hold one twice (its parser says so); a request could.
    if (std::any_of(specs.begin(), it, [&](const AppSpec& s) { return s.name == spec.name; })) {
      return refused(PlanError::Kind::kInvalidApp,
                     path + ": duplicate app name \"" + spec.name + "\"");
    }
    const CurrentApp* existing = find_name(current, spec.name);
    if (existing == nullptr || existing->spec == spec) continue;
    if (!reload || existing->source != path) {
      return refused(PlanError::Kind::kNameTaken,
                     "an app named \"" + spec.name + "\" already exists (id " +
                         std::to_string(existing->id) + ") with another spec; " +
                         (existing->source == path ? "use sempre reload " + path
                                                   : "delete it or rename the app in " + path));
    }
  }

  ReloadPlan plan;
  for (AppSpec& spec : specs) {
    PlannedApp planned;
    const CurrentApp* existing = find_name(current, spec.name);
    if (existing == nullptr) {
      planned.action = spec.autostart ? PlannedAction::kStart : PlannedAction::kAddStopped;
    } else if (existing->spec == spec) {
      planned.id = existing->id;
      planned.adopt = existing->source.empty();
      const bool start_again = !reload && !existing->up && spec.autostart;
      planned.action = start_again ? PlannedAction::kStartAgain : PlannedAction::kUnchanged;
    } else {
      planned.id = existing->id;
      planned.action = PlannedAction::kRestart;
      planned.changes = spec_changes(existing->spec, spec);
    }
    planned.spec = std::move(spec);
    plan.apps.push_back(std::move(planned));
  }
  if (reload) {
    for (const CurrentApp& app : current) {
      const bool kept = std::any_of(plan.apps.begin(), plan.apps.end(), [&](const PlannedApp& p) {
        return p.spec.name == app.spec.name;
      });
      if (app.source == path && !kept) plan.deletes.push_back({app.id, app.spec.name});
    }
  }
  return plan;
}

}  // namespace sempre
