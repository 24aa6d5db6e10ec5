#include "sempre/events.hpp"

#include <iterator>

#include "enum_names.hpp"

namespace sempre {

namespace {

constexpr EnumName<State> kStateNames[] = {
    {State::kStopped, "stopped"},   {State::kStarting, "starting"}, {State::kRunning, "running"},
    {State::kStopping, "stopping"}, {State::kBackoff, "backoff"},   {State::kExited, "exited"},
    {State::kFailed, "failed"},
};
static_assert(std::size(kStateNames) == kStateCount && in_declaration_order(kStateNames));

constexpr EnumName<EventType> kEventNames[] = {
    {EventType::kStart, "start"},        {EventType::kReady, "ready"},
    {EventType::kExit, "exit"},          {EventType::kRestart, "restart"},
    {EventType::kStop, "stop"},          {EventType::kFailed, "failed"},
    {EventType::kWatch, "watch"},        {EventType::kRotate, "rotate"},
    {EventType::kLogError, "log-error"}, {EventType::kLogResumed, "log-resumed"},
};
static_assert(in_declaration_order(kEventNames) &&
              std::size(kEventNames) == static_cast<std::size_t>(EventType::kLogResumed) + 1);

}  // namespace

const char* state_name(State state) { return name_of(kStateNames, state, "unknown"); }

const char* event_name(EventType type) { return name_of(kEventNames, type, "unknown"); }

std::string ExitStatus::describe() const {
  return signaled ? "signal " + signal_name(code) : "code " + std::to_string(code);
}

std::string describe(const Event& event) {
  std::string out = event_name(event.type);
  if (event.pid != 0) out += " pid=" + std::to_string(event.pid);
  switch (event.type) {
    case EventType::kExit:
      if (event.exit) out += " " + event.exit->describe();
      out += " uptime=" + format_uptime(event.uptime);
      break;
    case EventType::kRestart:
      out += " in " + format_duration(event.delay);
      if (event.attempt > 0) out += " attempt=" + std::to_string(event.attempt);
      break;
    case EventType::kWatch:
    case EventType::kRotate:
    case EventType::kLogError:
      out += " " + event.path;
      break;
    case EventType::kLogResumed:
      out += " " + event.path + " dropped=" + std::to_string(event.dropped);
      break;
    default:
      break;
  }
  if (!event.reason.empty()) out += " (" + event.reason + ")";
  return out;
}

}  // namespace sempre
