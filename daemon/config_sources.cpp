#include "config_sources.hpp"

#include <spdlog/spdlog.h>

namespace sempre {

ConfigSources::ConfigSources(boost::asio::any_io_executor executor, Clock& clock,
                             std::shared_ptr<spdlog::logger> log, Reload reload)
    : executor_(std::move(executor)),
      clock_(clock),
      log_(std::move(log)),
      reload_(std::move(reload)) {}

ConfigSources::~ConfigSources() = default;

void ConfigSources::remember(const std::string& path, std::vector<std::string> env, bool watch) {
  Source& source = sources_[path];
  source.saved.path = path;
  source.saved.env = std::move(env);
  source.saved.watch = source.saved.watch || watch;
  if (!source.saved.watch || source.watcher) return;
  FileWatcher::Options o;
  o.paths = {path};
  o.debounce = Millis{200};
  std::weak_ptr<bool> alive = alive_;
  auto watcher = FileWatcher::create(executor_, clock_, o, [this, alive, path](const std::string&) {
    if (!alive.expired()) reload_(path, "changed on disk");
  });
  if (!watcher) {
    log_->error("cannot watch {}: {}", path, watcher.error().message);
    return;
  }
  source.watcher = std::move(*watcher);
  log_->info("watching {} for changes", path);
}

const SavedSource* ConfigSources::find(const std::string& path) const {
  auto it = sources_.find(path);
  return it == sources_.end() ? nullptr : &it->second.saved;
}

std::vector<SavedSource> ConfigSources::saved() const {
  std::vector<SavedSource> out;
  for (const auto& [path, source] : sources_) out.push_back(source.saved);
  return out;
}

void ConfigSources::reload_all(const std::string& why) {
  // A reload may remember files: walk a copy of the paths.
  std::vector<std::string> paths;
  for (const auto& [path, source] : sources_) paths.push_back(path);
  for (const auto& path : paths) reload_(path, why);
}

}  // namespace sempre
