// A Launcher that starts nothing: the test decides when each "child" exits,
// whether its group empties, and which spawns fail.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <map>
#include <memory>
#include <vector>

#include "sempre/launcher.hpp"

namespace sempre::test {

class FakeLauncher final : public Launcher {
 public:
  struct ChildState {
    pid_t pid = 0;
    std::function<void(ExitStatus)> on_exit;
    std::function<void()> on_group_empty;
    std::vector<int> signals;  // sent to the group, in order
    bool exited = false;
    bool group_alive = true;  // a leftover member outlives the main process
    bool exit_on_kill_signal = true;
    bool stuck = false;  // in the kernel: not even SIGKILL ends it
    int kill_signal = SIGTERM;
  };

  FakeLauncher() = default;
  ~FakeLauncher() override { release_output(); }

  Result<std::unique_ptr<ChildProcess>> launch(const LaunchRequest& request) override {
    requests.push_back(request);
    if (fail_next_errno != 0) {
      const int e = fail_next_errno;
      fail_next_errno = 0;
      return os_error(e, request.argv.empty() ? "?" : request.argv[0]);
    }
    if (hold_output) {
      for (int fd : {request.stdout_fd, request.stderr_fd}) {
        if (fd >= 0) held_output.push_back(::dup(fd));
      }
    }
    auto state = std::make_shared<ChildState>();
    state->pid = next_pid++;
    state->kill_signal = kill_signal;
    state->exit_on_kill_signal = exit_on_kill_signal;
    state->stuck = stuck;
    children.push_back(state);
    return std::unique_ptr<ChildProcess>(new FakeChild(this, state));
  }

  // The main process of the latest child exits with `status`. Its group is
  // empty unless `leftover`.
  void exit_latest(ExitStatus status, bool leftover = false) {
    exit(children.back(), status, leftover);
  }

  void exit(const std::shared_ptr<ChildState>& c, ExitStatus status, bool leftover = false) {
    if (c->exited) return;
    c->exited = true;
    c->group_alive = leftover;
    if (c->on_exit) {
      auto cb = std::move(c->on_exit);
      cb(status);
    }
  }

  // The leftover members of the latest child's group are gone.
  void empty_group(const std::shared_ptr<ChildState>& c) {
    c->group_alive = false;
    if (c->on_group_empty) {
      auto cb = std::move(c->on_group_empty);
      cb();
    }
  }

  const std::shared_ptr<ChildState>& latest() const { return children.back(); }

  // Closes the copies of the output pipes that hold_output kept.
  void release_output() {
    for (int fd : held_output) ::close(fd);
    held_output.clear();
  }

  std::vector<LaunchRequest> requests;
  std::vector<std::shared_ptr<ChildState>> children;
  int fail_next_errno = 0;
  pid_t next_pid = 1000;
  // How new children react to signals: exit on kill_signal (code = signal) or
  // ignore everything but SIGKILL.
  bool exit_on_kill_signal = true;
  bool stuck = false;
  int kill_signal = SIGTERM;
  // Keep a copy of each child's stdout and stderr open, as a process that
  // left the group would.
  bool hold_output = false;
  std::vector<int> held_output;

 private:
  class FakeChild final : public ChildProcess {
   public:
    FakeChild(FakeLauncher* launcher, std::shared_ptr<ChildState> state)
        : launcher_(launcher), state_(std::move(state)) {}
    pid_t pid() const override { return state_->pid; }
    void async_wait(std::function<void(ExitStatus)> done) override {
      state_->on_exit = std::move(done);
    }
    bool signal_group(int sig) override {
      if (state_->exited && !state_->group_alive) return false;
      state_->signals.push_back(sig);
      if (state_->stuck) return true;
      if (sig == SIGKILL || (sig == state_->kill_signal && state_->exit_on_kill_signal)) {
        if (!state_->exited) launcher_->exit(state_, ExitStatus{true, sig});
        launcher_->empty_group(state_);
      }
      return true;
    }
    void async_wait_group_empty(std::function<void()> done) override {
      if (!state_->group_alive) {
        done();
        return;
      }
      state_->on_group_empty = std::move(done);
    }

   private:
    FakeLauncher* launcher_;
    std::shared_ptr<ChildState> state_;
  };
};

}  // namespace sempre::test
