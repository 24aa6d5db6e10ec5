// The reload planner: what `sempre start FILE` and `sempre reload FILE` do to
// the daemon's apps, decided from plain values before anything is done. A
// pure function: no Monitor, no process, no I/O. AppManager carries the plan
// out, and `reload --dry-run` answers with it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "app_spec.hpp"

namespace sempre {

// An app the daemon has, as the planner sees it.
struct CurrentApp {
  std::uint64_t id = 0;
  AppSpec spec;
  std::string source;  // the config file it came from; empty: the command line
  bool up = false;     // starting, running or in backoff
};

enum class ApplyMode {
  kStart,   // `start FILE`: add what is new, start what is stopped
  kReload,  // `reload FILE`: also restart what changed, delete what is gone
};

enum class PlannedAction {
  kStart,       // new: added and started
  kAddStopped,  // new with autostart = false: added, wanted down
  kStartAgain,  // there with this spec but not running (kStart mode, autostart): started
  kRestart,     // there from this file with another spec (kReload mode): restarted with it
  kUnchanged,   // there with this spec: left alone
};

// What happens to one app of the file.
struct PlannedApp {
  PlannedAction action = PlannedAction::kUnchanged;
  AppSpec spec;          // the file's
  std::uint64_t id = 0;  // the app already there; 0 for kStart and kAddStopped
  // kUnchanged, kStartAgain: an app of the command line with the file's
  // spec, which from now on belongs to the file.
  bool adopt = false;
  std::vector<std::string> changes;  // kRestart: spec_changes(current spec, file's)
};

// An app of the file that the file no longer has (kReload mode): stopped
// and deleted.
struct PlannedDelete {
  std::uint64_t id = 0;
  std::string name;
};

// Why a file cannot be applied at all; nothing is done.
struct PlanError {
  enum class Kind {
    kUnknownOnly,  // an `only` name the file does not have
    kInvalidApp,   // a bad name (or one given twice), or a spec that does not validate
    kNameTaken,    // an app of that name exists with another spec and may not change
  };
  Kind kind = Kind::kInvalidApp;
  std::string message;
};

struct ReloadPlan {
  std::vector<PlannedApp> apps;        // the file's apps (those of `only`), in its order
  std::vector<PlannedDelete> deletes;  // in id order
  std::optional<PlanError> error;      // set: the rest is empty and nothing may be done
};

// Plans applying config file `path`, whose apps are `specs` (their log
// paths filled in as the daemon runs them), to the apps `current` (in id
// order). With `only` non-empty just those apps of the file are considered,
// and, in kReload mode, the file's other apps count as gone. The first
// problem found, in the file's order (an unknown `only` name before
// anything), makes the plan an error: a bad name, a spec that does not
// validate, a name given twice, or an app of that name with another spec
// that is not this file's to reload.
ReloadPlan plan_reload(const std::string& path, const std::vector<CurrentApp>& current,
                       std::vector<AppSpec> specs, ApplyMode mode,
                       const std::vector<std::string>& only);

}  // namespace sempre
