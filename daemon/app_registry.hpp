// AppRegistry: the daemon's apps by id, and the rules for naming them: which
// ids are handed out, which names are allowed, and what a TARGET of the
// command line (name, id, pid or "all") means. It decides nothing about
// running them: an App's Monitor is made and driven by AppManager.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "app_spec.hpp"
#include "sempre/monitor.hpp"
#include "sempre/result.hpp"

namespace sempre {

// One app of the daemon: what it is (spec, source) and the Monitor that runs
// it (which also owns whether it is wanted up). Owned by the AppRegistry; used on the
// daemon's io thread.
struct App {
  std::uint64_t id = 0;
  AppSpec spec;
  std::string source;  // the config file it came from; empty: the command line
  // What tells the keeper of the Monitor's runs, and the name it keeps them
  // under; null when the daemon runs without a keeper. Declared before the
  // Monitor, which uses it until it is destroyed.
  std::unique_ptr<RunKeeper> run_keeper;
  std::string keep_name;
  // Made by AppManager with the record (a test of the registry may leave it null).
  std::unique_ptr<Monitor> monitor;
  // Called with each event until they return true (--wait).
  std::vector<std::function<bool(const Event&)>> waiters;
  // Restarts of earlier Monitors of this app (before a reload replaced
  // it, or under an earlier daemon): the count shown adds the current one's.
  int restarts_before = 0;
  // The same for the bytes of output its logs could not take.
  std::uint64_t out_dropped_before = 0;
  std::uint64_t err_dropped_before = 0;
  // CPU% over a window the daemon owns, the same for every client that
  // asks within it: the last sample and the percentage it gave.
  std::chrono::steady_clock::time_point cpu_at{};
  std::uint64_t cpu_ms = 0;
  pid_t cpu_pid = 0;
  double cpu_percent = 0;
  // A process of an earlier daemon (one without a keeper) still being
  // stopped before the app starts again: its pid, and what waits for that.
  pid_t stale_pid = 0;
  std::vector<std::function<void()>> after_stale;

  // The pid of its main process; 0 when none runs (or it has no Monitor).
  pid_t pid() const;
};

// Why `name` cannot name an app ("" when it can). Names double as log file
// names and must not read as an id, a pid or `all`.
std::string check_app_name(const std::string& name);

// The apps by id, and the next id to hand out. Ids are never reused, with
// one exception: an app whose first start failed gives its id back when it
// was the latest one, so that a typo in a command leaves no gap. Not
// thread-safe: used on the daemon's io thread. Non-copyable.
class AppRegistry {
 public:
  AppRegistry() = default;
  AppRegistry(const AppRegistry&) = delete;
  AppRegistry& operator=(const AppRegistry&) = delete;

  // The id the next add() hands out; 1 in a new registry.
  std::uint64_t next_id() const { return next_id_; }
  // Ids below `next` are taken (state.json's next_id): next_id() becomes at
  // least `next`.
  void skip_ids_below(std::uint64_t next);

  // Adds an app under the next id, which then advances. Returns the record,
  // which stays at this address until it is removed.
  App& add(AppSpec spec);
  // Adds an app under `id` (restored from state.json); next_id() moves past
  // it. REQUIRES: no app has `id` (state.json holds each id once).
  App& add_with_id(std::uint64_t id, AppSpec spec);

  // Removes app `id` and hands its record to the caller (who decides when
  // its Monitor dies); null when there is no such app. Its id stays used.
  std::unique_ptr<App> remove(std::uint64_t id);
  // As remove(), for an app whose first start failed: when it holds the
  // latest id handed out, next_id() goes back to it (a failed start
  // consumes no id).
  std::unique_ptr<App> withdraw(std::uint64_t id);

  // The app with that id or name, or null.
  App* find_id(std::uint64_t id);
  App* find_name(const std::string& name);

  // Resolves TARGETs to apps, in id order, each once. A TARGET is, in this
  // order: an app's name; a number, as an id, else as the pid of a running
  // app's main process (never 0); or "all", every app. Fails with kNotFound
  // ("no app matches \"T\"") at the first TARGET that matches nothing.
  Result<std::vector<App*>> resolve(const std::vector<std::string>& targets);

  // Removes every app; their Monitors die with them (and kill what runs).
  void clear() { apps_.clear(); }

  // Every app, in id order.
  std::vector<App*> all();
  std::size_t size() const { return apps_.size(); }

 private:
  std::map<std::uint64_t, std::unique_ptr<App>> apps_;
  std::uint64_t next_id_ = 1;
};

}  // namespace sempre
