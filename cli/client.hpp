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
#include <type_traits>
#include <utility>

#include "commands.hpp"
#include "home.hpp"
#include "protocol.hpp"
#include "sempre/result.hpp"

namespace sempre::cli {

// How long a daemon may take to start (the start lock included).
inline constexpr std::chrono::seconds kDaemonStartTimeout{10};
// The longest silence while waiting for an answer.
inline constexpr std::chrono::seconds kRequestTimeout{60};
// The same for requests that stop apps: the daemon answers once they are
// down, which takes up to their kill-timeout, and users set long ones.
inline constexpr std::chrono::seconds kStopTimeout{300};

// The message of the Error for "no daemon runs for this home".
std::string no_daemon_message(const HomePaths& paths);

// One connection to the daemon of a home. Single-threaded; movable, not
// copyable; the destructor closes the connection.
class Client {
 public:
  // Connects to the daemon of `paths`. When none runs and `start_daemon`
  // is set, starts `sempred` first and waits until it is ready; otherwise
  // fails with kUnavailable and no_daemon_message(). Every other failure
  // (the home, the socket, a daemon that cannot start) is kUnavailable too.
  static Result<Client> connect(const HomePaths& paths, bool start_daemon);

  Client(Client&& other) noexcept;
  Client& operator=(Client&& other) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  // Sends command C with `args` and reads until its response: the reply on
  // success; on an error response, the daemon's Error, of the kind its
  // error code means (protocol::error_kind_for). Items that come first are
  // decoded and go to `on_item`. `timeout` bounds each wait for the next
  // message; none waits as long as the connection stays open (for streams).
  // A lost connection, a timeout or a malformed message fails with
  // kUnavailable; a reply or item that does not decode, with kInternal.
  template <protocol::Command C>
  Result<protocol::ReplyOf<C>> call(
      const protocol::ArgsOf<C>& args, std::optional<std::chrono::milliseconds> timeout,
      const std::function<void(const protocol::ItemOf<C>&)>& on_item = {}) {
    using Item = protocol::ItemOf<C>;
    RawItemHandler raw;
    if constexpr (!std::is_same_v<Item, protocol::NoItem>) {
      if (on_item) {
        raw = [&on_item](const boost::json::object& item) -> Status {
          auto decoded = protocol::from_json<Item>(item);
          if (!decoded) return unreadable("an item", decoded.error());
          on_item(*decoded);
          return {};
        };
      }
    }
    auto result = exchange(C, protocol::to_json(args), timeout, raw);
    if (!result) return result.error();
    auto reply = protocol::from_json<protocol::ReplyOf<C>>(*result);
    if (!reply) return unreadable("a reply", reply.error());
    return reply;
  }

 private:
  using RawItemHandler = std::function<Status(const boost::json::object& item)>;

  explicit Client(int fd) : fd_(fd) {}

  // call() before and after the codecs: sends the request, hands each item
  // to `on_item` (whose Error ends the call), returns the result object.
  Result<boost::json::object> exchange(protocol::Command command, boost::json::object args,
                                       std::optional<std::chrono::milliseconds> timeout,
                                       const RawItemHandler& on_item);
  // "the daemon sent WHAT that cannot be read: WHY", of kind kInternal.
  static Error unreadable(std::string_view what, const Error& why);

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
