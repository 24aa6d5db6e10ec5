// Readiness checks (`--ready`): how a Monitor learns that a starting app is
// up, rather than assuming that spawned means ready.
//   notify     the app sends "READY=1" to the datagram socket in $NOTIFY_SOCKET
//              (sd_notify's protocol)
//   tcp:PORT   a connection to 127.0.0.1:PORT succeeds
//   exec:CMD   `sh -c CMD` exits 0
// tcp and exec are retried every kProbeInterval while the app is starting:
// the only periodic work a Monitor does, and only until the app is up.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sempre/clock.hpp"
#include "sempre/launcher.hpp"
#include "sempre/result.hpp"
#include "sempre/units.hpp"

namespace sempre {

struct ReadyCheck {
  enum class Kind { kNone, kNotify, kTcp, kExec };
  Kind kind = Kind::kNone;
  int port = 0;
  std::string command;
};

// "" is kNone. Anything else but the three forms is kInvalidArgument.
Result<ReadyCheck> parse_ready_check(std::string_view text);

class ReadyProbe {
 public:
  static constexpr Millis kProbeInterval{250};

  ReadyProbe() = default;
  ReadyProbe(const ReadyProbe&) = delete;
  ReadyProbe& operator=(const ReadyProbe&) = delete;
  // Stops probing: `on_ready` is not called afterwards.
  virtual ~ReadyProbe() = default;
  // The notify socket, for a successor to take the check over; -1 for the
  // other kinds.
  virtual int notify_fd() const { return -1; }
};

// Binds an abstract unix datagram socket and sets `env_entry` to the
// NOTIFY_SOCKET=... entry to give the child. `on_ready` runs once, from the
// executor, when a message holding the line READY=1 arrives.
Result<std::unique_ptr<ReadyProbe>> make_notify_probe(boost::asio::any_io_executor executor,
                                                      std::string& env_entry,
                                                      std::function<void()> on_ready);

// The same on a notify socket bound already (`fd`, taken): the one a dead
// supervisor's run was told of, with what the app sent meanwhile queued.
Result<std::unique_ptr<ReadyProbe>> adopt_notify_probe(boost::asio::any_io_executor executor,
                                                       int fd, std::function<void()> on_ready);

// Connects to 127.0.0.1:`port` until it succeeds, then runs `on_ready` once.
std::unique_ptr<ReadyProbe> make_tcp_probe(boost::asio::any_io_executor executor, Clock& clock,
                                           int port, std::function<void()> on_ready);

// Runs `sh -c command` (with the app's environment, directory and identity
// from `base`) until it exits 0, then runs `on_ready` once.
std::unique_ptr<ReadyProbe> make_exec_probe(Clock& clock, Launcher& launcher, LaunchRequest base,
                                            std::string command, std::function<void()> on_ready);

}  // namespace sempre
