#include "control_server.hpp"

#include <poll.h>
#include <spdlog/logger.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/error.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sempre {
namespace {

using boost::asio::local::stream_protocol;

// Bytes read per wake-up, into the one buffer every session shares. Requests
// are small; a large one just takes more reads.
constexpr std::size_t kReadChunk = 16 * 1024;

// A client whose unsent messages pass this is not reading them (a stuck
// `logs -f`): it is dropped rather than allowed to grow the daemon.
constexpr std::size_t kMaxQueued = 4 * 1024 * 1024;

// Queued messages handed to one gather write.
constexpr std::size_t kMaxBatch = 64;

// How long a closing session may take to write what is queued for it.
constexpr std::chrono::seconds kDrainLimit{2};

// Out of descriptors, the listener stays readable: waiting this long before
// accepting again keeps the loop from spinning. Only armed in that state.
constexpr std::chrono::milliseconds kAcceptRetry{250};

// Connections accepted per wake-up, so that a burst of clients cannot keep
// the thread from the sessions already open.
constexpr int kAcceptsPerWake = 16;

class SessionImpl;

// What the server and its sessions share. A request handler may keep a
// session (a stream) after the server is gone, so the sessions reach the
// handler and the registry through this rather than through the server.
struct Shared {
  Shared(boost::asio::any_io_executor ex, RequestHandler& request_handler,
         std::shared_ptr<spdlog::logger> logger, std::size_t max, std::chrono::milliseconds idle)
      : executor(ex),
        handler(request_handler),
        log(std::move(logger)),
        max_clients(max),
        idle_limit(idle),
        acceptor(ex),
        retry_timer(ex) {}

  boost::asio::any_io_executor executor;
  RequestHandler& handler;
  std::shared_ptr<spdlog::logger> log;
  const std::size_t max_clients;
  std::chrono::milliseconds idle_limit;
  stream_protocol::acceptor acceptor;
  boost::asio::steady_timer retry_timer;
  bool closed = false;
  // Every session, the refused ones too until their refusal is written.
  std::unordered_map<SessionImpl*, std::weak_ptr<SessionImpl>> sessions;
  std::function<void()> on_all_closed;
  // Sessions served (not refused) and still open: at most max_clients.
  std::size_t served = 0;
  // Clients refused for the cap since it was last reached (0: not reached),
  // so that a crowd is logged once rather than once per client.
  std::size_t refused = 0;
  // Whether accept() is failing (out of descriptors), logged once.
  bool accept_failing = false;
  // Each session reads into this, and feeds what it read to its decoder at
  // once: an idle session holds no read buffer of its own.
  std::array<char, kReadChunk> read_buffer{};

  // Called by every session that closes (`was_served`: one that counted
  // against max_clients): the last one after close() ends the server's
  // shutdown.
  void forget(SessionImpl* session, bool was_served) {
    sessions.erase(session);
    if (was_served) {
      --served;
      if (refused > 0 && served < max_clients) {
        log->info("accepting clients again ({} refused while {} were connected)", refused,
                  max_clients);
        refused = 0;
      }
    }
    if (closed && sessions.empty() && on_all_closed) {
      boost::asio::post(executor, std::exchange(on_all_closed, nullptr));
    }
  }
};

class SessionImpl final : public Session, public std::enable_shared_from_this<SessionImpl> {
 public:
  SessionImpl(std::shared_ptr<Shared> shared, stream_protocol::socket socket, uid_t uid, pid_t pid)
      : shared_(std::move(shared)),
        socket_(std::move(socket)),
        timer_(shared_->executor),
        uid_(uid),
        pid_(pid),
        label_("client pid " + std::to_string(pid) + " (uid " + std::to_string(uid) + ")") {}

  // Serves requests until either side closes; counts against max_clients
  // until then.
  void start() {
    served_ = true;
    ++shared_->served;
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);  // reads happen once the socket is readable
    if (ec) {
      shared_->log->error("dropping {}: {}", label_, ec.message());
      close_now();
      return;
    }
    update_idle();
    serve_next();
  }

  // Answers a peer that may not talk to us, or not now, without reading
  // from it.
  void refuse(protocol::ErrorCode code, const std::string& message) {
    send(protocol::make_error(0, code, message));
    close();
  }

