// A program built against an installed sempre, the way an embedder builds one.
// It supervises `sh -c 'echo hello; exit 3'` once (restart never) and exits 0
// only when it saw the child's line and then its exit with code 3.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <iostream>
#include <sempre/monitor.hpp>
#include <string_view>

int main() {
  boost::asio::io_context io;
  sempre::MonitorOptions options;
  options.argv = {"/bin/sh", "-c", "echo hello; exit 3"};
  options.restart = sempre::RestartMode::kNever;

  bool saw_line = false;
  bool saw_exit = false;
  sempre::Monitor monitor(io.get_executor(), options);
  monitor.on_output([&](sempre::OutputStream stream, std::string_view line) {
    saw_line = saw_line || (stream == sempre::OutputStream::kStdout && line == "hello");
  });
  monitor.on_event([&](const sempre::Event& e) {
    std::cerr << "event: " << sempre::describe(e) << '\n';
    if (e.type == sempre::EventType::kExit)
      saw_exit = saw_line && e.exit && e.exit->shell_code() == 3;
    if (e.state == sempre::State::kExited || e.state == sempre::State::kFailed) io.stop();
  });
  // Fail rather than hang when the exit never comes.
  boost::asio::steady_timer deadline(io, std::chrono::seconds(30));
  deadline.async_wait([&](boost::system::error_code ec) {
    if (!ec) std::cerr << "consumer: no exit within 30s\n";
    io.stop();
  });

  if (sempre::Status started = monitor.start(); !started) {
    std::cerr << "consumer: " << started.error().message << '\n';
    return 1;
  }
  io.run();
  if (!saw_exit) std::cerr << "consumer: did not see \"hello\" and then exit code 3\n";
  return saw_exit ? 0 : 1;
}
