#include "client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "os.hpp"

namespace sempre::cli {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

using os::UniqueFd;

std::string errno_text(int err) { return std::strerror(err); }

Error no_daemon(const std::string& message) { return Error{ErrorKind::kUnavailable, message, 0}; }

// Milliseconds left until `deadline` for poll(): 0 once it has passed.
int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// Connects to the control socket. On failure returns -1 with `err` set:
// ENOENT or ECONNREFUSED mean that no daemon listens there.
int open_connection(const std::string& path, int& err) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    err = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    err = errno;
    return -1;
  }
  // Bounds connect() (a full backlog blocks it) and every send().
  const timeval limit{kDaemonStartTimeout.count(), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EINTR) continue;
    if (errno == EISCONN) break;
    err = errno;
    return -1;
  }
  return fd.release();
}

bool means_no_daemon(int err) { return err == ENOENT || err == ECONNREFUSED; }

std::string connect_error(const HomePaths& paths, int err) {
  if (err == ENAMETOOLONG) {
    return "the socket path " + paths.socket + " is too long (at most " +
           std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
           " bytes); choose a shorter SEMPRE_HOME";
  }
  if (err == EAGAIN) return "the daemon at " + paths.socket + " accepts no connection";
  return "cannot connect to the daemon at " + paths.socket + ": " + errno_text(err);
}

void on_alarm(int) {}

// Takes an exclusive flock on `fd`, waiting at most `timeout`: a blocking
// flock that SIGALRM interrupts.
bool lock_with_deadline(int fd, std::chrono::seconds timeout) {
  struct sigaction alarm_action {};
  alarm_action.sa_handler = on_alarm;
  sigemptyset(&alarm_action.sa_mask);
  alarm_action.sa_flags = 0;  // no SA_RESTART: flock() must return EINTR
  struct sigaction previous {};
  ::sigaction(SIGALRM, &alarm_action, &previous);
  ::alarm(static_cast<unsigned>(timeout.count()));
  const int rc = ::flock(fd, LOCK_EX);
  ::alarm(0);
  ::sigaction(SIGALRM, &previous, nullptr);
  return rc == 0;
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + signal_name(WTERMSIG(status));
  return "stopped";
}

// Reaps `pid` if it exits before `deadline`; returns its wait status.
std::optional<int> reap(pid_t pid, Clock::time_point deadline) {
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(5));
  }
}

// Runs `sempred --ready-fd N --home HOME` and reads what it says on the
// ready pipe: "ready" once it listens, or "error: MESSAGE". The process we
// start detaches the daemon and exits; it is reaped here. Returns nothing
// once the daemon is ready, else why it is not.
std::optional<Error> start_sempred(const HomePaths& paths) {
  const std::string exe = sempred_path();
  if (::access(exe.c_str(), X_OK) != 0) {
    return no_daemon("cannot start the daemon: " + exe + ": " + errno_text(errno));
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return no_daemon("cannot start the daemon: pipe: " + errno_text(errno));
  }
  UniqueFd read_end(fds[0]);
  // Above the standard descriptors, which the child replaces.
  UniqueFd write_end(::fcntl(fds[1], F_DUPFD_CLOEXEC, 3));
  ::close(fds[1]);
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (write_end.get() < 0 || null.get() < 0) {
    return no_daemon("cannot start the daemon: " + errno_text(errno));
  }
  const int null_fd = null.get() < 3 ? ::fcntl(null.get(), F_DUPFD_CLOEXEC, 3) : null.get();
  if (null_fd != null.get()) null.reset(null_fd);

  const std::string ready_fd = std::to_string(write_end.get());
  std::vector<std::string> args = {exe, "--ready-fd", ready_fd, "--home", paths.home};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  static constexpr char kExecFailed[] = "error: cannot execute sempred\n";

  const pid_t pid = ::fork();
  if (pid < 0) return no_daemon("cannot start the daemon: fork: " + errno_text(errno));
  if (pid == 0) {
    // The daemon must not hold our stdout or stderr: whoever reads them
    // (a shell's $(...), a test) waits for their end.
    ::dup2(null.get(), STDIN_FILENO);
    ::dup2(null.get(), STDOUT_FILENO);
    ::dup2(null.get(), STDERR_FILENO);
    ::fcntl(write_end.get(), F_SETFD, 0);
    ::execv(exe.c_str(), argv.data());
    [[maybe_unused]] ssize_t n = ::write(write_end.get(), kExecFailed, sizeof kExecFailed - 1);
    ::_exit(127);
  }
  write_end.reset();
  null.reset();

  const auto deadline = Clock::now() + kDaemonStartTimeout;
  std::string said;
  bool eof = false;
  while (said.find('\n') == std::string::npos && !eof) {
    pollfd p{read_end.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    char buf[4096];
    const ssize_t got = ::read(read_end.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof = true;
    } else {
      said.append(buf, static_cast<std::size_t>(got));
    }
  }
  // It exits as soon as the daemon is detached; past the deadline, it is
  // left to init rather than waited for.
  const bool answered = eof || said.find('\n') != std::string::npos;
  const auto status = reap(pid, answered ? Clock::now() + std::chrono::seconds(1) : Clock::now());
  const std::string line = said.substr(0, said.find('\n'));
  if (line == "ready") return std::nullopt;
  if (line.rfind("error: ", 0) == 0) return no_daemon("cannot start the daemon: " + line.substr(7));
  if (!line.empty()) return no_daemon("cannot start the daemon: it said \"" + line + "\"");
  const std::string see = " (see " + paths.log + ")";
  if (!eof) {
    return no_daemon("cannot start the daemon: " + exe + " was not ready within " +
                     std::to_string(kDaemonStartTimeout.count()) + "s" + see);
  }
  if (status && !(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)) {
    return no_daemon("cannot start the daemon: " + exe + " " + describe_wait_status(*status) + see);
  }
  return no_daemon("cannot start the daemon: " + exe + " exited without being ready" + see);
}

}  // namespace

