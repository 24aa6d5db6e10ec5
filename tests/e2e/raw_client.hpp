// RawClient: one connection to sempred's control socket, spoken by hand, for
// the tests that must send what `sempre` never would.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace sempre::test {

// One connection to the daemon's control socket, for the tests that must send
// what `sempre` never would.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    // A daemon that neither reads nor drops us must not hang the test.
    timeval limit{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }

  // Sends all of `data`; false once the peer has closed or stopped reading.
  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next line, without its '\n'; nullopt when the peer closed first or the
  // deadline passed.
  std::optional<std::string> read_line(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (const auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      if (pump(deadline) != Got::kData) return std::nullopt;
    }
  }

  // Reads and drops everything until the peer closes; false past the deadline.
  bool wait_closed(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      switch (pump(deadline)) {
        case Got::kData:
          buffer_.clear();
          break;
        case Got::kClosed:
          return true;
        case Got::kTimeout:
          return false;
      }
    }
  }

 private:
  enum class Got { kData, kClosed, kTimeout };

  Got pump(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return Got::kTimeout;
      pollfd p{fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Got::kTimeout;
      char buf[65536];
      const ssize_t got = ::read(fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return Got::kClosed;  // EOF, or ECONNRESET from a peer that dropped us
      buffer_.append(buf, static_cast<std::size_t>(got));
      return Got::kData;
    }
  }

  int fd_ = -1;
  std::string buffer_;
};

}  // namespace sempre::test
