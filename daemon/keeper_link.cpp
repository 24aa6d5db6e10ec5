#include "keeper_link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <deque>
#include <list>

#include "keeper.hpp"

namespace sempre {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

// How long an adopted process's status may take to come once its pidfd
// said it ended: the keeper reaps at once, so only a keeper that is gone
// makes it wait this long.
constexpr auto kStatusLimit = std::chrono::seconds(5);
// How long for a process that is gone already (no zombie left): the keeper
// reaped it and its report is on its way, or the last worker reaped it and
// no report will ever come.
constexpr auto kGoneStatusLimit = std::chrono::milliseconds(200);
// Statuses kept for processes nobody asked about yet.
constexpr std::size_t kMaxReported = 4096;

template <class T>
bool parse_number(std::string_view text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string KeptRun::text() const {
  if (!pid) return "pending";
  std::string out = "pid=" + std::to_string(*pid) + " start=" + std::to_string(start_time);
  if (starting) out += " starting";
  if (exit) out += (exit->signaled ? " signal=" : " code=") + std::to_string(exit->code);
  return out;
}

std::optional<KeptRun> KeptRun::parse(std::string_view text) {
  KeptRun run;
  if (text == "pending") return run;
  if (!text.starts_with("pid=")) return std::nullopt;
  text.remove_prefix(4);
  const auto space = text.find(" start=");
  if (space == std::string_view::npos) return std::nullopt;
  pid_t pid = 0;
  if (!parse_number(text.substr(0, space), pid) || pid <= 0) return std::nullopt;
  text.remove_prefix(space + 7);
  // "pid=P start=S", then " starting" until it is ready, and " code=N" or
  // " signal=N" once its main process ended.
  auto ended = text.find(' ');
  if (!parse_number(text.substr(0, ended), run.start_time)) return std::nullopt;
  if (ended != std::string_view::npos && text.substr(ended + 1).starts_with("starting")) {
    run.starting = true;
    text.remove_prefix(ended + 1);
    ended = text.find(' ');
    if (text.substr(0, ended) != "starting") return std::nullopt;
  }
  if (ended != std::string_view::npos) {
    std::string_view how = text.substr(ended + 1);
    ExitStatus status;
    if (how.starts_with("code=")) {
      how.remove_prefix(5);
    } else if (how.starts_with("signal=")) {
      how.remove_prefix(7);
      status.signaled = true;
    } else {
      return std::nullopt;
    }
    if (!parse_number(how, status.code)) return std::nullopt;
    run.exit = status;
  }
  run.pid = pid;
  return run;
}

class KeeperLink::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, std::shared_ptr<spdlog::logger> log)
      : executor_(executor), socket_(executor), log_(std::move(log)) {}

