// The keeper: the small process that makes sempred's own death invisible to
// the apps. `sempred` runs as two processes: the keeper, which holds the
// daemon lock and the control socket and never supervises anything itself,
// and its child, the worker, which is the daemon proper (AppManager, the
// control server, the logs). The keeper
//   - is a child subreaper: when the worker dies, the apps it spawned become
//     the keeper's children, and the keeper reaps them and keeps their exit
//     statuses for the next worker;
//   - holds descriptors for the worker (an fd store in the manner of
//     s6-fdholder and systemd's FDSTORE): the read ends of every app's output
//     pipes, so that an app never writes into a pipe without a reader while
//     no worker runs, and a line of text per entry (the run's pid);
//   - starts the next worker at once when one dies, and hands everything
//     over to it; `sempre daemon restart` and `upgrade` end the worker on
//     purpose for the same hand-over, with the binary now on disk;
//   - forwards TERM, INT and HUP to the worker, and exits after a worker
//     that exits on purpose (stop, kill).
// It is written with plain poll(2) and no library beyond libc, so that it is
// small enough to be obviously right. docs/ARCHITECTURE.md and sempred(8)
// describe the design.
//
// Keeper and worker speak over a SOCK_SEQPACKET socketpair, one message per
// datagram: a head line, an optional payload after '\n', and descriptors
// (SCM_RIGHTS).
//   worker -> keeper
//     keep NAME\nTEXT   (+ fds)  hold the fds (replacing those held under
//                                NAME) and the text; without fds only the
//                                text changes
//     drop NAME                  close and forget what is held under NAME
//     restart                    the worker is about to exit: start the next
//     upgrade                    the same, but the keeper first replaces
//                                itself with the binary now at its path
//                                (execve, same pid, every descriptor kept;
//                                resume_keeper() picks its state up)
//     exit                       the worker is about to exit for good
//   keeper -> worker, when the worker starts
//     hello VERSION KEEPER_PID
//     entry NAME\nTEXT  (+ fds)  one per name held
//     exit PID STATUS            one per process reaped but not yet reported
//     end
//   and then, as it reaps them: exit PID STATUS
// STATUS is "code N" or "signal N". The worker's exit code says the same as
// its last message, in case that message is lost: 0 is "exit", kRestartCode
// is "restart", anything else is a death.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "os.hpp"
#include "sempre/events.hpp"
#include "sempre/result.hpp"

namespace sempre::keeper {

inline constexpr int kVersion = 1;

// The exit code of a worker that hands its apps over to the next one.
inline constexpr int kRestartCode = 75;

// The largest message: a head and a payload of a few hundred bytes, and at
// most kMaxFds descriptors.
inline constexpr std::size_t kMaxMessage = 64 * 1024;
inline constexpr std::size_t kMaxFds = 16;

struct Message {
  std::string head;  // "keep NAME", "exit 123 code 0", ...
  std::string text;  // after the first '\n'; empty when none
  std::vector<os::UniqueFd> fds;

  // The head's first word, and the rest after one space.
  std::string_view verb() const;
  std::string_view argument() const;
};

// Sends one message. `nonblocking`: fails with EAGAIN rather than wait.
// Never raises SIGPIPE.
Status send_message(int socket, std::string_view head, std::string_view text,
                    std::span<const int> fds, bool nonblocking);

// Receives one message; nullopt when none is waiting (EAGAIN) on a
// non-blocking socket. Fails with kNotFound at end of stream (the peer is
// gone), kIo on an error. Received descriptors are close-on-exec.
Result<std::optional<Message>> receive_message(int socket);

std::string status_text(ExitStatus status);  // "code 0", "signal 9"

// Appends "[2026-12-03 07:00:00.123] [SOURCE] WHAT" to the log at `path`
// (sempred.log), and to stderr too when `to_stderr`: for what happens where
// the daemon's own logger does not run (the keeper, a worker that cannot
// start).
void append_log_line(const std::string& path, std::string_view source, std::string_view what,
                     bool to_stderr);
std::optional<ExitStatus> parse_status_text(std::string_view text);

// How the keeper runs the worker.
struct KeeperOptions {
  std::string program;            // sempred's path, looked up again at each start
  std::vector<std::string> args;  // the worker's arguments (without the descriptors)
  int listen_fd = -1;             // the bound control socket, passed on
  int lock_fd = -1;               // the daemon lock, held for as long as the keeper runs
  std::string log_path;           // where the keeper writes what it does
  bool log_to_stderr = false;     // --foreground: also to stderr
  int ready_fd = -1;              // given to the first worker only
};

// Runs the keeper until a worker exits on purpose; returns the exit code
// for sempred. REQUIRES: called once, in a process with no other thread.
int run_keeper(const KeeperOptions& options);

// The keeper again after it replaced itself (`upgrade`): its state is read
// from descriptor `state_fd` (`sempred --keeper-resume FD`), then it goes on
// as run_keeper() does, starting the next worker at once. `check_only`
// (`--check`): only read the state and find its descriptors, and return 0
// if all is well: the old keeper's dry run before it execs.
int resume_keeper(int state_fd, bool check_only = false);

}  // namespace sempre::keeper