  void send(const boost::json::object& message) override {
    if (!is_open()) return;
    if (message.contains("ok")) answered(message);
    std::string frame;
    try {
      frame = protocol::encode(message);
    } catch (const std::exception& e) {
      shared_->log->error("dropping {}: cannot encode a message: {}", label_, e.what());
      close_now();
      return;
    }
    queued_bytes_ += frame.size();
    if (queued_bytes_ > kMaxQueued) {
      shared_->log->warn("dropping {}: it does not read its messages ({} bytes queued)", label_,
                         queued_bytes_);
      close_now();
      return;
    }
    queue_.push_back(std::move(frame));
    write();
    update_idle();
  }

  bool is_open() const override { return open_ && !closing_; }

  void on_close(std::function<void()> handler) override {
    if (!open_) {
      run_guarded(handler);
      return;
    }
    close_handlers_.push_back(std::move(handler));
    update_idle();
  }

  void close() override {
    if (!is_open()) return;
    closing_ = true;
    if (writing_ == 0 && queue_.empty()) {
      close_now();
      return;
    }
    arm_timer(kDrainLimit);
  }

  uid_t peer_uid() const override { return uid_; }
  pid_t peer_pid() const override { return pid_; }

  // Closes at once, dropping what is queued, and runs the on_close handlers.
  // Closes a served session whose client has hung up, before the event
  // loop gets to read that (its end of file may wait behind a storm of
  // new clients). A client that only shut its writing side down still
  // waits for its answer, and one that left a request unread is served;
  // both are kept. True when it was closed.
  bool close_if_hung_up() {
    if (!open_ || !served_) return false;
    pollfd p{socket_.native_handle(), 0, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLHUP | POLLERR)) == 0) return false;
    // What it sent before it left is served still.
    int unread = 0;
    if (::ioctl(socket_.native_handle(), FIONREAD, &unread) == 0 && unread > 0) return false;
    close_now();
    return true;
  }

  void close_now() {
    if (!open_) return;
    open_ = false;
    closing_ = true;
    cancel_timer();
    boost::system::error_code ec;
    socket_.shutdown(stream_protocol::socket::shutdown_both, ec);
    socket_.close(ec);
    // A write in flight still refers to the front of the queue until its
    // (aborted) handler runs, which frees the rest.
    if (writing_ == 0) queue_.clear();
    queued_bytes_ = 0;
    auto handlers = std::move(close_handlers_);
    close_handlers_.clear();
    for (auto& handler : handlers) run_guarded(handler);
    shared_->forget(this, std::exchange(served_, false));
  }

 private:
  // Whether so much waits to be written that the client's next requests
  // should wait too: it sends without reading what it is answered.
  bool backlogged() const { return queued_bytes_ > ControlServer::kPauseReading; }

  // Serves the next request that has arrived, or waits for more bytes.
  // One request per turn of the event loop: the next one is taken in a
  // handler of its own, behind whatever else is ready, so that a client
  // that pipelines many requests cannot starve the others. Runs again from
  // on_write() when a backlog drains.
  void serve_next() {
    if (!is_open() || waiting_ || scheduled_ || backlogged()) return;
    try {
      boost::json::object message;
      std::string error;
      switch (decoder_.next(message, error)) {
        case protocol::FrameDecoder::Status::kMessage:
          dispatch(message);
          if (is_open()) serve_next_later();
          return;
        case protocol::FrameDecoder::Status::kMalformed:
          drop_malformed(error);
          return;
        case protocol::FrameDecoder::Status::kNeedMore:
          break;
      }
    } catch (const std::exception& e) {
      shared_->log->error("dropping {}: {}", label_, e.what());
      close_now();
      return;
    }
    // The decoder is trusted to report an endless line, but a peer that
    // could make the daemon buffer without bound is worth a second check.
    if (decoder_.buffered() > protocol::kMaxMessage) {
      drop_malformed("a message longer than " + std::to_string(protocol::kMaxMessage) + " bytes");
      return;
    }
    wait_readable();
  }

  void serve_next_later() {
    scheduled_ = true;
    boost::asio::post(shared_->executor, [self = shared_from_this()] {
      self->scheduled_ = false;
      self->serve_next();
    });
  }

  void wait_readable() {
    waiting_ = true;
    socket_.async_wait(stream_protocol::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->waiting_ = false;
                         self->on_readable(ec);
                       });
  }

  void on_readable(const boost::system::error_code& wait_error) {
    if (!is_open()) return;
    boost::system::error_code ec = wait_error;
    std::size_t n = 0;
    if (!ec) n = socket_.read_some(boost::asio::buffer(shared_->read_buffer), ec);
    if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) {
      wait_readable();
      return;
    }
    if (ec) {
      if (ec != boost::asio::error::eof && ec != boost::asio::error::connection_reset) {
        shared_->log->info("{} went away: {}", label_, ec.message());
      }
      close_now();
      return;
    }
    try {
      decoder_.feed(std::string_view(shared_->read_buffer.data(), n));
    } catch (const std::exception& e) {
      shared_->log->error("dropping {}: {}", label_, e.what());
      close_now();
      return;
    }
    serve_next();
  }

  void drop_malformed(const std::string& reason) {
    shared_->log->warn("dropping {}: malformed message: {}", label_, reason);
    send(protocol::make_error(0, protocol::ErrorCode::kBadRequest, "malformed message: " + reason));
    close();
  }

  void dispatch(const boost::json::object& message) {
    auto request = protocol::parse_request(message);
    if (!request) {
      reject(message, request.error());
      return;
    }
    const std::uint64_t id = request->id;
    pending_.push_back(id);
    update_idle();
    try {
      shared_->handler.handle(*request, shared_from_this());
    } catch (const std::exception& e) {
      shared_->log->error("request {} ({}) from {} failed: {}", id, request->cmd, label_, e.what());
      if (std::find(pending_.begin(), pending_.end(), id) != pending_.end()) {
        send(protocol::make_error(id, protocol::ErrorCode::kInternal,
                                  std::string("internal error: ") + e.what()));
      }
    }
  }

  // Answers a message that is JSON but not a request we can serve: a
  // version error for another protocol version, else a bad request.
  void reject(const boost::json::object& message, const Error& error) {
    std::uint64_t id = 0;
    if (const auto* v = message.if_contains("id")) {
      boost::system::error_code ec;
      const auto n = v->to_number<std::uint64_t>(ec);
      if (!ec) id = n;
    }
    if (error.kind == ErrorKind::kVersionMismatch) {
      shared_->log->warn("{}: {}", label_, error.message);
      send(protocol::make_error(id, error));
      return;
    }
    shared_->log->warn("bad request from {}: {}", label_, error.message);
    send(protocol::make_error(id, protocol::ErrorCode::kBadRequest, error.message));
  }

  // A response ends its request; the session may become idle again.
  void answered(const boost::json::object& response) {
    const auto* v = response.if_contains("id");
    if (v == nullptr) return;
    boost::system::error_code ec;
    const auto id = v->to_number<std::uint64_t>(ec);
    if (ec) return;
    if (auto it = std::find(pending_.begin(), pending_.end(), id); it != pending_.end()) {
      pending_.erase(it);
    }
  }

  void write() {
    if (writing_ != 0 || queue_.empty()) return;
    std::vector<boost::asio::const_buffer> buffers;
    const std::size_t count = std::min(queue_.size(), kMaxBatch);
    buffers.reserve(count);
    for (std::size_t i = 0; i < count; ++i) buffers.push_back(boost::asio::buffer(queue_[i]));
    writing_ = count;
    boost::asio::async_write(socket_, buffers,
                             [self = shared_from_this()](const boost::system::error_code& ec,
                                                         std::size_t) { self->on_write(ec); });
  }

  void on_write(const boost::system::error_code& ec) {
    const std::size_t written = std::exchange(writing_, 0);
    if (!open_) {
      queue_.clear();
      return;
    }
    if (ec) {
      // A client that hangs up before its answer (^C) is no news; logging
      // each one would let a crowd of them fill the log.
      if (ec != boost::asio::error::broken_pipe && ec != boost::asio::error::connection_reset) {
        shared_->log->info("{} went away: {}", label_, ec.message());
      }
      close_now();
      return;
    }
    for (std::size_t i = 0; i < written; ++i) {
      queued_bytes_ -= queue_.front().size();
      queue_.pop_front();
    }
    if (!queue_.empty()) {
      write();
    } else if (closing_) {
      close_now();
      return;
    }
    // The client took some of its answers: it has the idle limit again, and
    // its next requests are read once the backlog is gone.
    if (timer_armed_ && !closing_) arm_timer(shared_->idle_limit);
    serve_next();
  }

  // The idle rule: a session with no request in flight and no stream
  // subscribed to its closing must send a request, or take some of its
  // answers, within the idle limit.
  void update_idle() {
    if (closing_) return;  // the drain limit runs instead
    const bool idle = open_ && pending_.empty() && close_handlers_.empty();
    if (idle == timer_armed_) return;
    if (idle) {
      arm_timer(shared_->idle_limit);
    } else {
      cancel_timer();
    }
  }

  void arm_timer(std::chrono::milliseconds limit) {
    const std::uint64_t generation = ++timer_generation_;
    timer_armed_ = true;
    timer_.expires_after(limit);
    timer_.async_wait(
        [self = shared_from_this(), generation, limit](const boost::system::error_code& ec) {
          if (ec || generation != self->timer_generation_ || !self->open_) return;
          self->timer_armed_ = false;
          if (self->closing_) {
            self->shared_->log->warn("dropping {}: its last messages were not read within {} ms",
                                     self->label_, limit.count());
          } else if (self->queued_bytes_ > 0) {
            self->shared_->log->warn("dropping {}: it took none of its answers within {} ms",
                                     self->label_, limit.count());
          } else {
            self->shared_->log->warn("dropping {}: no request within {} ms", self->label_,
                                     limit.count());
          }
          self->close_now();
        });
  }

  void cancel_timer() {
    ++timer_generation_;
    timer_armed_ = false;
    timer_.cancel();
  }

  void run_guarded(const std::function<void()>& handler) {
    try {
      if (handler) handler();
    } catch (const std::exception& e) {
      shared_->log->error("a close handler of {} failed: {}", label_, e.what());
    }
  }

  std::shared_ptr<Shared> shared_;
  stream_protocol::socket socket_;
  boost::asio::steady_timer timer_;
  const uid_t uid_;
  const pid_t pid_;
  const std::string label_;

  protocol::FrameDecoder decoder_;
  std::vector<std::uint64_t> pending_;  // ids of requests not yet answered
  bool served_ = false;                 // counts in Shared::served
  bool waiting_ = false;                // for the socket to be readable
  bool scheduled_ = false;              // serve_next() is posted

  std::deque<std::string> queue_;  // frames not yet written, oldest first
  std::size_t queued_bytes_ = 0;
  std::size_t writing_ = 0;  // frames at the queue's front being written

  bool open_ = true;
  bool closing_ = false;  // close() asked, or closed
  std::vector<std::function<void()>> close_handlers_;

  bool timer_armed_ = false;
  std::uint64_t timer_generation_ = 0;  // a fired wait of an older arming is stale
};

