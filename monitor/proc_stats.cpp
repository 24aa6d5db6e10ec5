#include "sempre/proc_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "os.hpp"

namespace sempre {
namespace {

using os::ProcStat;

enum class ReadResult { kOk, kGone, kFailed };

// Reads a whole small /proc file with open/read: /proc files report size 0,
// and a stream would cost an allocation per process for no gain. kGone: the
// process exited meanwhile; kFailed: it could not be read (no descriptors).
ReadResult read_small_file(const char* path, std::string& out) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT || errno == ESRCH ? ReadResult::kGone : ReadResult::kFailed;
  }
  out.clear();
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return n == 0 ? ReadResult::kOk : ReadResult::kGone;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Calls `visit(pid, stat)` for every process. A process that exits during
// the scan is skipped. Returns false when some process could not be looked at.
template <class Visit>
bool for_each_process(Visit&& visit) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return false;
  bool complete = true;
  std::string path;
  std::string text;
  while (dirent* entry = ::readdir(dir)) {
    const char* name = entry->d_name;
    if (name[0] < '1' || name[0] > '9') continue;
    char* end = nullptr;
    long pid = std::strtol(name, &end, 10);
    if (*end != '\0') continue;
    path = "/proc/";
    path += name;
    path += "/stat";
    ReadResult read = read_small_file(path.c_str(), text);
    if (read == ReadResult::kFailed) complete = false;
    if (read != ReadResult::kOk) continue;
    ProcStat stat;
    if (!os::parse_proc_stat(text, stat)) continue;
    visit(static_cast<pid_t>(pid), stat);
  }
  ::closedir(dir);
  return complete;
}

// Calls `visit(pid, stat)` for each live process of group `pgid`.
template <class Visit>
bool for_each_member(pid_t pgid, Visit&& visit) {
  if (pgid <= 0) return true;
  return for_each_process([&](pid_t pid, const ProcStat& stat) {
    // Zombies have exited and only wait for their parent; 'X' is a dead
    // process on its way out.
    if (stat.pgrp != pgid || stat.state == 'Z' || stat.state == 'X') return;
    visit(pid, stat);
  });
}

}  // namespace

std::optional<std::vector<pid_t>> try_group_members(pid_t pgid) {
  std::vector<pid_t> members;
  if (!for_each_member(pgid, [&](pid_t pid, const ProcStat&) { members.push_back(pid); })) {
    return std::nullopt;
  }
  return members;
}

std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  for_each_member(pgid, [&](pid_t pid, const ProcStat&) { members.push_back(pid); });
  return members;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  for_each_process([&](pid_t pid, const ProcStat& stat) {
    if (stat.ppid == parent) children.push_back(pid);
  });
  return children;
}

GroupUsage group_usage(pid_t pgid) {
  GroupUsage usage;
  std::uint64_t ticks = 0;
  std::uint64_t pages = 0;
  for_each_member(pgid, [&](pid_t, const ProcStat& stat) {
    ticks += stat.utime + stat.stime;
    pages += stat.rss_pages;
    ++usage.processes;
  });
  long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  if (ticks_per_second <= 0) ticks_per_second = 100;
  long page_size = ::sysconf(_SC_PAGESIZE);
  if (page_size <= 0) page_size = 4096;
  usage.cpu_ms = ticks * 1000 / static_cast<std::uint64_t>(ticks_per_second);
  usage.rss_bytes = pages * static_cast<std::uint64_t>(page_size);
  return usage;
}

}  // namespace sempre
