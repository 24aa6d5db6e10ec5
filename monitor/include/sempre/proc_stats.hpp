// Reading processes from /proc and cgroup v2: the members of an app's
// process set and what they use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sempre/export.hpp"
#include "sempre/result.hpp"

namespace sempre {

// The environment variable the real launcher gives every child:
// SEMPRE_GROUP=PID, PID being its main process. A process that left the
// group and the session (double fork and setsid) still carries it, and is
// found by it once its parent has died (see ProcessSet).
inline constexpr const char* kGroupMarker = "SEMPRE_GROUP";

// Where the processes of one spawned child are found.
//  - In `cgroup` (an absolute path to a cgroup v2 directory) when it has
//    one: nothing leaves it, however it forks.
//  - Otherwise by its tree: every live process of the leader's process group
//    or session, their descendants, and — when `marked` — every orphan that
//    an ancestor of this process adopted (it is a subreaper, or init) and
//    whose environment holds SEMPRE_GROUP=LEADER, with its descendants. A
//    process that left the group, changed its environment and lost its
//    parent is out of reach without a cgroup.
struct ProcessSet {
  pid_t leader = 0;
  std::string cgroup;
  bool marked = true;  // look for marked orphans (reads their environment)
};

// The live (non-zombie) members of `set`; nullopt when /proc or the cgroup
// could not be read completely, which a caller deciding that the set is
// empty must not take for empty.
SEMPRE_EXPORT std::optional<std::vector<pid_t>> try_members(const ProcessSet& set);

// Live (non-zombie) processes whose process group is `pgid`. Empty as well
// when /proc cannot be read (out of descriptors): see try_group_members.
SEMPRE_EXPORT std::vector<pid_t> group_members(pid_t pgid);

// As group_members, but nullopt when /proc could not be read completely,
// which a caller deciding that a group is gone must not take for empty.
SEMPRE_EXPORT std::optional<std::vector<pid_t>> try_group_members(pid_t pgid);

// Every child of `parent`, zombies included: the processes it may reap.
SEMPRE_EXPORT std::vector<pid_t> children_of(pid_t parent);

struct GroupUsage {
  std::uint64_t cpu_ms = 0;     // user + system time of the live members, summed
  std::uint64_t rss_bytes = 0;  // resident set size, summed
  int processes = 0;
};
SEMPRE_EXPORT GroupUsage group_usage(pid_t pgid);
// What the members of `set` use. In a cgroup the CPU time is the cgroup's
// (members that ended included); `marked` orphans are not looked for.
SEMPRE_EXPORT GroupUsage set_usage(const ProcessSet& set);

// --- cgroup v2 --------------------------------------------------------------

// Where this process's cgroup v2 is, as an absolute directory path (the
// cgroup2 mount point joined with the "0::" line of /proc/self/cgroup);
// nullopt when there is no cgroup v2 hierarchy.
SEMPRE_EXPORT std::optional<std::string> own_cgroup();
// The cgroup v2 directory of process `pid`; nullopt when it has none or is
// gone.
SEMPRE_EXPORT std::optional<std::string> cgroup_of(pid_t pid);
// Makes (or finds) the cgroup `name` under this process's own cgroup v2 and
// checks that processes can be moved into cgroups made in it: the
// LaunchRequest::cgroup_parent of a supervisor. Fails with the reason when
// there is no cgroup v2 or it is not this process's to write (an
// unprivileged user without a delegated subtree).
SEMPRE_EXPORT Result<std::string> make_cgroup_parent(const std::string& name);

}  // namespace sempre