  Status open(int fd, milliseconds limit) {
    boost::system::error_code ec;
    socket_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return os_error(ec.value(), "keeper socket");
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool greeted = false;
    for (;;) {
      auto received = keeper::receive_message(fd);
      if (!received) return received.error();
      if (!*received) {
        const auto left =
            std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          return Error{ErrorKind::kUnavailable, "the keeper's hand-over did not come", ETIMEDOUT};
        }
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(left.count()));
        continue;
      }
      keeper::Message& m = **received;
      const std::string_view verb = m.verb();
      if (verb == "hello") {
        const std::string_view arg = m.argument();
        const auto space = arg.find(' ');
        int version = 0;
        if (space == std::string_view::npos || !parse_number(arg.substr(0, space), version) ||
            !parse_number(arg.substr(space + 1), keeper_pid_)) {
          return Error{ErrorKind::kMalformed, "the keeper's greeting is malformed", 0};
        }
        if (version != keeper::kVersion) {
          return Error{ErrorKind::kVersionMismatch,
                       "the keeper speaks version " + std::to_string(version) + ", this worker " +
                           std::to_string(keeper::kVersion),
                       0};
        }
        greeted = true;
      } else if (!greeted) {
        return Error{ErrorKind::kMalformed, "the keeper did not greet first", 0};
      } else if (verb == "entry") {
        entries_[std::string(m.argument())] = Entry{std::move(m.text), std::move(m.fds)};
      } else if (verb == "exit") {
        on_exit(m.argument());
      } else if (verb == "end") {
        break;
      }
    }
    return {};
  }

  void start_reading() { wait_read(); }

  pid_t keeper_pid() const { return gone_ ? 0 : keeper_pid_; }
  void on_lost(std::function<void()> handler) { on_lost_ = std::move(handler); }

  std::map<std::string, Entry> take_entries() { return std::exchange(entries_, {}); }

  void send(std::string head, std::string text, std::span<const int> fds) {
    if (gone_) return;
    Outgoing out{std::move(head), std::move(text), {}};
    for (int fd : fds) {
      if (fd < 0) continue;
      out.fds.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
      if (!out.fds.back()) {
        log_->error("keeper: cannot hand {} over: {}", out.head, std::strerror(errno));
        out.fds.pop_back();
      }
    }
    const bool has_fds = !out.fds.empty();
    queue_.push_back(std::move(out));
    flush();
    // A run's pipes must be with the keeper before its spawn: wait (briefly)
    // for a keeper that is slow to read rather than spawn unknown to it.
    if (has_fds && !queue_.empty()) drain(std::chrono::milliseconds(500));
  }

  // Sends what is queued, waiting for the socket at most `limit`.
  void drain(milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!queue_.empty() && !gone_) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        log_->warn("keeper: {} message(s) still queued after {} ms", queue_.size(), limit.count());
        return;
      }
      pollfd p{socket_.native_handle(), POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      flush_now();
    }
  }

  void finish(std::string_view verb) {
    if (gone_) return;
    queue_.push_back(Outgoing{std::string(verb), {}, {}});
    flush_now();
    drain(std::chrono::seconds(1));
  }

  void wait_status(pid_t pid, std::function<void(std::optional<ExitStatus>)> done) {
    // A report already sent is taken first.
    if (!gone_ && reported_.find(pid) == reported_.end()) receive_pending();
    if (auto it = reported_.find(pid); it != reported_.end()) {
      const ExitStatus status = it->second;
      reported_.erase(it);
      asio::post(executor_, [done = std::move(done), status] { done(status); });
      return;
    }
    if (gone_) {
      asio::post(executor_, [done = std::move(done)] { done(std::nullopt); });
      return;
    }
    // A zombie of the keeper's will be reaped and reported; anything else is
    // gone, and its report, if any, is close behind.
    auto stat = os::read_proc_stat(pid);
    const bool zombie = stat && stat->state == 'Z' && stat->ppid == keeper_pid_;
    auto& waiter = waiters_.emplace_back(Waiter{pid, std::move(done), nullptr});
    waiter.timer = std::make_unique<asio::steady_timer>(
        executor_, zombie ? milliseconds(kStatusLimit) : milliseconds(kGoneStatusLimit));
    std::weak_ptr<Impl> weak = weak_from_this();
    waiter.timer->async_wait([weak, pid](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->log_->info("keeper: no exit status came for pid {}: it is unknown", pid);
      self->resolve(pid, std::nullopt);
    });
  }

  void close() {
    gone_ = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  struct Outgoing {
    std::string head;
    std::string text;
    std::vector<os::UniqueFd> fds;
  };
  struct Waiter {
    pid_t pid;
    std::function<void(std::optional<ExitStatus>)> done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  void flush() { flush_now(); }

  // Sends what the socket takes now; waits for it to be writable (on the
  // executor) for the rest.
  void flush_now() {
    while (!queue_.empty() && !gone_) {
      const Outgoing& next = queue_.front();
      std::vector<int> raw;
      for (const os::UniqueFd& fd : next.fds) raw.push_back(fd.get());
      Status st = keeper::send_message(socket_.native_handle(), next.head, next.text, raw, true);
      if (!st) {
        if (st.error().os_error == EAGAIN || st.error().os_error == EWOULDBLOCK) {
          wait_write();
          return;
        }
        lose_keeper(st.error().message);
        return;
      }
      queue_.pop_front();
    }
  }

  void wait_write() {
    if (writing_) return;
    writing_ = true;
    std::weak_ptr<Impl> weak = weak_from_this();
    socket_.async_wait(asio::posix::stream_descriptor::wait_write,
                       [weak](const boost::system::error_code& ec) {
                         auto self = weak.lock();
                         if (!self) return;
                         self->writing_ = false;
                         if (ec) return;
                         self->flush();
                       });
  }

  void wait_read() {
    std::weak_ptr<Impl> weak = weak_from_this();
    socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                       [weak](const boost::system::error_code& ec) {
                         auto self = weak.lock();
                         if (!self || ec == asio::error::operation_aborted || self->gone_) return;
                         self->on_readable();
                       });
  }

  void on_readable() {
    receive_pending();
    if (!gone_) wait_read();
  }

  // Takes every message waiting on the socket, without blocking.
  void receive_pending() {
    while (!gone_) {
      auto received = keeper::receive_message(socket_.native_handle());
      if (!received) {
        lose_keeper(received.error().message);
        return;
      }
      if (!*received) return;
      keeper::Message& m = **received;
      if (m.verb() == "exit") on_exit(m.argument());
    }
  }

  // "PID STATUS"
  void on_exit(std::string_view argument) {
    const auto space = argument.find(' ');
    pid_t pid = 0;
    if (space == std::string_view::npos || !parse_number(argument.substr(0, space), pid)) return;
    const auto status = keeper::parse_status_text(argument.substr(space + 1));
    if (!status) return;
    if (resolve(pid, *status)) return;
    reported_[pid] = *status;
    order_.push_back(pid);
    while (order_.size() > kMaxReported) {
      reported_.erase(order_.front());
      order_.pop_front();
    }
  }

  // Hands `status` to whoever waits for `pid`; false when nobody does.
  bool resolve(pid_t pid, std::optional<ExitStatus> status) {
    bool any = false;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->pid != pid) {
        ++it;
        continue;
      }
      auto done = std::move(it->done);
      it = waiters_.erase(it);
      asio::post(executor_, [done = std::move(done), status] { done(status); });
      any = true;
    }
    return any;
  }

  void lose_keeper(const std::string& why) {
    if (gone_) return;
    log_->error("lost the keeper ({}): a crash of this daemon would now stop every app", why);
    gone_ = true;
    queue_.clear();
    boost::system::error_code ignored;
    socket_.close(ignored);
    std::vector<pid_t> pids;
    for (const Waiter& w : waiters_) pids.push_back(w.pid);
    for (pid_t pid : pids) resolve(pid, std::nullopt);
    if (auto handler = std::exchange(on_lost_, nullptr)) handler();
  }

  asio::any_io_executor executor_;
  asio::posix::stream_descriptor socket_;
  std::shared_ptr<spdlog::logger> log_;
  pid_t keeper_pid_ = 0;
  bool gone_ = false;
  bool writing_ = false;
  std::function<void()> on_lost_;
  std::map<std::string, Entry> entries_;

 public:
  // The start time of each kept run's main process, by name, as last told:
  // what the keeper is told when that process has ended, and no /proc
  // entry is left to read it from.
  std::map<std::string, std::uint64_t> starts_;

 private:
  std::deque<Outgoing> queue_;
  std::map<pid_t, ExitStatus> reported_;
  std::deque<pid_t> order_;
  std::list<Waiter> waiters_;
};

