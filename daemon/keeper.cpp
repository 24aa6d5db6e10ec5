#include "keeper.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>

namespace sempre::keeper {

std::string_view Message::verb() const {
  const std::string_view h = head;
  return h.substr(0, h.find(' '));
}

std::string_view Message::argument() const {
  const std::string_view h = head;
  const auto space = h.find(' ');
  return space == std::string_view::npos ? std::string_view() : h.substr(space + 1);
}

Status send_message(int socket, std::string_view head, std::string_view text,
                    std::span<const int> fds, bool nonblocking) {
  std::string data(head);
  if (!text.empty()) {
    data += '\n';
    data += text;
  }
  if (data.size() > kMaxMessage || fds.size() > kMaxFds) {
    return Error{ErrorKind::kInvalidArgument, "keeper message too large", EMSGSIZE};
  }
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const int flags = MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0);
  for (;;) {
    if (::sendmsg(socket, &msg, flags) >= 0) return {};
    if (errno != EINTR) return os_error(errno, "keeper socket");
  }
}

Result<std::optional<Message>> receive_message(int socket) {
  std::string data(kMaxMessage, '\0');
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<Message>();
    if (errno == ECONNRESET) return Error{ErrorKind::kNotFound, "keeper peer gone", errno};
    return os_error(errno, "keeper socket");
  }
  Message message;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      message.fds.emplace_back(fd);
    }
  }
  if (n == 0 && message.fds.empty()) {
    return Error{ErrorKind::kNotFound, "keeper peer gone", 0};
  }
  data.resize(static_cast<std::size_t>(n));
  const auto newline = data.find('\n');
  if (newline == std::string::npos) {
    message.head = std::move(data);
  } else {
    message.head = data.substr(0, newline);
    message.text = data.substr(newline + 1);
  }
  return std::optional<Message>(std::move(message));
}

void append_log_line(const std::string& path, std::string_view source, std::string_view what,
                     bool to_stderr) {
  char stamp[32];
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03d", static_cast<int>(ms));
  std::string line = std::string("[") + stamp + millis + "] [";
  line.append(source).append("] ").append(what).append("\n");
  if (to_stderr) (void)os::write_all(STDERR_FILENO, line);
  os::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
  if (fd) (void)os::write_all(fd.get(), line);
}

std::string status_text(ExitStatus status) {
  return std::string(status.signaled ? "signal " : "code ") + std::to_string(status.code);
}

std::optional<ExitStatus> parse_status_text(std::string_view text) {
  ExitStatus status;
  if (text.starts_with("signal ")) {
    status.signaled = true;
    text.remove_prefix(7);
  } else if (text.starts_with("code ")) {
    text.remove_prefix(5);
  } else {
    return std::nullopt;
  }
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), status.code);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return status;
}

