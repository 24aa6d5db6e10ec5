#include "os.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace sempre::os {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return os_error(errno, "cannot create pipe");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Status write_all(int fd, std::string_view data, std::size_t* written) {
  std::size_t done = 0;
  Status result;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EIO;
    result = os_error(err, "write");
    break;
  }
  if (written != nullptr) *written = done;
  return result;
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return os_error(errno, "cannot write " + tmp);
  auto fail = [&tmp](int err, const std::string& what) {
    ::unlink(tmp.c_str());
    return os_error(err, what);
  };
  // A leftover PATH.tmp keeps its mode through O_TRUNC.
  if (::fchmod(fd.get(), mode) != 0) return fail(errno, "cannot write " + tmp);
  if (Status st = write_all(fd.get(), data); !st) {
    return fail(st.error().os_error, "cannot write " + tmp);
  }
  if (::fsync(fd.get()) != 0) return fail(errno, "cannot write " + tmp);
  if (::close(fd.release()) != 0) return fail(errno, "cannot write " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno, "cannot write " + path);
  // The rename is durable once the directory is.
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd) return os_error(errno, "cannot sync " + dir);
  // EINVAL: a file system that cannot sync directories.
  if (::fsync(dir_fd.get()) != 0 && errno != EINVAL) return os_error(errno, "cannot sync " + dir);
  return {};
}

Result<UniqueFd> open_pidfd(pid_t pid) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return os_error(errno, "pidfd_open " + std::to_string(pid));
  return UniqueFd(fd);
}

bool parse_proc_stat(std::string_view text, ProcStat& stat) {
  const std::size_t close = text.rfind(')');
  if (close == std::string_view::npos) return false;
  std::string_view rest = text.substr(close + 1);
  // Field numbers as in proc(5): the state is field 3.
  int field = 3;
  while (field <= 24) {
    const auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos || rest[start] == '\n') break;
    rest.remove_prefix(start);
    const auto end = std::min(rest.find_first_of(" \n"), rest.size());
    const std::string_view value = rest.substr(0, end);
    rest.remove_prefix(end);
    auto number = [&value](auto& out) {
      std::from_chars(value.data(), value.data() + value.size(), out);
    };
    switch (field) {
      case 3:
        stat.state = value[0];
        break;
      case 4:
        number(stat.ppid);
        break;
      case 5:
        number(stat.pgrp);
        break;
      case 6:
        number(stat.session);
        break;
      case 14:
        number(stat.utime);
        break;
      case 15:
        number(stat.stime);
        break;
      case 22:
        number(stat.starttime);
        break;
      case 24:
        number(stat.rss_pages);
        break;
      default:
        break;
    }
    ++field;
  }
  return field > 5;
}

Result<ProcStat> read_proc_stat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH)
      return Error{ErrorKind::kNotFound, "no process " + std::to_string(pid), err};
    return os_error(err, "cannot read " + path);
  }
  std::string text;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    // ESRCH: the process exited while it was read.
    if (n < 0) return Error{ErrorKind::kNotFound, "no process " + std::to_string(pid), errno};
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ProcStat stat;
  if (!parse_proc_stat(text, stat)) return Error{ErrorKind::kIo, "cannot parse " + path, 0};
  return stat;
}

}  // namespace sempre::os
