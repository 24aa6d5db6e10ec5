#include "sempre/proc_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "os.hpp"
#include "sempre/result.hpp"

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

bool live(const ProcStat& stat) { return stat.state != 'Z' && stat.state != 'X'; }

// Whether process `pid`'s environment holds SEMPRE_GROUP=LEADER. One that
// cannot be read (another user's, or gone) does not.
bool carries_marker(pid_t pid, pid_t leader) {
  std::string needle = kGroupMarker;
  needle += '=';
  needle += std::to_string(leader);
  needle += '\0';
  const std::string path = "/proc/" + std::to_string(pid) + "/environ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  // An environment is rarely above a few kB; a huge one is read this far.
  constexpr std::size_t kMaxEnvironment = 1 << 20;
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() >= kMaxEnvironment) break;
  }
  ::close(fd);
  if (text.empty() || text.back() != '\0') text += '\0';
  if (text.starts_with(needle)) return true;
  return text.find('\0' + needle) != std::string::npos;
}

// Calls `visit(pid, stat)` for each live member of a set without a cgroup
// (see ProcessSet). Returns false when /proc could not be read completely.
template <class Visit>
bool for_each_tree_member(const ProcessSet& set, Visit&& visit) {
  std::unordered_map<pid_t, ProcStat> all;
  const bool complete =
      for_each_process([&](pid_t pid, const ProcStat& stat) { all.emplace(pid, stat); });
  if (!complete) return false;

  std::unordered_map<pid_t, std::vector<pid_t>> children;
  std::vector<pid_t> pending;
  for (const auto& [pid, stat] : all) {
    children[stat.ppid].push_back(pid);
    if (stat.pgrp == set.leader || stat.session == set.leader) pending.push_back(pid);
  }
  if (set.marked) {
    // Orphans go to the nearest subreaper among our ancestors, or to init.
    std::unordered_set<pid_t> adopters{1};
    pid_t at = ::getpid();
    while (at > 1 && adopters.insert(at).second) {
      auto found = all.find(at);
      if (found == all.end()) break;
      at = found->second.ppid;
    }
    for (const auto& [pid, stat] : all) {
      if (!live(stat) || !adopters.contains(stat.ppid)) continue;
      if (stat.pgrp == set.leader || stat.session == set.leader) continue;  // found already
      if (carries_marker(pid, set.leader)) pending.push_back(pid);
    }
  }

  std::unordered_set<pid_t> seen;
  while (!pending.empty()) {
    const pid_t pid = pending.back();
    pending.pop_back();
    if (!seen.insert(pid).second) continue;
    auto found = all.find(pid);
    if (found != all.end() && live(found->second)) visit(pid, found->second);
    auto kids = children.find(pid);
    if (kids != children.end()) {
      pending.insert(pending.end(), kids->second.begin(), kids->second.end());
    }
  }
  return true;
}

// The pids listed in a cgroup's cgroup.procs; empty when the cgroup is gone.
std::optional<std::vector<pid_t>> cgroup_members(const std::string& cgroup) {
  std::string text;
  ReadResult read = read_small_file((cgroup + "/cgroup.procs").c_str(), text);
  if (read == ReadResult::kFailed) return std::nullopt;
  std::vector<pid_t> members;
  if (read == ReadResult::kGone) return members;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    pid_t pid = 0;
    std::string_view line = rest.substr(0, end);
    if (std::from_chars(line.data(), line.data() + line.size(), pid).ec == std::errc{} && pid > 0)
      members.push_back(pid);
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
  return members;
}

// Decodes the octal escapes (\040 for a space) of a /proc/self/mountinfo field.
std::string unescape_mount_field(std::string_view field) {
  std::string out;
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\') {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3; ++k) {
        if (i + k >= field.size() || field[i + k] < '0' || field[i + k] > '7') {
          octal = false;
          break;
        }
        value = value * 8 + (field[i + k] - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

// The cgroup2 mount point and the cgroup path it shows as its root.
struct Cgroup2Mount {
  std::string point;
  std::string root;
};

std::optional<Cgroup2Mount> find_cgroup2_mount() {
  std::string text;
  if (read_small_file("/proc/self/mountinfo", text) != ReadResult::kOk) return std::nullopt;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    const std::size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    if (!line.substr(dash + 3).starts_with("cgroup2 ")) continue;
    // id parent major:minor root mount-point ...
    std::vector<std::string_view> fields;
    std::string_view head = line.substr(0, dash);
    while (!head.empty() && fields.size() < 5) {
      const std::size_t space = std::min(head.find(' '), head.size());
      fields.push_back(head.substr(0, space));
      head.remove_prefix(std::min(space + 1, head.size()));
    }
    if (fields.size() < 5) continue;
    return Cgroup2Mount{unescape_mount_field(fields[4]), unescape_mount_field(fields[3])};
  }
  return std::nullopt;
}

// The "0::PATH" line of a /proc/PID/cgroup file, as a directory.
std::optional<std::string> cgroup_from(const char* proc_file) {
  std::string text;
  if (read_small_file(proc_file, text) != ReadResult::kOk) return std::nullopt;
  std::string_view rest = text;
  std::optional<std::string_view> path;
  while (!rest.empty()) {
    const std::size_t end = std::min(rest.find('\n'), rest.size());
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    if (line.starts_with("0::")) path = line.substr(3);
  }
  if (!path || !path->starts_with('/')) return std::nullopt;
  std::optional<Cgroup2Mount> mount = find_cgroup2_mount();
  if (!mount) return std::nullopt;
  std::string_view relative = *path;
  if (mount->root != "/") {
    if (!relative.starts_with(mount->root)) return std::nullopt;  // outside what is mounted
    relative.remove_prefix(mount->root.size());
  }
  std::string dir = mount->point;
  if (relative != "/") dir += relative;
  return dir;
}

}  // namespace