namespace {

using Clock = std::chrono::steady_clock;

// Reported exits kept for a worker that is not there to hear them; the
// oldest go first.
constexpr std::size_t kMaxPendingExits = 4096;

// A worker that dies before it said "ready" (it could not start, or died
// restoring the apps) is crash-looping: the next one waits kFirstDelay,
// doubling up to kMaxDelay. One that died later is replaced at once.
constexpr auto kFirstDelay = std::chrono::milliseconds(100);
constexpr auto kMaxDelay = std::chrono::seconds(30);
// How long a binary the keeper would replace itself with may take to say
// its version.
constexpr auto kTryLimit = std::chrono::seconds(5);

ExitStatus from_wait_status(int status) {
  if (WIFSIGNALED(status)) return {true, WTERMSIG(status)};
  return {false, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

struct Outgoing {
  std::string head;
  std::string text;
  std::vector<os::UniqueFd> fds;
};

struct Entry {
  std::string text;
  std::vector<os::UniqueFd> fds;
};

enum class Intent { kNone, kRestart, kUpgrade, kExit };

// The first line of the state a keeper hands to the binary it replaces
// itself with; the number changes with the format, and a keeper reads
// every older one.
constexpr std::string_view kStateHeader = "sempred-keeper-state 1";

// What a keeper takes over from the one it replaced.
struct Resumed {
  KeeperOptions options;
  std::optional<struct rlimit> inherited_nofile;
  std::map<std::string, Entry> entries;
  std::deque<std::string> pending_exits;
};

class Keeper {
 public:
  explicit Keeper(const KeeperOptions& options) : options_(options), ready_fd_(options.ready_fd) {}

  // After an upgrade: the state of the keeper this one replaced.
  Keeper(const KeeperOptions& options, Resumed resumed)
      : options_(options),
        ready_fd_(-1),
        entries_(std::move(resumed.entries)),
        pending_exits_(std::move(resumed.pending_exits)),
        first_(false),
        resumed_(true),
        resumed_nofile_(resumed.inherited_nofile) {}

  int run() {
    if (!setup()) return 3;
    if (resumed_nofile_) inherited_nofile_ = resumed_nofile_;
    // What ended around the exec is reaped now, its status kept for the
    // worker, whether or not its SIGCHLD is still pending.
    if (resumed_) (void)reap();
    start_worker();
    for (;;) {
      std::vector<pollfd> fds;
      fds.push_back({signal_fd_.get(), POLLIN, 0});
      if (socket_) {
        short events = POLLIN;
        if (!queue_.empty() && !write_closed_) events |= POLLOUT;
        fds.push_back({socket_.get(), events, 0});
      }
      int timeout = -1;
      if (worker_ == 0 && next_start_) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(*next_start_ - Clock::now());
        timeout = static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0));
      }
      const int n = ::poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) {
        log("poll: " + std::string(std::strerror(errno)));
        return 3;
      }
      if (n > 0 && (fds[0].revents & POLLIN) != 0) {
        if (auto code = on_signals()) return *code;
      }
      if (n > 0 && fds.size() > 1 && socket_) {
        if ((fds[1].revents & POLLOUT) != 0) flush();
        if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_worker();
      }
      if (worker_ == 0 && next_start_ && Clock::now() >= *next_start_) start_worker();
    }
  }

 private:
  bool setup() {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    // Two descriptors per app are held here: the default soft limit of 1024
    // would cap the apps at about 500.
    // The worker (and through it every app) gets the limit as it was.
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      inherited_nofile_ = limit;
      if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
      }
    }
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    signal_fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signal_fd_) {
      log("signalfd: " + std::string(std::strerror(errno)));
      return false;
    }
    return true;
  }

  void start_worker() {
    next_start_.reset();
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
      log("cannot make the worker's socket: " + std::string(std::strerror(errno)));
      schedule_start();
      return;
    }
    os::UniqueFd ours(pair[0]);
    os::UniqueFd theirs(pair[1]);
    std::vector<std::string> args = options_.args;
    args.insert(args.begin(), options_.program);
    for (auto [flag, fd] :
         {std::pair{"--keeper-fd", theirs.get()}, std::pair{"--listen-fd", options_.listen_fd},
          std::pair{"--lock-fd", options_.lock_fd}, std::pair{"--ready-fd", ready_fd_}}) {
      if (fd < 0) continue;
      args.emplace_back(flag);
      args.push_back(std::to_string(fd));
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int keep[] = {theirs.get(), options_.listen_fd, options_.lock_fd, ready_fd_};

    const pid_t pid = ::fork();
    if (pid < 0) {
      log("cannot fork the worker: " + std::string(std::strerror(errno)));
      schedule_start();
      return;
    }
    if (pid == 0) {
      for (int fd : keep) {
        if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
      }
      if (inherited_nofile_) ::setrlimit(RLIMIT_NOFILE, &*inherited_nofile_);
      // TERM, INT and HUP stay blocked until the worker can handle them
      // (it unblocks them then): one forwarded now waits for it.
      sigset_t held;
      sigemptyset(&held);
      for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&held, sig);
      ::sigprocmask(SIG_SETMASK, &held, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      ::execv(options_.program.c_str(), argv.data());
      // Removed and not replaced: the binary this keeper runs still exists.
      if (errno == ENOENT) ::execv("/proc/self/exe", argv.data());
      const std::string message =
          "sempred: cannot run " + options_.program + ": " + std::strerror(errno) + "\n";
      (void)!::write(STDERR_FILENO, message.data(), message.size());
      ::_exit(127);
    }
    if (ready_fd_ >= 0) ::close(ready_fd_);
    ready_fd_ = -1;
    worker_ = pid;
    ready_ = false;
    intent_ = Intent::kNone;
    socket_ = std::move(ours);
    queue_.clear();
    hand_over();
    if (forward_on_start_ != 0) {
      ::kill(worker_, forward_on_start_);
      forward_on_start_ = 0;
    }
  }

  // Everything the last worker left: every entry, then the exits since.
  void hand_over() {
    push("hello " + std::to_string(kVersion) + " " + std::to_string(::getpid()), "", {});
    for (const auto& [name, entry] : entries_) {
      std::vector<os::UniqueFd> copies;
      for (const os::UniqueFd& fd : entry.fds) {
        copies.emplace_back(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
        if (!copies.back()) {
          log("cannot hand " + name + " over: " + std::strerror(errno));
          copies.pop_back();
        }
      }
      push("entry " + name, entry.text, std::move(copies));
    }
    for (std::string& exit : pending_exits_) push(std::move(exit), "", {});
    pending_exits_.clear();
    push("end", "", {});
  }

  void push(std::string head, std::string text, std::vector<os::UniqueFd> fds) {
    queue_.push_back(Outgoing{std::move(head), std::move(text), std::move(fds)});
    flush();
  }

  void flush() {
    while (socket_ && !write_closed_ && !queue_.empty()) {
      const Outgoing& next = queue_.front();
      std::vector<int> raw;
      for (const os::UniqueFd& fd : next.fds) raw.push_back(fd.get());
      Status st = send_message(socket_.get(), next.head, next.text, raw, /*nonblocking=*/true);
      if (!st) {
        if (st.error().os_error == EAGAIN || st.error().os_error == EWOULDBLOCK) return;
        // Nothing more can be sent, but what the worker sent is still read
        // (its last words): the socket goes at its end, or the worker's.
        if (st.error().os_error == EPIPE || st.error().os_error == ECONNRESET) {
          write_closed_ = true;
        }
        return;
      }
      queue_.pop_front();
    }
  }

  // The worker is gone: what it did not get is kept for the next one (its
  // entries are handed over anyway; exits would be lost).
  void lose_worker_socket() {
    socket_.reset();
    write_closed_ = false;
    for (auto it = queue_.rbegin(); it != queue_.rend(); ++it) {
      if (it->head.starts_with("exit ")) pending_exits_.push_front(std::move(it->head));
    }
    queue_.clear();
  }

  void read_worker() {
    for (;;) {
      auto received = receive_message(socket_.get());
      if (!received) {
        lose_worker_socket();
        return;
      }
      if (!*received) return;
      Message& m = **received;
      const std::string_view verb = m.verb();
      if (verb == "keep") {
        Entry& entry = entries_[std::string(m.argument())];
        entry.text = std::move(m.text);
        if (!m.fds.empty()) entry.fds = std::move(m.fds);
      } else if (verb == "drop") {
        entries_.erase(std::string(m.argument()));
      } else if (verb == "restart") {
        intent_ = Intent::kRestart;
      } else if (verb == "upgrade") {
        intent_ = Intent::kUpgrade;
      } else if (verb == "exit") {
        intent_ = Intent::kExit;
      } else if (verb == "ready") {
        first_ = false;
        ready_ = true;
      }
      if (!socket_) return;
    }
  }

  std::optional<int> on_signals() {
    signalfd_siginfo info{};
    while (::read(signal_fd_.get(), &info, sizeof info) == sizeof info) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        if (auto code = reap()) return code;
        continue;
      }
      if (worker_ > 0) {
        ::kill(worker_, sig);
      } else if (sig == SIGTERM || sig == SIGINT) {
        // Between two workers: the next one stops every app, as asked.
        forward_on_start_ = sig;
      }
    }
    return std::nullopt;
  }

  std::optional<int> reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return std::nullopt;
      const ExitStatus exit = from_wait_status(status);
      if (pid != worker_) {
        report_exit(pid, exit);
        continue;
      }
      if (auto code = on_worker_exit(exit)) return code;
    }
  }

  void report_exit(pid_t pid, ExitStatus status) {
    std::string head = "exit " + std::to_string(pid) + " " + status_text(status);
    if (socket_ && worker_ > 0) {
      push(std::move(head), "", {});
      return;
    }
    pending_exits_.push_back(std::move(head));
    if (pending_exits_.size() > kMaxPendingExits) pending_exits_.pop_front();
  }

  std::optional<int> on_worker_exit(ExitStatus status) {
    const pid_t pid = worker_;
    worker_ = 0;
    read_worker_rest();
    lose_worker_socket();
    if (!status.signaled && status.code == 0) intent_ = Intent::kExit;
    if (!status.signaled && status.code == kRestartCode && intent_ != Intent::kUpgrade) {
      intent_ = Intent::kRestart;
    }
    if (intent_ == Intent::kExit) return status.signaled ? 128 + status.code : status.code;
    if (first_ && !status.signaled && status.code != 0) {
      // The first worker could not start (and said why on the ready
      // descriptor): there is nothing to keep.
      return status.code;
    }
    if (intent_ == Intent::kUpgrade) {
      log("sempred worker " + std::to_string(pid) + " restarting on request, keeper too");
      replace_self();  // returns only if it could not
      start_worker();
    } else if (intent_ == Intent::kRestart) {
      log("sempred worker " + std::to_string(pid) + " restarting on request");
      start_worker();
    } else {
      log("sempred worker " + std::to_string(pid) + " ended (" + status_text(status) +
          "); starting another, the apps keep running");
      if (!ready_) {
        schedule_start();
      } else {
        delay_ = std::chrono::milliseconds(0);
        start_worker();
      }
    }
    return std::nullopt;
  }

  // Execs the binary at the keeper's path in its place, same pid (the apps
  // stay its children), every descriptor it holds kept open across the
  // exec and described, with the rest of its state, in a memfd
  // (`--keeper-resume FD`). Returns only when that could not be done; the
  // keeper then goes on as it was.
  void replace_self() {
    std::string state(kStateHeader);
    state += "\n";
    // One value per line: a newline inside one cannot be carried.
    bool carried = true;
    auto line = [&state, &carried](std::string_view key, std::string_view value) {
      if (value.find('\n') != std::string_view::npos) carried = false;
      state.append(key).append(" ").append(value).append("\n");
    };
    std::vector<int> kept = {options_.listen_fd, options_.lock_fd};
    line("program", options_.program);
    line("log", options_.log_path);
    line("stderr", options_.log_to_stderr ? "1" : "0");
    line("listen", std::to_string(options_.listen_fd));
    line("lock", std::to_string(options_.lock_fd));
    if (inherited_nofile_) {
      line("nofile", std::to_string(inherited_nofile_->rlim_cur) + " " +
                         std::to_string(inherited_nofile_->rlim_max));
    }
    for (const std::string& arg : options_.args) line("arg", arg);
    for (const auto& [name, entry] : entries_) {
      std::string fds;
      for (const os::UniqueFd& fd : entry.fds) {
        fds += (fds.empty() ? "" : ",") + std::to_string(fd.get());
        kept.push_back(fd.get());
      }
      line("entry", name + "\t" + (fds.empty() ? "-" : fds) + "\t" + entry.text);
    }
    for (const std::string& exit : pending_exits_) line("pending", exit);
    state += "end\n";
    if (!carried) {
      log("cannot replace the keeper: a value holds a newline; the keeper stays as it is");
      return;
    }

    os::UniqueFd memo(static_cast<int>(::syscall(SYS_memfd_create, "sempred-keeper-state", 0)));
    if (!memo || !os::write_all(memo.get(), state) || ::lseek(memo.get(), 0, SEEK_SET) != 0) {
      log("cannot replace the keeper: cannot write its state: " +
          std::string(std::strerror(errno)));
      return;
    }
    kept.push_back(memo.get());
    // A binary that cannot take over (one that does not run, an older one
    // that knows no --keeper-resume, a state it cannot read) must not take
    // the keeper, and with it the apps' pipes, down: it is tried first, on
    // this very state, as a dry run.
    if (std::string why = try_program(memo.get(), kept); !why.empty()) {
      log("cannot replace the keeper: " + options_.program + " " + why +
          "; the keeper stays as it is");
      return;
    }
    const std::string fd_text = std::to_string(memo.get());
    std::string program = options_.program;
    const std::string flag = "--keeper-resume";
    char* argv[] = {program.data(), const_cast<char*>(flag.c_str()),
                    const_cast<char*>(fd_text.c_str()), nullptr};
    for (int fd : kept) ::fcntl(fd, F_SETFD, 0);
    ::execv(options_.program.c_str(), argv);
    const int err = errno;
    for (int fd : kept) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    log("cannot replace the keeper with " + options_.program + ": " + std::strerror(err) +
        "; the keeper stays as it is");
  }

  // Runs `PROGRAM --keeper-resume STATE --check` with the descriptors of
  // `kept` open, which must read the state and find them all, and exit 0,
  // within kTryLimit; empty when it did, else what went wrong. The keeper
  // waits for it (a few ms): no worker runs meanwhile, and the apps' output
  // waits in their pipes.
  std::string try_program(int state_fd, const std::vector<int>& kept) {
    const std::string fd_text = std::to_string(state_fd);
    const pid_t pid = ::fork();
    if (pid < 0) return "could not be tried: " + std::string(std::strerror(errno));
    if (pid == 0) {
      const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
        ::dup2(null, STDOUT_FILENO);
      }
      for (int fd : kept) ::fcntl(fd, F_SETFD, 0);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const char* argv[] = {options_.program.c_str(), "--keeper-resume", fd_text.c_str(), "--check",
                            nullptr};
      ::execv(options_.program.c_str(), const_cast<char* const*>(argv));
      ::_exit(127);
    }
    os::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    const auto deadline = Clock::now() + kTryLimit;
    for (;;) {
      int status = 0;
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      if (done == pid) {
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
        return "cannot take over (" + status_text(from_wait_status(status)) +
               " from --keeper-resume --check)";
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || !pidfd) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return "does not answer --keeper-resume --check";
      }
      pollfd p{pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
  }

  // What the worker sent before it died still counts (a last drop).
  void read_worker_rest() {
    if (socket_) read_worker();
  }

  void schedule_start() {
    delay_ = std::min<std::chrono::milliseconds>(
        delay_ * 2 < kFirstDelay ? kFirstDelay : delay_ * 2,
        std::chrono::duration_cast<std::chrono::milliseconds>(kMaxDelay));
    next_start_ = Clock::now() + delay_;
    log("next worker in " + std::to_string(delay_.count()) + " ms");
  }

  void log(const std::string& what) {
    append_log_line(options_.log_path, "keeper", what, options_.log_to_stderr);
  }

  const KeeperOptions& options_;
  int ready_fd_;  // for the first worker only
  std::optional<struct rlimit> inherited_nofile_;
  os::UniqueFd signal_fd_;
  os::UniqueFd socket_;        // to the current worker; none between workers
  bool write_closed_ = false;  // the worker reads no more
  std::deque<Outgoing> queue_;
  std::map<std::string, Entry> entries_;
  std::deque<std::string> pending_exits_;
  pid_t worker_ = 0;
  bool first_ = true;  // no worker has said "ready" yet
  Intent intent_ = Intent::kNone;
  bool ready_ = false;  // the current worker said "ready"
  std::optional<Clock::time_point> next_start_;
  std::chrono::milliseconds delay_{0};
  int forward_on_start_ = 0;
  bool resumed_ = false;  // made by resume_keeper()
  std::optional<struct rlimit> resumed_nofile_;
};

