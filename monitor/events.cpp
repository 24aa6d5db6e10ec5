#include "sempre/events.hpp"

namespace sempre {

const char* state_name(State state) {
  switch (state) {
    case State::kStopped: return "stopped";
    case State::kStarting: return "starting";
    case State::kRunning: return "running";
    case State::kStopping: return "stopping";
    case State::kBackoff: return "backoff";
    case State::kExited: return "exited";
    case State::kFailed: return "failed";
  }
  return "unknown";
}

const char* event_name(EventType type) {
  switch (type) {
    case EventType::kStart: return "start";
    case EventType::kReady: return "ready";
    case EventType::kExit: return "exit";
    case EventType::kRestart: return "restart";
    case EventType::kStop: return "stop";
    case EventType::kFailed: return "failed";
    case EventType::kWatch: return "watch";
    case EventType::kRotate: return "rotate";
  }
  return "unknown";
}

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
      out += " " + event.path;
      break;
    default:
      break;
  }
  if (!event.reason.empty()) out += " (" + event.reason + ")";
  return out;
}

}  // namespace sempre
