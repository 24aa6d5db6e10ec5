// Reading and cleaning the log files a Monitor writes: FILE, and its rotated
// copies FILE.1 (the newest) ... FILE.N.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "sempre/export.hpp"

namespace sempre {

// Deletes FILE.1 ... FILE.N (every rotated copy) of `path`. Returns how many.
SEMPRE_EXPORT int remove_rotated_logs(const std::string& path);

// The last `count` lines of the log at `path` (without their '\n'), oldest
// first, reaching back into FILE.1, FILE.2 ... when FILE holds fewer. A
// missing file holds no lines.
SEMPRE_EXPORT std::vector<std::string> tail_lines(const std::string& path, std::size_t count);

}  // namespace sempre