// The descriptor number at the start of `text`, open here, made
// close-on-exec again; -1 when it is none of that.
int take_descriptor(std::string_view text) {
  int fd = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
  if (ec != std::errc() || end != text.data() + text.size() || fd < 0) return -1;
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return -1;
  return fd;
}

// The state replace_self() wrote, read back; an error names what is wrong.
Result<Resumed> read_resumed(int state_fd) {
  // pread: a dry run (--check) shares the offset with the keeper that made it.
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::pread(state_fd, buffer, sizeof buffer, static_cast<off_t>(text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return os_error(errno, "reading the keeper's state");
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(state_fd);
  auto bad = [](const std::string& what) {
    return Error{ErrorKind::kMalformed, "the keeper's state: " + what, 0};
  };
  Resumed resumed;
  std::string_view rest = text;
  bool header = false;
  bool ended = false;
  while (!rest.empty()) {
    const std::size_t newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (!header) {
      if (line != kStateHeader) return bad("unknown format \"" + std::string(line) + "\"");
      header = true;
      continue;
    }
    if (line == "end") {
      ended = true;
      break;
    }
    const std::size_t space = line.find(' ');
    const std::string_view key = line.substr(0, space);
    const std::string_view value =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    KeeperOptions& o = resumed.options;
    if (key == "program") {
      o.program = std::string(value);
    } else if (key == "log") {
      o.log_path = std::string(value);
    } else if (key == "stderr") {
      o.log_to_stderr = value == "1";
    } else if (key == "listen" || key == "lock") {
      const int fd = take_descriptor(value);
      if (fd < 0) return bad(std::string(key) + " descriptor " + std::string(value));
      (key == "listen" ? o.listen_fd : o.lock_fd) = fd;
    } else if (key == "nofile") {
      struct rlimit limit {};
      const std::size_t gap = value.find(' ');
      const std::string_view cur = value.substr(0, gap);
      const std::string_view max = gap == std::string_view::npos ? "" : value.substr(gap + 1);
      if (std::from_chars(cur.data(), cur.data() + cur.size(), limit.rlim_cur).ec != std::errc() ||
          std::from_chars(max.data(), max.data() + max.size(), limit.rlim_max).ec != std::errc()) {
        return bad("nofile " + std::string(value));
      }
      resumed.inherited_nofile = limit;
    } else if (key == "arg") {
      o.args.emplace_back(value);
    } else if (key == "entry") {
      const std::size_t tab = value.find('\t');
      const std::size_t tab2 = tab == std::string_view::npos ? tab : value.find('\t', tab + 1);
      if (tab2 == std::string_view::npos) return bad("entry " + std::string(value));
      Entry entry;
      std::string_view fds = value.substr(tab + 1, tab2 - tab - 1);
      while (fds != "-" && !fds.empty()) {
        const std::size_t comma = fds.find(',');
        const int fd = take_descriptor(fds.substr(0, comma));
        if (fd < 0) return bad("entry descriptor in " + std::string(value));
        entry.fds.emplace_back(fd);
        fds.remove_prefix(comma == std::string_view::npos ? fds.size() : comma + 1);
      }
      entry.text = std::string(value.substr(tab2 + 1));
      resumed.entries[std::string(value.substr(0, tab))] = std::move(entry);
    } else if (key == "pending") {
      resumed.pending_exits.emplace_back(value);
    }  // a key of a later format is not this keeper's to know
  }
  if (!ended) return bad("cut short");
  if (resumed.options.program.empty() || resumed.options.listen_fd < 0 ||
      resumed.options.lock_fd < 0) {
    return bad("no program, socket or lock");
  }
  return resumed;
}

}  // namespace

int run_keeper(const KeeperOptions& options) {
  Keeper keeper(options);
  return keeper.run();
}

int resume_keeper(int state_fd, bool check_only) {
  Result<Resumed> resumed = read_resumed(state_fd);
  if (!resumed) {
    const std::string message = "sempred: " + resumed.error().message + "\n";
    (void)os::write_all(STDERR_FILENO, message);
    return 3;
  }
  if (check_only) return 0;
  const KeeperOptions options = resumed->options;
  Keeper keeper(options, std::move(*resumed));
  return keeper.run();
}

}  // namespace sempre::keeper