namespace {

// The RunKeeper of one app: its runs under one name.
class NamedRunKeeper final : public RunKeeper {
 public:
  NamedRunKeeper(std::weak_ptr<KeeperLink::Impl> link, std::string name)
      : link_(std::move(link)), name_(std::move(name)) {}

  void keep_pipes(int stdout_read_fd, int stderr_read_fd) override {
    keep_pipes_and_notify(stdout_read_fd, stderr_read_fd, -1);
  }

  void keep_pipes_and_notify(int stdout_read_fd, int stderr_read_fd, int notify_fd) override {
    if (auto link = link_.lock()) {
      const int fds[] = {stdout_read_fd, stderr_read_fd, notify_fd};
      link->send("keep " + name_, KeptRun{}.text(),
                 std::span<const int>(fds, notify_fd >= 0 ? 3 : 2));
    }
  }

  void keep_pid(pid_t pid) override {
    auto link = link_.lock();
    if (!link) return;
    KeptRun run;
    run.pid = pid;
    run.starting = true;
    if (auto stat = os::read_proc_stat(pid)) run.start_time = stat->starttime;
    link->starts_[name_] = run.start_time;
    link->send("keep " + name_, run.text(), {});
  }

  void keep_ready(pid_t pid) override {
    auto link = link_.lock();
    if (!link) return;
    KeptRun run;
    run.pid = pid;
    if (auto stat = os::read_proc_stat(pid)) run.start_time = stat->starttime;
    link->starts_[name_] = run.start_time;
    link->send("keep " + name_, run.text(), {});
  }

