// KeeperLink: the worker's side of the keeper (keeper.hpp). It reads what
// the keeper hands over when the worker starts (the entries it holds, the
// exits it reaped), then keeps the keeper told of every run (RunKeeper) and
// passes on the exit statuses of adopted processes (ExitStatusSource). Used
// on the daemon's io thread; never blocks it, except once at start-up
// (open) and once at the end (finish), each with a deadline.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "os.hpp"
#include "sempre/launcher.hpp"
#include "sempre/monitor.hpp"
#include "sempre/result.hpp"

namespace spdlog {
class logger;
}

namespace sempre {

// What the keeper holds for one run of an app: its pipes' read ends (stdout,
// stderr) and where the run stands. "pending": the pipes are made and the
// spawn may have happened; "pid=P start=T": the run's main process and its
// start time (field 22 of /proc/P/stat); "pid=P start=T code=N" (or
// "signal=N"): that process ended, and the worker reaped it, with that
// status, while the run was not over yet (start=0: no longer known).
struct KeptRun {
  std::optional<pid_t> pid;
  std::uint64_t start_time = 0;
  bool starting = false;  // " starting": not ready yet (RunKeeper::keep_ready)
  std::optional<ExitStatus> exit;

  std::string text() const;
  static std::optional<KeptRun> parse(std::string_view text);
};

class KeeperLink {
 public:
  struct Entry {
    std::string text;
    std::vector<os::UniqueFd> fds;
  };

  // Takes `fd`, the worker's end of the keeper's socket, and reads the
  // hand-over, waiting at most `limit` for it.
  static Result<std::unique_ptr<KeeperLink>> open(
      boost::asio::any_io_executor executor, int fd, std::shared_ptr<spdlog::logger> log,
      std::chrono::milliseconds limit = std::chrono::seconds(10));
  KeeperLink(const KeeperLink&) = delete;
  KeeperLink& operator=(const KeeperLink&) = delete;
  ~KeeperLink();

  // The keeper's pid; 0 once it is gone.
  pid_t keeper_pid() const;
  // Runs once if the keeper goes away (it was killed): the worker is then
  // the daemon on its own.
  void on_lost(std::function<void()> handler);
  // The entries handed over, by name; once (later calls return none).
  std::map<std::string, Entry> take_entries();

  void keep(const std::string& name, const std::string& text, std::span<const int> fds = {});
  void drop(const std::string& name);
  // Tells the keeper "ready" (serving), without waiting.
  void ready();
  // Sends what is queued and then `verb` ("restart" or "exit"), waiting at
  // most a second: the worker is about to exit.
  void finish(std::string_view verb);

  // Exit statuses of processes the keeper reaped, for Launcher::adopt. One
  // that does not come within a few seconds is reported unknown.
  ExitStatusSource exit_source();
  // A RunKeeper that keeps the runs of one app under `name`.
  std::unique_ptr<RunKeeper> run_keeper(std::string name);
  // The start time of the main process of the run kept as `name`, taken
  // over by this worker: told to the keeper again if that process ends.
  void note_start(const std::string& name, std::uint64_t start_time);

  class Impl;  // keeper_link.cpp

 private:
  explicit KeeperLink(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace sempre