class ServerImpl final : public ControlServer {
 public:
  explicit ServerImpl(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  ~ServerImpl() override { close(); }

  static void wait_for_clients(const std::shared_ptr<Shared>& shared) {
    shared->acceptor.async_wait(stream_protocol::acceptor::wait_read,
                                [shared](const boost::system::error_code& ec) {
                                  if (shared->closed) return;
                                  if (ec) {
                                    shared->log->error("control socket: {}", ec.message());
                                    retry_later(shared);
                                    return;
                                  }
                                  accept_clients(shared);
                                });
  }

  void close() override {
    if (shared_->closed) return;
    shared_->closed = true;
    boost::system::error_code ec;
    shared_->acceptor.close(ec);
    shared_->retry_timer.cancel();
    std::vector<std::shared_ptr<SessionImpl>> open;
    for (auto& [raw, weak] : shared_->sessions) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
    for (auto& session : open) session->close();
  }

  void close(std::function<void()> done) override {
    close();
    if (shared_->sessions.empty()) {
      boost::asio::post(shared_->executor, std::move(done));
      return;
    }
    if (shared_->on_all_closed) {
      done = [first = std::move(shared_->on_all_closed), then = std::move(done)] {
        first();
        then();
      };
    }
    shared_->on_all_closed = std::move(done);
  }

 private:
  static void retry_later(const std::shared_ptr<Shared>& shared) {
    shared->retry_timer.expires_after(kAcceptRetry);
    shared->retry_timer.async_wait([shared](const boost::system::error_code& ec) {
      if (ec || shared->closed) return;
      wait_for_clients(shared);
    });
  }

  static void accept_clients(const std::shared_ptr<Shared>& shared) {
    const int listen_fd = shared->acceptor.native_handle();
    for (int i = 0; i < kAcceptsPerWake; ++i) {
      // accept4 rather than asio's accept: the descriptor is CLOEXEC from
      // its first instant, so no child spawned meanwhile inherits it.
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        if (std::exchange(shared->accept_failing, false)) {
          shared->log->info("control socket: accepting clients again");
        }
        start_session(shared, fd);
        continue;
      }
      const int err = errno;
      if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the client waits in the backlog
      // until a descriptor is free.
      if (!shared->accept_failing) {
        shared->log->error("control socket: cannot accept a client: {}; trying again every {} ms",
                           std::strerror(err), kAcceptRetry.count());
        shared->accept_failing = true;
      }
      retry_later(shared);
      return;
    }
    wait_for_clients(shared);
  }