  void keep_exit(pid_t pid, ExitStatus status) override {
    auto link = link_.lock();
    if (!link) return;
    KeptRun run;
    run.pid = pid;
    run.exit = status;
    if (auto it = link->starts_.find(name_); it != link->starts_.end()) run.start_time = it->second;
    link->send("keep " + name_, run.text(), {});
  }

  void forget_run() override {
    if (auto link = link_.lock()) {
      link->starts_.erase(name_);
      link->send("drop " + name_, {}, {});
    }
  }

 private:
  std::weak_ptr<KeeperLink::Impl> link_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<KeeperLink>> KeeperLink::open(asio::any_io_executor executor, int fd,
                                                     std::shared_ptr<spdlog::logger> log,
                                                     milliseconds limit) {
  auto impl = std::make_shared<Impl>(executor, std::move(log));
  if (auto st = impl->open(fd, limit); !st) return st.error();
  impl->start_reading();
  return std::unique_ptr<KeeperLink>(new KeeperLink(std::move(impl)));
}

KeeperLink::KeeperLink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
KeeperLink::~KeeperLink() { impl_->close(); }
pid_t KeeperLink::keeper_pid() const { return impl_->keeper_pid(); }
void KeeperLink::on_lost(std::function<void()> handler) { impl_->on_lost(std::move(handler)); }
std::map<std::string, KeeperLink::Entry> KeeperLink::take_entries() {
  return impl_->take_entries();
}
void KeeperLink::keep(const std::string& name, const std::string& text, std::span<const int> fds) {
  impl_->send("keep " + name, text, fds);
}
void KeeperLink::drop(const std::string& name) {
  impl_->starts_.erase(name);
  impl_->send("drop " + name, {}, {});
}
void KeeperLink::note_start(const std::string& name, std::uint64_t start_time) {
  impl_->starts_[name] = start_time;
}
void KeeperLink::ready() { impl_->send("ready", {}, {}); }
void KeeperLink::finish(std::string_view verb) { impl_->finish(verb); }

ExitStatusSource KeeperLink::exit_source() {
  std::weak_ptr<Impl> weak = impl_;
  return [weak](pid_t pid, std::function<void(std::optional<ExitStatus>)> done) {
    if (auto impl = weak.lock()) {
      impl->wait_status(pid, std::move(done));
    } else {
      done(std::nullopt);
    }
  };
}

std::unique_ptr<RunKeeper> KeeperLink::run_keeper(std::string name) {
  return std::make_unique<NamedRunKeeper>(impl_, std::move(name));
}

}  // namespace sempre
