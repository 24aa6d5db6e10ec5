// sempre::Monitor: supervises one child process.
//
// It spawns the child in its own session, restarts it by the policy of its
// MonitorOptions (with exponential backoff while it crash-loops), stops it by
// signalling its whole process group and escalating to SIGKILL, writes its
// stdout and stderr to rotated log files, restarts it when watched files
// change, and reports every lifecycle transition as a typed Event.
//
// A Monitor runs on the executor given to its constructor and must be used
// only from that executor's (single) thread. It owns no thread and no global
// state, and arms no timer while nothing is pending.
//
//   boost::asio::io_context io;
//   sempre::MonitorOptions options;
//   options.argv = {"python3", "-m", "http.server"};
//   sempre::Monitor monitor(io.get_executor(), options);
//   monitor.on_event([](const sempre::Event& e) { std::cerr << describe(e) << '\n'; });
//   monitor.start();
//   io.run();
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sempre/clock.hpp"
#include "sempre/events.hpp"
#include "sempre/export.hpp"
#include "sempre/launcher.hpp"
#include "sempre/options.hpp"
#include "sempre/result.hpp"

namespace sempre {

enum class OutputStream { kStdout, kStderr };

// The wanted state of an app: whether its supervisor means it to run. It is
// apart from the observed State: an app may be wanted up and stopped (its
// supervisor is shutting down, or has not started it yet), or wanted down
// and still stopping.
enum class Wanted { kDown, kUp };

// A snapshot of a Monitor, cheap to take.
struct MonitorStatus {
  State state = State::kStopped;
  bool wanted_up = false;
  pid_t pid = 0;           // 0 when no child runs
  int restarts = 0;        // every restart since the Monitor was made, manual ones included
  int crash_restarts = 0;  // consecutive crash-loop restarts now
  Millis uptime{0};        // of the current run; 0 when none
  std::optional<ExitStatus> last_exit;
  std::string last_error;  // why it failed, when it did
  std::string out_log;     // paths being written, empty when none
  std::string err_log;
  // Bytes of output that could not be written to the logs (disk full, the
  // log's directory not writable) and were dropped, since the Monitor was made.
  std::uint64_t out_dropped = 0;
  std::uint64_t err_dropped = 0;
  // How the current run's processes are held: the cgroup v2 directory of its
  // own, or empty for its process tree (see sempre/proc_stats.hpp).
  std::string cgroup;
};

// CPU and memory of the child's process group, from /proc.
struct MonitorUsage {
  double cpu_percent = 0;    // since the previous call (the first: since the run started)
  std::uint64_t cpu_ms = 0;  // total CPU time of the live group members
  std::uint64_t rss_bytes = 0;
  int processes = 0;
};

// Lets a supervisor's successor take its runs over (Monitor::adopt) after
// the supervisor died: a Monitor tells it of each run's output pipes before
// the spawn, of the pid once it is known, and of the run's end. A keeper
// holds the pipes' read ends elsewhere (another process), so that the child
// never writes into a pipe without a reader while nobody supervises it.
// Called on the Monitor's executor; must not call back into the Monitor.
class RunKeeper {
 public:
  virtual ~RunKeeper() = default;
  // Before the spawn: the read ends of the run's stdout and stderr pipes,
  // which the Monitor keeps; the keeper must duplicate what it holds on to.
  virtual void keep_pipes(int stdout_read_fd, int stderr_read_fd) = 0;
  // The same, with the run's notify socket (`--ready notify`), so that a
  // successor can still hear READY=1; by default the socket is not kept.
  virtual void keep_pipes_and_notify(int stdout_read_fd, int stderr_read_fd, int notify_fd) {
    (void)notify_fd;
    keep_pipes(stdout_read_fd, stderr_read_fd);
  }
  // The spawn succeeded: the run's main process, starting (not ready yet).
  virtual void keep_pid(pid_t pid) = 0;
  // The run became ready (its readiness check passed, or it lasted
  // min-uptime): a successor that takes it over need not check again.
  virtual void keep_ready(pid_t pid) { (void)pid; }
  // The run's main process ended, and was reaped, with `status`; the run is
  // not over until its group and output are. A successor that takes the
  // run over meanwhile can learn the status nowhere else.
  virtual void keep_exit(pid_t pid, ExitStatus status) {
    (void)pid;
    (void)status;
  }
  // The run is over (or its spawn failed): forget it.
  virtual void forget_run() = 0;
};

// The hooks of a Monitor into its host: a null member means the real one
// (tests pass a fake clock and launcher), or none (the keeper).
struct MonitorSeams {
  Clock* clock = nullptr;
  Launcher* launcher = nullptr;
  RunKeeper* keeper = nullptr;
  // A cgroup v2 directory to make each run's own cgroup in
  // (LaunchRequest::cgroup_parent); empty: the runs' process trees are
  // tracked instead.
  std::string cgroup_parent;
};

// A run of an earlier supervisor to take over (Monitor::adopt).
struct Adoption {
  pid_t pid = 0;                 // the main process, leader of its group
  std::uint64_t start_time = 0;  // field 22 of /proc/PID/stat when it was spawned
  int stdout_fd = -1;            // read ends of its output pipes, taken over; -1: none
  int stderr_fd = -1;
  Millis uptime{0};              // how long it has run
  ExitStatusSource exit_status;  // where its end is learned (Launcher::adopt)
  // False: it was still starting (RunKeeper::keep_ready never came), and
  // its readiness check is run again (tcp, exec, or notify on `notify_fd`)
  // or the rest of its min-uptime waited for; a notify check without its
  // socket cannot be, and such a run counts as ready.
  bool ready = true;
  int notify_fd = -1;  // the run's notify socket, taken over; -1: none
};

class SEMPRE_EXPORT Monitor {
 public:
  using HandlerId = std::uint64_t;
  using Done = std::function<void()>;

