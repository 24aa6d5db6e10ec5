// ControlServer: accepts clients on the control socket and turns their
// frames into protocol::Requests for a RequestHandler. Every peer is checked
// with SO_PEERCRED (same uid as the daemon, or root); a malformed, oversized
// or silent-too-long client is dropped and logged. The daemon never blocks
// on a client: writes are queued and sent asynchronously.
//
// No client can take the daemon from the others: at most `max_clients` are
// served at once (one more is answered "busy" and closed); each session has
// one request handled per turn of the event loop; a session whose answers
// pile up unread is not read from until they drain; and what a session
// holds between requests is a few hundred bytes, whatever it sent before.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "protocol.hpp"
#include "sempre/result.hpp"

namespace spdlog {
class logger;
}

namespace sempre {

// One client connection, as a request handler sees it. Used on the
// server's executor only.
class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  virtual ~Session() = default;

  // Queues one message. Does nothing once the session is closed. While more
  // than kPauseReading bytes wait to be written, the client's next requests
  // are left unread; a client that lets more than a few MiB queue up (a
  // stream it does not read) is dropped.
  virtual void send(const boost::json::object& message) = 0;
  virtual bool is_open() const = 0;
  // Runs `handler` once when the connection closes (either side); at once if
  // it is closed already. For streams (logs -f, events) to unsubscribe.
  virtual void on_close(std::function<void()> handler) = 0;
  // Closes after the queued messages are written.
  virtual void close() = 0;
  virtual uid_t peer_uid() const = 0;
  virtual pid_t peer_pid() const = 0;
};

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  // Answers `request` on `session`, now or later: exactly one response
  // (make_result/make_error), preceded by any number of items.
  virtual void handle(const protocol::Request& request,
                      const std::shared_ptr<Session>& session) = 0;
};

class ControlServer {
 public:
  // How long a client may take to send a complete request once connected or
  // between requests, or to take any of its answers, before it is dropped (a
  // stream keeps it open).
  static constexpr std::chrono::seconds kIdleLimit{30};
  // Unsent bytes of a session past which its requests are left unread.
  static constexpr std::size_t kPauseReading = 256 * 1024;

  // Serves on `listen_fd` (from bind_control_socket; ownership taken, also
  // on failure). Requests of another protocol version get a kVersion error
  // naming both. While `max_clients` sessions are open, a new client is
  // answered a kBusy error ("sempred has too many clients (N); try again")
  // and closed, unread. `idle_limit` replaces kIdleLimit (tests use a short
  // one). REQUIRES: `handler` outlives the server; max_clients >= 1.
  static Result<std::unique_ptr<ControlServer>> create(
      boost::asio::any_io_executor executor, int listen_fd, RequestHandler& handler,
      std::shared_ptr<spdlog::logger> log, std::size_t max_clients,
      std::chrono::milliseconds idle_limit = std::chrono::milliseconds(kIdleLimit));
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  virtual ~ControlServer() = default;

  // Stops accepting and closes every session once what is queued for it is
  // written (dropping, after a short limit, a client that does not read).
  virtual void close() = 0;
  // As close(); then `done` runs, from the executor, once every session is
  // closed: the daemon exits only after a `kill` answer reached its client.
  virtual void close(std::function<void()> done) = 0;

 protected:
  ControlServer() = default;
};

}  // namespace sempre
