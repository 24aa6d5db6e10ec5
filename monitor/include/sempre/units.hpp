// Parsing and printing of the units the command line and config files use:
// durations ("250ms", "5s", "2m", "1h"; a plain integer is milliseconds),
// sizes ("512", "64K", "10M", "1G"; binary multiples; a plain integer is bytes)
// and signals ("TERM", "SIGTERM", "15").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "sempre/export.hpp"
#include "sempre/result.hpp"

namespace sempre {

using Millis = std::chrono::milliseconds;

SEMPRE_EXPORT Result<Millis> parse_duration(std::string_view text);
SEMPRE_EXPORT Result<std::uint64_t> parse_size(std::string_view text);
SEMPRE_EXPORT Result<int> parse_signal(std::string_view text);

// "250ms", "5s", "2m", "1h30m": the shortest exact spelling.
SEMPRE_EXPORT std::string format_duration(Millis d);
// "1.2s", "3m04s", "2h05m", "3d04h": a rounded form for tables.
SEMPRE_EXPORT std::string format_uptime(Millis d);
// "512B", "10.0M": a rounded form for tables.
SEMPRE_EXPORT std::string format_size(std::uint64_t bytes);
// "TERM" for SIGTERM; "SIG42" for a signal without a name.
SEMPRE_EXPORT std::string signal_name(int sig);

}  // namespace sempre