  using Seams = MonitorSeams;

  // Nothing starts until start(); the app is wanted down until then.
  // REQUIRES: validate(options) is ok.
  Monitor(boost::asio::any_io_executor executor, MonitorOptions options, Seams seams = {});
  // As above, with the wanted state given: an app restored as wanted up
  // reports wanted_up before (and whether or not) its start() comes, for
  // instance while a process of an earlier supervisor is stopped first.
  // Nothing starts until start() either way.
  Monitor(boost::asio::any_io_executor executor, MonitorOptions options, Wanted wanted,
          Seams seams = {});
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;
  // Kills a child that still runs (SIGKILL to its group) and reaps it.
  ~Monitor();

  // Wants the child up and spawns it now unless it already runs. Returns the
  // spawn error when the program cannot be executed (the state is then
  // kFailed and a `failed` event was emitted); ok otherwise, with the child
  // spawned (pid() != 0), a restart pending, or a stop under way after which
  // it spawns again. The same holds when it is called from an event handler:
  // the command runs at once, and its events reach the handlers after the
  // current one.
  Status start();

  // Wants the child down: sends kill-signal to its group, SIGKILL after
  // kill-timeout, cancels a pending restart. `done` runs (from the executor)
  // once no process of the group is left; at once when none was running.
  void stop(Done done = {});

  // Stops the child as stop() does, but it stays wanted up (wanted_up keeps
  // its value): what a supervisor does to its apps when it shuts down, so
  // that the next one starts them again. Nothing restarts the child until
  // start() or restart(). `done` runs as stop()'s does.
  void stop_keep_wanted(Done done = {});

  // Stops the child as stop() does, then spawns it again; a manual restart
  // never counts as a crash loop. `done` runs after the new spawn (or its
  // failure).
  void restart(Done done = {});

  // Takes over a run of an earlier supervisor, already spawned: the app is
  // wanted up and running, and the run goes on as if this Monitor had
  // started it (its output goes to the logs, appended; its end is handled by
  // the restart policy). A run that ended meanwhile is reported ended at
  // once, with its status, and its pipes are read to their end. Fails (and
  // closes the descriptors) when a run is under way already or the launcher
  // cannot adopt.
  Status adopt(Adoption adoption);

  // Lets the current run go without stopping it, for a successor to adopt:
  // an unfinished line read from it goes to its log as it is, the Monitor
  // stops reading its pipes, no event is reported, its RunKeeper is not told
  // (what it keeps stays kept), and destroying the Monitor afterwards leaves
  // the child running. The Monitor is then stopped, and wanted as it was.
  void release();

  // Sends `sig` to the child's process group. Fails when no child runs.
  Status signal(int sig);

  // Empties the current log files (rotated ones stay), whether or not a
  // child runs; a file that is not a regular one (/dev/null) is left alone.
  // Fails with the OS error of the first file that could not be emptied.
  Status flush_logs();

  MonitorStatus status() const;
  // Reads /proc; all zero when no child runs.
  MonitorUsage usage();
  const MonitorOptions& options() const;

  // Event handlers run on the executor in the order they were added, each
  // event once its transition is complete, events in the order they
  // happened. Adding or removing handlers from inside a handler is safe: a
  // handler added during a dispatch first sees the next event; one removed
  // is not called again, even in the current dispatch. A handler may give
  // any command (start, stop, restart...).
  HandlerId on_event(std::function<void(const Event&)> handler);
  // Each complete line of output (without its '\n'), as the child wrote it.
  HandlerId on_output(std::function<void(OutputStream, std::string_view)> handler);
  void remove_handler(HandlerId id);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sempre