  // At the cap: the places of clients that left are given back at once, so
  // that a storm of connections that hang up never holds the daemon full.
  static void sweep_hung_up(const std::shared_ptr<Shared>& shared) {
    std::vector<std::shared_ptr<SessionImpl>> open;
    open.reserve(shared->sessions.size());
    for (const auto& [raw, weak] : shared->sessions) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
    for (const auto& session : open) session->close_if_hung_up();
  }

  static void start_session(const std::shared_ptr<Shared>& shared, int fd) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
      shared->log->warn("refused a client whose credentials cannot be read: {}",
                        std::strerror(errno));
      ::close(fd);
      return;
    }
    stream_protocol::socket socket(shared->executor);
    boost::system::error_code ec;
    socket.assign(stream_protocol(), fd, ec);
    if (ec) {
      shared->log->error("control socket: cannot serve a client: {}", ec.message());
      ::close(fd);
      return;
    }
    auto session = std::make_shared<SessionImpl>(shared, std::move(socket), cred.uid, cred.pid);
    shared->sessions.emplace(session.get(), session);
    const uid_t owner = ::geteuid();
    if (cred.uid != owner && cred.uid != 0) {
      shared->log->warn("refused client pid {} of uid {}: only uid {} and root may control sempred",
                        cred.pid, cred.uid, owner);
      session->refuse(
          protocol::ErrorCode::kBadRequest,
          "permission denied: uid " + std::to_string(cred.uid) + " is not the daemon's owner");
      return;
    }
    if (shared->served >= shared->max_clients) sweep_hung_up(shared);
    if (shared->served >= shared->max_clients) {
      if (shared->refused++ == 0) {
        shared->log->warn(
            "refusing new clients: {} are connected, as many as [daemon] max_clients allows",
            shared->served);
      }
      session->refuse(
          protocol::ErrorCode::kBusy,
          "sempred has too many clients (" + std::to_string(shared->max_clients) + "); try again");
      return;
    }
    session->start();
  }

  std::shared_ptr<Shared> shared_;
};

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::create(boost::asio::any_io_executor executor,
                                                             int listen_fd, RequestHandler& handler,
                                                             std::shared_ptr<spdlog::logger> log,
                                                             std::size_t max_clients,
                                                             std::chrono::milliseconds idle_limit) {
  assert(max_clients >= 1);
  if (!log) log = std::make_shared<spdlog::logger>("sempred", spdlog::sinks_init_list{});
  auto shared =
      std::make_shared<Shared>(executor, handler, std::move(log), max_clients, idle_limit);
  boost::system::error_code ec;
  shared->acceptor.assign(stream_protocol(), listen_fd, ec);
  if (ec) {
    ::close(listen_fd);
    return Error{ErrorKind::kIo, "cannot serve the control socket: " + ec.message(), ec.value()};
  }
  shared->acceptor.native_non_blocking(true, ec);
  if (ec) {
    return Error{ErrorKind::kIo, "cannot serve the control socket: " + ec.message(), ec.value()};
  }
  ServerImpl::wait_for_clients(shared);
  return std::unique_ptr<ControlServer>(std::make_unique<ServerImpl>(std::move(shared)));
}

}  // namespace sempre
