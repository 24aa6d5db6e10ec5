// FileWatcher: inotify on a set of paths (directories recursively, new
// subdirectories included), debounced, for `--watch`.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sempre/clock.hpp"
#include "sempre/export.hpp"
#include "sempre/result.hpp"
#include "sempre/units.hpp"

namespace sempre {

class SEMPRE_EXPORT FileWatcher {
 public:
  struct Options {
    std::vector<std::string> paths;         // files or directories
    std::vector<std::string> ignore_globs;  // fnmatch globs
    std::vector<std::string> ignore_paths;  // exact files never reported (the app's logs)
    Millis debounce{200};
  };

  // Ignored, besides `ignore_globs` and `ignore_paths`: every path with a
  // component starting with '.', and the globs listed in a `.sempreignore`
  // file at the root of each watched directory (one per line, '#' comments).
  // A glob matches a path relative to its watch root or any base name.
  // `on_change(path)` is called on the executor once per burst of changes,
  // `debounce` after the last one, with the first path that changed.
  // Fails with kNotFound when a path does not exist and kInvalidArgument when
  // `paths` is empty. REQUIRES: `clock` outlives the watcher. Destroying the
  // watcher cancels a pending call.
  static Result<std::unique_ptr<FileWatcher>> create(
      boost::asio::any_io_executor executor, Clock& clock, const Options& options,
      std::function<void(const std::string&)> on_change);

  FileWatcher(const FileWatcher&) = delete;
  FileWatcher& operator=(const FileWatcher&) = delete;
  virtual ~FileWatcher() = default;

 protected:
  FileWatcher() = default;
};

}  // namespace sempre
