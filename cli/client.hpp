// The client side of the control protocol: finds the daemon of a home,
// starts one when asked and none runs (at most one however many CLIs race
// to do it), sends requests and reads their answers. Every wait has a
// deadline but the reading of a stream, which lasts until the daemon closes
// it or the user interrupts.
#pragma once

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "commands.hpp"
#include "home.hpp"
#include "protocol.hpp"

namespace sempre::cli {

// How long a daemon may take to start (the start lock included).
inline constexpr std::chrono::seconds kDaemonStartTimeout{10};
// The longest silence while waiting for an answer.
inline constexpr std::chrono::seconds kRequestTimeout{60};
// The same for requests that stop apps: the daemon answers once they are
// down, which takes up to their kill-timeout, and users set long ones.
inline constexpr std::chrono::seconds kStopTimeout{300};

// Why a call failed: the message for stderr (without "sempre: ") and the
// exit code it means.
struct Failure {
  int exit_code = kExitFailed;
  std::string message;
};

// A value, or the Failure that kept it from being.
template <class T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
  Outcome(Failure failure) : v_(std::move(failure)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  // REQUIRES: !ok()
  const Failure& failure() const { return std::get<1>(v_); }

 private:
  std::variant<T, Failure> v_;
};

// The message of a Failure for "no daemon runs for this home".
std::string no_daemon_message(const HomePaths& paths);

// One connection to the daemon of a home. Single-threaded; movable, not
// copyable; the destructor closes the connection.
class Client {
 public:
  // Connects to the daemon of `paths`. When none runs and `start_daemon`
  // is set, starts `sempred` first and waits until it is ready; otherwise
  // fails with kExitNoDaemon and no_daemon_message(). Every other failure
  // (the home, the socket, a daemon that cannot start) is kExitNoDaemon too.
  static Outcome<Client> connect(const HomePaths& paths, bool start_daemon);

  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  using ItemHandler = std::function<void(const boost::json::object& item)>;

  // Sends the request `cmd` with `args` and reads until its response: the
  // result object on success; on an error response, the daemon's message
  // with the exit code its error code means (protocol::ErrorCode). Items
  // that come first go to `on_item`. `timeout` bounds each wait for the
  // next message; none waits as long as the connection stays open (for
  // streams). A lost connection, a timeout or a malformed message fails
  // with kExitNoDaemon.
  Outcome<boost::json::object> request(std::string_view cmd, boost::json::object args,
                                       std::optional<std::chrono::milliseconds> timeout,
                                       const ItemHandler& on_item = {});

 private:
  explicit Client(int fd) : fd_(fd) {}

  int fd_ = -1;
  std::uint64_t next_id_ = 1;
  protocol::FrameDecoder decoder_;
};

// The sempred to start: $SEMPRED when set, else `sempred` in the directory
// of the running executable.
std::string sempred_path();

// The pid of the daemon that holds the lock of `paths` (as it wrote it into
// the lock file), or nullopt when no daemon holds it; 0 when one holds it
// but has written no pid within a second. Asks nothing over the socket, so
// it works whatever protocol the daemon speaks.
std::optional<pid_t> running_daemon_pid(const HomePaths& paths);

// Waits until process `pid` has exited, for at most `timeout`. Returns
// whether it has.
bool wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);

}  // namespace sempre::cli
