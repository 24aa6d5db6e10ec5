// ConfigSources: the config files the daemon remembers. Each has the
// environment of the CLI that first started it (its apps keep it) and
// whether it is watched. SIGHUP reloads every one; a watched one is
// reloaded after every change on disk (debounced), through a FileWatcher
// this object owns. What a reload does is the owner's: this only says when
// and which file. Used on its executor's thread; the reload callback runs
// there too.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sempre/clock.hpp"
#include "sempre/file_watcher.hpp"
#include "state_store.hpp"

namespace spdlog {
class logger;
}

namespace sempre {

class ConfigSources {
 public:
  // Called with a remembered file and why it is reloaded ("SIGHUP",
  // "changed on disk").
  using Reload = std::function<void(const std::string& path, const std::string& why)>;

  // REQUIRES: `clock` outlives this object.
  ConfigSources(boost::asio::any_io_executor executor, Clock& clock,
                std::shared_ptr<spdlog::logger> log, Reload reload);
  ConfigSources(const ConfigSources&) = delete;
  ConfigSources& operator=(const ConfigSources&) = delete;
  // Stops watching; no reload runs afterwards.
  ~ConfigSources();

  // Remembers `path` with `env` (replacing what was remembered). Watching is
  // kept once asked for: `watch` false never stops it. A watcher is made
  // when first needed; when it cannot be (the file is gone), that is logged,
  // the file is still remembered, and the next remember() tries again.
  void remember(const std::string& path, std::vector<std::string> env, bool watch);

  // What is remembered of `path`, or null when nothing is.
  const SavedSource* find(const std::string& path) const;

  // Every remembered file, by path, as state.json keeps them.
  std::vector<SavedSource> saved() const;

  // Reloads every remembered file, by path, giving `why` (SIGHUP).
  void reload_all(const std::string& why);

 private:
  struct Source {
    SavedSource saved;
    std::unique_ptr<FileWatcher> watcher;
  };

  boost::asio::any_io_executor executor_;
  Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  Reload reload_;
  std::map<std::string, Source> sources_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sempre
