#include "sempre/options.hpp"

#include <iterator>

#include "enum_names.hpp"
#include "ready_probe.hpp"

namespace sempre {

namespace {

constexpr EnumName<RestartMode> kRestartModeNames[] = {
    {RestartMode::kAlways, "always"},
    {RestartMode::kOnFailure, "on-failure"},
    {RestartMode::kNever, "never"},
};
static_assert(in_declaration_order(kRestartModeNames) &&
              std::size(kRestartModeNames) == static_cast<std::size_t>(RestartMode::kNever) + 1);

}  // namespace

const char* restart_mode_name(RestartMode mode) {
  return name_of(kRestartModeNames, mode, "always");
}

Result<RestartMode> parse_restart_mode(std::string_view text) {
  if (const std::optional<RestartMode> mode = value_of(kRestartModeNames, text)) return *mode;
  return Error{ErrorKind::kInvalidArgument, "invalid restart policy \"" + std::string(text) +
                                                "\": expected always, on-failure or never"};
}

Status validate(const MonitorOptions& options) {
  auto invalid = [](std::string message) {
    return Error{ErrorKind::kInvalidArgument, std::move(message)};
  };
  if (options.argv.empty() || options.argv[0].empty()) return invalid("no program to run");
  if (options.max_restarts && *options.max_restarts < 0)
    return invalid("max-restarts must be >= 0");
  if (options.min_uptime.count() < 0) return invalid("min-uptime must not be negative");
  if (options.restart_delay.count() < 0) return invalid("restart-delay must not be negative");
  if (options.backoff_max.count() <= 0) return invalid("backoff-max must be positive");
  if (options.kill_timeout.count() <= 0) return invalid("kill-timeout must be positive");
  if (options.kill_signal <= 0 || options.kill_signal >= NSIG)
    return invalid("invalid kill-signal");
  if (options.nice && (*options.nice < -20 || *options.nice > 19)) {
    return invalid("nice must be between -20 and 19");
  }
  if (options.limit_nofile && *options.limit_nofile == 0) {
    return invalid("limit-nofile must be positive");
  }
  if (options.logs.keep < 0) return invalid("log-keep must be >= 0");
  if (options.watch_debounce.count() < 0) return invalid("watch debounce must not be negative");
  if (auto check = parse_ready_check(options.ready); !check) return check.error();
  return {};
}

}  // namespace sempre
