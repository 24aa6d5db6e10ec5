#include "ready_probe.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/datagram_protocol.hpp>
#include <charconv>
#include <cstring>

namespace sempre {
namespace {

namespace asio = boost::asio;

class NotifyProbe final : public ReadyProbe {
 public:
  NotifyProbe(asio::any_io_executor executor, std::function<void()> on_ready)
      : socket_(executor), on_ready_(std::move(on_ready)), alive_(std::make_shared<bool>(true)) {}
  ~NotifyProbe() override {
    alive_.reset();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  Status open(std::string& env_entry) {
    static std::atomic<unsigned> counter{0};
    // Abstract namespace: nothing on disk to clean up, and sd_notify knows "@".
    const std::string name =
        "sempre/notify/" + std::to_string(::getpid()) + "/" + std::to_string(++counter);
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return os_error(errno, "cannot create the notify socket");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      const int e = errno;
      ::close(fd);
      return os_error(e, "cannot bind the notify socket");
    }
    boost::system::error_code ec;
    socket_.assign(asio::local::datagram_protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return Error{ErrorKind::kIo, "cannot use the notify socket: " + ec.message()};
    }
    env_entry = "NOTIFY_SOCKET=@" + name;
    receive();
    return {};
  }

  Status adopt(int fd) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    boost::system::error_code ec;
    socket_.assign(asio::local::datagram_protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      return Error{ErrorKind::kIo, "cannot use the notify socket: " + ec.message()};
    }
    receive();
    return {};
  }

  int notify_fd() const override {
    return const_cast<asio::local::datagram_protocol::socket&>(socket_).native_handle();
  }

 private:
  void receive() {
    std::weak_ptr<bool> alive = alive_;
    socket_.async_receive(asio::buffer(buffer_),
                          [this, alive](const boost::system::error_code& ec, std::size_t n) {
                            if (alive.expired() || ec == asio::error::operation_aborted) return;
                            if (!ec) {
                              const std::string_view message(buffer_, n);
                              for (std::size_t at = 0; at <= message.size();) {
                                const auto end = std::min(message.find('\n', at), message.size());
                                if (message.substr(at, end - at) == "READY=1") {
                                  if (on_ready_) std::exchange(on_ready_, nullptr)();
                                  return;
                                }
                                at = end + 1;
                              }
                            }
                            receive();
                          });
  }

  asio::local::datagram_protocol::socket socket_;
  char buffer_[4096];
  std::function<void()> on_ready_;
  std::shared_ptr<bool> alive_;
};

class TcpProbe final : public ReadyProbe {
 public:
  TcpProbe(asio::any_io_executor executor, Clock& clock, int port, std::function<void()> on_ready)
      : socket_(executor),
        clock_(clock),
        port_(port),
        on_ready_(std::move(on_ready)),
        alive_(std::make_shared<bool>(true)) {
    attempt();
  }
  ~TcpProbe() override {
    alive_.reset();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  void attempt() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    const asio::ip::tcp::endpoint endpoint(asio::ip::address_v4::loopback(),
                                           static_cast<unsigned short>(port_));
    std::weak_ptr<bool> alive = alive_;
    socket_.async_connect(endpoint, [this, alive](const boost::system::error_code& ec) {
      if (alive.expired()) return;
      if (!ec) {
        boost::system::error_code ignored_close;
        socket_.close(ignored_close);
        if (on_ready_) std::exchange(on_ready_, nullptr)();
        return;
      }
      retry_ = clock_.start_timer(kProbeInterval, [this] { attempt(); });
    });
  }

  asio::ip::tcp::socket socket_;
  Clock& clock_;
  int port_;
  std::function<void()> on_ready_;
  std::unique_ptr<Timer> retry_;
  std::shared_ptr<bool> alive_;
};

class ExecProbe final : public ReadyProbe {
 public:
  ExecProbe(Clock& clock, Launcher& launcher, LaunchRequest base, std::string command,
            std::function<void()> on_ready)
      : clock_(clock),
        launcher_(launcher),
        request_(std::move(base)),
        on_ready_(std::move(on_ready)),
        alive_(std::make_shared<bool>(true)) {
    request_.argv = {"/bin/sh", "-c", std::move(command)};
    request_.stdout_fd = -1;
    request_.stderr_fd = -1;
    attempt();
  }
  ~ExecProbe() override { alive_.reset(); }  // ~ChildProcess kills a check still running

 private:
  void attempt() {
    auto child = launcher_.launch(request_);
    if (!child) {
      retry_later();
      return;
    }
    check_ = std::move(*child);
    std::weak_ptr<bool> alive = alive_;
    check_->async_wait([this, alive](ExitStatus status) {
      if (alive.expired()) return;
      if (status.success()) {
        if (on_ready_) std::exchange(on_ready_, nullptr)();
        return;
      }
      retry_later();
    });
  }

  void retry_later() {
    retry_ = clock_.start_timer(kProbeInterval, [this] {
      // The finished check is not on the stack here: drop it and run again.
      check_.reset();
      attempt();
    });
  }

  Clock& clock_;
  Launcher& launcher_;
  LaunchRequest request_;
  std::function<void()> on_ready_;
  std::unique_ptr<ChildProcess> check_;
  std::unique_ptr<Timer> retry_;
  std::shared_ptr<bool> alive_;
};

}  // namespace

Result<ReadyCheck> parse_ready_check(std::string_view text) {
  ReadyCheck check;
  if (text.empty()) return check;
  if (text == "notify") {
    check.kind = ReadyCheck::Kind::kNotify;
    return check;
  }
  if (text.rfind("tcp:", 0) == 0) {
    const std::string_view port = text.substr(4);
    int value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec == std::errc() && end == port.data() + port.size() && value > 0 && value < 65536) {
      check.kind = ReadyCheck::Kind::kTcp;
      check.port = value;
      return check;
    }
  }
  if (text.rfind("exec:", 0) == 0 && text.size() > 5) {
    check.kind = ReadyCheck::Kind::kExec;
    check.command = std::string(text.substr(5));
    return check;
  }
  return Error{ErrorKind::kInvalidArgument, "invalid readiness check \"" + std::string(text) +
                                                "\": expected notify, tcp:PORT or exec:CMD"};
}

Result<std::unique_ptr<ReadyProbe>> make_notify_probe(asio::any_io_executor executor,
                                                      std::string& env_entry,
                                                      std::function<void()> on_ready) {
  auto probe = std::make_unique<NotifyProbe>(std::move(executor), std::move(on_ready));
  if (auto st = probe->open(env_entry); !st) return st.error();
  return std::unique_ptr<ReadyProbe>(std::move(probe));
}

Result<std::unique_ptr<ReadyProbe>> adopt_notify_probe(asio::any_io_executor executor, int fd,
                                                       std::function<void()> on_ready) {
  auto probe = std::make_unique<NotifyProbe>(std::move(executor), std::move(on_ready));
  if (auto st = probe->adopt(fd); !st) return st.error();
  return std::unique_ptr<ReadyProbe>(std::move(probe));
}

std::unique_ptr<ReadyProbe> make_tcp_probe(asio::any_io_executor executor, Clock& clock, int port,
                                           std::function<void()> on_ready) {
  return std::make_unique<TcpProbe>(std::move(executor), clock, port, std::move(on_ready));
}

std::unique_ptr<ReadyProbe> make_exec_probe(Clock& clock, Launcher& launcher, LaunchRequest base,
                                            std::string command, std::function<void()> on_ready) {
  return std::make_unique<ExecProbe>(clock, launcher, std::move(base), std::move(command),
                                     std::move(on_ready));
}

}  // namespace sempre
