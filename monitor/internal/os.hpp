// Small helpers over the OS calls that sempre makes in several places: one
// descriptor owner, one write loop, one atomic file write, one pidfd
// wrapper, one /proc/PID/stat parser. Internal: not installed, but reachable
// by every in-tree target that links sempre_monitor_objects. Plain functions
// without state, usable from any thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sempre/result.hpp"

namespace sempre::os {

// Owns one file descriptor and closes it when destroyed. Move-only; -1 is
// "none".
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  // Gives the descriptor up without closing it.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the descriptor held, if any, and holds `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Both ends of a pipe, close-on-exec.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
// Fails with the errno of pipe2 (EMFILE, ENFILE).
Result<Pipe> make_pipe();

// Writes all of `data` to the blocking descriptor `fd`, retrying on EINTR
// and after short writes. Fails with the errno of the write that failed
// (EIO for a write that wrote nothing), and `written` (when given) says how
// much was written before; on a non-blocking descriptor EAGAIN is such a
// failure too, for the caller to retry when it is writable.
Status write_all(int fd, std::string_view data, std::size_t* written = nullptr);

// Replaces the file at `path` with `data` so that a reader sees the old
// content or the new one, never a part, even after a crash: it writes
// PATH.tmp (with exactly `mode`), fsyncs it, renames it over `path`
// and fsyncs the directory. One writer per path at a time. On failure the
// old file is left as it was and PATH.tmp is removed.
Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode);

// A pidfd (close-on-exec) for the process `pid`. Fails with ESRCH when no
// such process exists, ENOSYS on kernels before 5.3, EMFILE when out of
// descriptors.
Result<UniqueFd> open_pidfd(pid_t pid);

// The fields of /proc/PID/stat that sempre reads.
struct ProcStat {
  char state = '?';  // R, S, D, Z, T, X...
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  std::uint64_t utime = 0;  // clock ticks
  std::uint64_t stime = 0;
  std::uint64_t starttime = 0;  // clock ticks after boot
  std::uint64_t rss_pages = 0;
};

// Parses the text of /proc/PID/stat. The command name may hold spaces and
// ')' (a process chooses it), so the fields are read after the last ')'.
// Returns false when the text is not of that form.
bool parse_proc_stat(std::string_view text, ProcStat& stat);

// Reads and parses /proc/PID/stat. Fails with kNotFound when the process is
// gone, kIo when the file could not be read or parsed.
Result<ProcStat> read_proc_stat(pid_t pid);

}  // namespace sempre::os