std::optional<std::vector<pid_t>> try_members(const ProcessSet& set) {
  if (set.leader <= 0) return std::vector<pid_t>{};
  if (!set.cgroup.empty()) return cgroup_members(set.cgroup);
  std::vector<pid_t> members;
  if (!for_each_tree_member(set, [&](pid_t pid, const ProcStat&) { members.push_back(pid); })) {
    return std::nullopt;
  }
  return members;
}

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

namespace {

// Sums the ticks and pages of processes into a GroupUsage.
struct UsageSum {
  std::uint64_t ticks = 0;
  std::uint64_t pages = 0;
  int processes = 0;

  void add(const ProcStat& stat) {
    ticks += stat.utime + stat.stime;
    pages += stat.rss_pages;
    ++processes;
  }

  GroupUsage result() const {
    GroupUsage usage;
    long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    if (ticks_per_second <= 0) ticks_per_second = 100;
    long page_size = ::sysconf(_SC_PAGESIZE);
    if (page_size <= 0) page_size = 4096;
    usage.cpu_ms = ticks * 1000 / static_cast<std::uint64_t>(ticks_per_second);
    usage.rss_bytes = pages * static_cast<std::uint64_t>(page_size);
    usage.processes = processes;
    return usage;
  }
};

// The usage_usec line of a cgroup's cpu.stat, in milliseconds.
std::optional<std::uint64_t> cgroup_cpu_ms(const std::string& cgroup) {
  std::string text;
  if (read_small_file((cgroup + "/cpu.stat").c_str(), text) != ReadResult::kOk) return std::nullopt;
  constexpr std::string_view kKey = "usage_usec ";
  const std::size_t at = text.starts_with(kKey) ? 0 : text.find("\n" + std::string(kKey));
  if (at == std::string::npos) return std::nullopt;
  const char* begin = text.data() + at + (at == 0 ? 0 : 1) + kKey.size();
  std::uint64_t usec = 0;
  if (std::from_chars(begin, text.data() + text.size(), usec).ec != std::errc{})
    return std::nullopt;
  return usec / 1000;
}

}  // namespace

GroupUsage group_usage(pid_t pgid) {
  UsageSum sum;
  for_each_member(pgid, [&](pid_t, const ProcStat& stat) { sum.add(stat); });
  return sum.result();
}

GroupUsage set_usage(const ProcessSet& set) {
  if (set.leader <= 0) return {};
  UsageSum sum;
  if (set.cgroup.empty()) {
    ProcessSet unmarked = set;
    unmarked.marked = false;
    for_each_tree_member(unmarked, [&](pid_t, const ProcStat& stat) { sum.add(stat); });
    return sum.result();
  }
  for (pid_t pid : cgroup_members(set.cgroup).value_or(std::vector<pid_t>{})) {
    Result<ProcStat> stat = os::read_proc_stat(pid);
    if (stat && live(*stat)) sum.add(*stat);
  }
  GroupUsage usage = sum.result();
  if (std::optional<std::uint64_t> cpu = cgroup_cpu_ms(set.cgroup)) usage.cpu_ms = *cpu;
  return usage;
}

std::optional<std::string> own_cgroup() { return cgroup_from("/proc/self/cgroup"); }

Result<std::string> make_cgroup_parent(const std::string& name) {
  std::optional<std::string> own = own_cgroup();
  if (!own) return Error{ErrorKind::kNotFound, "no cgroup v2 hierarchy is mounted", ENOENT};
  const std::string dir = *own + "/" + name;
  if (::mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) return os_error(errno, dir);
  // A cgroup has its control files; a plain directory (a cgroup v1 tmpfs)
  // does not.
  const std::string procs = dir + "/cgroup.procs";
  if (::access(procs.c_str(), W_OK) != 0) {
    const int err = errno;
    ::rmdir(dir.c_str());
    return os_error(err, procs);
  }
  return dir;
}

std::optional<std::string> cgroup_of(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  return cgroup_from(("/proc/" + std::to_string(pid) + "/cgroup").c_str());
}

}  // namespace sempre
