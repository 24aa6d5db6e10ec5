// AppManager: the daemon's apps. Owns one Monitor per app, answers every
// request of the control protocol, and persists the apps to state.json on
// every change. Used on the daemon's single io thread.
//
// It is assembled from parts, each with its own unit test: the AppRegistry
// (records, ids, targets), the reload planner (what a config file changes),
// Subscriptions (logs -f, events) and ConfigSources (remembered and watched
// files). What is left here is the doing: the request handlers, and carrying
// out plans with the apps' Monitors.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <vector>

#include "control_server.hpp"
#include "home.hpp"
#include "sempre/monitor.hpp"

namespace spdlog {
class logger;
}

namespace sempre {

class KeeperLink;

class AppManager final : public RequestHandler {
 public:
  // `seams` reach every app's Monitor, and the clock also the config files'
  // watchers: tests pass a fake clock and launcher; a null member is the
  // real one. REQUIRES: what they point to outlives the AppManager.
  AppManager(boost::asio::any_io_executor executor, HomePaths paths,
             std::shared_ptr<spdlog::logger> log, MonitorSeams seams = {});
  AppManager(const AppManager&) = delete;
  AppManager& operator=(const AppManager&) = delete;
  ~AppManager() override;

  // With a keeper (sempred's normal mode), every run is told to it, and
  // restore() takes over the runs it kept. Call before restore().
  // REQUIRES: `keeper` outlives the AppManager.
  void set_keeper(KeeperLink* keeper);

  // Runs after a `reexec` request was answered: the daemon should stop
  // serving, release_all(), and let the keeper start the next worker.
  void set_on_reexec(std::function<void()> on_reexec);
  // Saves state.json and lets every app's run go (Monitor::release), for
  // the next worker to take over.
  void release_all();

  // Loads state.json and starts every app wanted up. A run the keeper kept
  // for the last worker is taken over instead (same pid, same pipes; one
  // that ended meanwhile is handled by its restart policy). A child of an
  // earlier daemon that still runs (same pid and start time) but was not
  // kept is stopped first, so that no app runs twice.
  void restore();

  void handle(const protocol::Request& request, const std::shared_ptr<Session>& session) override;

  // Stops every app (kill signal, then SIGKILL after its kill-timeout)
  // without changing whether it is wanted up, so that the next daemon
  // starts them again; `done` runs when all are down.
  void shutdown(std::function<void()> done);

  // Reloads every remembered config file, as `sempre reload` would (SIGHUP).
  // A file with an error is reported in the log and changes nothing.
  void reload_sources();

  // Runs after a `kill` request has stopped every app: the daemon should exit.
  void set_on_kill(std::function<void()> on_kill);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sempre
