// Reading processes from /proc: the members of a process group and what they use.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "sempre/export.hpp"

namespace sempre {

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

}  // namespace sempre
