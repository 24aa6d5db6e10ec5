// OutputPipe: the read end of one of a child's output pipes. It reads what
// the child writes, cuts it into whole lines and hands them on, until EOF.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sempre {

// A read buffer that several OutputPipes on one thread share: each reads
// into it only when its descriptor is readable, and hands the data on before
// returning, so one buffer serves every pipe.
using SharedReadBuffer = std::shared_ptr<std::vector<char>>;
SharedReadBuffer make_read_buffer(std::size_t size = 64 * 1024);

class OutputPipe {
 public:
  // `on_lines` gets one or more complete lines, each ending in '\n'.
  // `on_eof` is called once when every writer has closed the pipe; a final
  // partial line is delivered with a '\n' added before it.
  struct Callbacks {
    std::function<void(std::string_view lines)> on_lines;
    std::function<void()> on_eof;
  };

  // A partial line longer than this is delivered as a line of its own, so
  // that a child that never writes '\n' cannot grow memory without bound.
  static constexpr std::size_t kMaxLine = 64 * 1024;

  // What the pipe holds while nobody reads it (a supervisor restarting):
  // the kernel's default of 64 KiB is raised to this, within a budget per
  // process (see output_pipe.cpp).
  static constexpr int kCapacity = 256 * 1024;

  // Takes ownership of `fd` (the read end, made non-blocking here and its
  // capacity raised) and starts reading on `executor`.
  OutputPipe(boost::asio::any_io_executor executor, int fd, SharedReadBuffer buffer,
             Callbacks callbacks);
  OutputPipe(const OutputPipe&) = delete;
  OutputPipe& operator=(const OutputPipe&) = delete;
  // Closes the descriptor; no callback runs afterwards.
  ~OutputPipe();

  bool at_eof() const { return eof_; }
  // The unfinished line read so far, given up: it is not delivered.
  std::string take_partial() { return std::exchange(partial_, {}); }

 private:
  void wait();
  void on_readable();
  std::size_t pending();  // bytes waiting in the pipe
  void consume(std::string_view chunk);
  void keep_partial(std::string_view tail);
  void deliver_partial();
  // Hands whole `lines` to on_lines, a line longer than kMaxLine in pieces
  // of kMaxLine, each a line of its own.
  void deliver_lines(std::string_view lines);
  void finish();

  boost::asio::posix::stream_descriptor fd_;
  SharedReadBuffer buffer_;
  Callbacks callbacks_;
  std::string partial_;
  bool eof_ = false;
  bool enlarged_ = false;  // holds a share of the capacity budget
  bool peek_ = true;       // read through a tee (output_pipe.cpp), while that works
  std::shared_ptr<bool> alive_;
};

}  // namespace sempre
