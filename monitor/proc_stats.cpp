#include "sempre/proc_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sempre {
namespace {

// The fields of /proc/PID/stat that sempre reads.
struct ProcStat {
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  std::uint64_t utime = 0;  // clock ticks
  std::uint64_t stime = 0;
  std::uint64_t rss_pages = 0;
};

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

// Parses "pid (comm) state ppid pgrp ...". The command name may hold spaces
// and ')' (a process chooses it), so the fields start after the last ')'.
bool parse_stat(const std::string& text, ProcStat& stat) {
  std::size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  const char* p = text.c_str() + close + 1;
  // Field numbers as in proc(5): the state is field 3.
  int field = 3;
  while (*p != '\0' && field <= 24) {
    while (*p == ' ') ++p;
    if (*p == '\0' || *p == '\n') break;
    const char* start = p;
    while (*p != ' ' && *p != '\0' && *p != '\n') ++p;
    switch (field) {
      case 3:
        stat.state = *start;
        break;
      case 4:
        stat.ppid = static_cast<pid_t>(std::strtol(start, nullptr, 10));
        break;
      case 5:
        stat.pgrp = static_cast<pid_t>(std::strtol(start, nullptr, 10));
        break;
      case 14:
        stat.utime = std::strtoull(start, nullptr, 10);
        break;
      case 15:
        stat.stime = std::strtoull(start, nullptr, 10);
        break;
      case 24:
        stat.rss_pages = std::strtoull(start, nullptr, 10);
        break;
      default:
        break;
    }
    ++field;
  }
  return field > 5;
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
    if (!parse_stat(text, stat)) continue;
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
