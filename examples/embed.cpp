// Supervising a worker from your own program with sempre::Monitor.
// Usage: sempre_embed_example PROGRAM [ARGS...]
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <iostream>
#include <sempre/monitor.hpp>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  boost::asio::io_context io;
  sempre::MonitorOptions options;
  options.argv.assign(argv + 1, argv + argc);
  options.max_restarts = 3;  // give up after 3 crash-loop restarts

  sempre::Monitor monitor(io.get_executor(), options);
  monitor.on_output([](sempre::OutputStream, std::string_view line) { std::cout << line << '\n'; });
  monitor.on_event([&](const sempre::Event& e) {
    std::cerr << "event: " << sempre::describe(e) << '\n';
    if (e.type == sempre::EventType::kFailed || e.state == sempre::State::kExited) io.stop();
  });
  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&](auto, int) { monitor.stop([&] { io.stop(); }); });

  if (!monitor.start()) return 1;
  io.run();
  return monitor.status().state == sempre::State::kFailed ? 1 : 0;
}