std::string no_daemon_message(const HomePaths& paths) {
  return "no daemon is running for " + paths.home;
}

std::string sempred_path() {
  if (const char* env = std::getenv("SEMPRED"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "sempred";
  return (self.parent_path() / "sempred").string();
}

Result<Client> Client::connect(const HomePaths& paths, bool start_daemon) {
  int err = 0;
  if (int fd = open_connection(paths.socket, err); fd >= 0) return Client(fd);
  if (!means_no_daemon(err)) return no_daemon(connect_error(paths, err));
  if (!start_daemon) return no_daemon(no_daemon_message(paths));

  if (auto st = prepare_home(paths); !st) return no_daemon(st.error().message);
  UniqueFd lock(::open(paths.start_lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (lock.get() < 0) {
    return no_daemon("cannot open " + paths.start_lock + ": " + errno_text(errno));
  }
  if (!lock_with_deadline(lock.get(), kDaemonStartTimeout)) {
    return no_daemon("another sempre has been starting the daemon for " +
                     std::to_string(kDaemonStartTimeout.count()) + "s; gave up waiting for " +
                     paths.start_lock);
  }
  // Whoever held the lock may have started it meanwhile.
  if (int fd = open_connection(paths.socket, err); fd >= 0) return Client(fd);
  if (!means_no_daemon(err)) return no_daemon(connect_error(paths, err));

  if (auto failure = start_sempred(paths)) return *failure;
  if (int fd = open_connection(paths.socket, err); fd >= 0) return Client(fd);
  return no_daemon(connect_error(paths, err));
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      next_id_(other.next_id_),
      decoder_(std::move(other.decoder_)) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    next_id_ = other.next_id_;
    decoder_ = std::move(other.decoder_);
  }
  return *this;
}

Client::~Client() {
  if (fd_ >= 0) ::close(fd_);
}

Error Client::unreadable(std::string_view what, const Error& why) {
  return Error{ErrorKind::kInternal,
               "the daemon sent " + std::string(what) + " that cannot be read: " + why.message, 0};
}

Result<json::object> Client::exchange(protocol::Command command, json::object args,
                                      std::optional<milliseconds> timeout,
                                      const RawItemHandler& on_item) {
  const std::string frame =
      protocol::encode(protocol::make_request(next_id_++, command, std::move(args)));
  std::string_view rest = frame;
  // A daemon that refuses us (another user's, too many clients) says why and
  // closes without reading: what it said is the answer, not the broken pipe.
  std::optional<Error> send_failed;
  while (!rest.empty()) {
    const ssize_t n = ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return no_daemon("the daemon does not read its requests");
      send_failed = no_daemon("cannot send the request to the daemon: " + errno_text(errno));
      if (errno != EPIPE && errno != ECONNRESET) return *send_failed;
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }

  const auto timeout_text = [&] {
    return "the daemon did not answer within " +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*timeout).count()) + "s";
  };
  std::vector<char> buf(64 * 1024);
  while (true) {
    json::object message;
    std::string error;
    switch (decoder_.next(message, error)) {
      case protocol::FrameDecoder::Status::kMalformed:
        return no_daemon("the daemon sent a malformed message: " + error);
      case protocol::FrameDecoder::Status::kMessage: {
        auto response = protocol::parse_response(message);
        if (!response) return no_daemon("the daemon sent " + response.error().message);
        switch (response->kind) {
          case protocol::Response::Kind::kItem:
            if (on_item) {
              if (auto st = on_item(response->body); !st) return st.error();
            }
            continue;
          case protocol::Response::Kind::kResult:
            return std::move(response->body);
          case protocol::Response::Kind::kError:
            if (response->error.kind == ErrorKind::kVersionMismatch) {
              response->error.message += "; restart it with `sempre daemon stop`";
            }
            return response->error;
        }
        continue;
      }
      case protocol::FrameDecoder::Status::kNeedMore:
        break;
    }

    const auto deadline = timeout ? Clock::now() + *timeout : Clock::time_point::max();
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, timeout ? remaining_ms(deadline) : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return no_daemon("poll: " + errno_text(errno));
    }
    if (n == 0) return no_daemon(timeout_text());
    const ssize_t got = ::recv(fd_, buf.data(), buf.size(), 0);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (send_failed) return *send_failed;
      return no_daemon("lost the connection to the daemon: " + errno_text(errno));
    }
    if (got == 0) return send_failed ? *send_failed : no_daemon("the daemon closed the connection");
    decoder_.feed(std::string_view(buf.data(), static_cast<std::size_t>(got)));
  }
}

std::optional<pid_t> running_daemon_pid(const HomePaths& paths) {
  UniqueFd fd(::open(paths.lock.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return std::nullopt;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return std::nullopt;
  }
  // The daemon writes its pid just after taking the lock.
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  while (true) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n > 0) {
      const long pid = std::strtol(buf, nullptr, 10);
      if (pid > 0) return static_cast<pid_t>(pid);
    }
    if (Clock::now() >= deadline) return pid_t{0};
    std::this_thread::sleep_for(milliseconds(10));
  }
}

bool wait_for_exit(pid_t pid, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto pidfd = os::open_pidfd(pid);
  if (!pidfd) {
    if (pidfd.error().os_error == ESRCH) return true;
    // No pidfds: ask kill() until the process is gone.
    while (::kill(pid, 0) == 0 || errno != ESRCH) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return true;
  }
  while (true) {
    pollfd p{pidfd->get(), POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace sempre::cli
