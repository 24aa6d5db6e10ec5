#include "output_pipe.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os.hpp"

namespace sempre {
namespace {

// Reads per readiness before waiting again: a child that writes without
// pause cannot keep the thread from the other pipes.
constexpr int kReadsPerWake = 4;

// A partial line that once grew past this gives its memory back when it is
// delivered, so that one long line does not cost memory for the child's life.
constexpr std::size_t kKeptCapacity = 4096;

// The pages of pipe capacity one user may hold before the kernel gives
// every new pipe of that user (the apps' own ones too) a single page
// (fs.pipe-user-pages-soft, 16384 by default). The raised pipes take at most
// a quarter of it, so that what they cost is never felt elsewhere.
std::atomic<long> enlarged_pipes{0};

long enlarged_pipe_budget() {
  static const long budget = [] {
    long pages = 16384;
    if (FILE* f = std::fopen("/proc/sys/fs/pipe-user-pages-soft", "re")) {
      long value = 0;
      if (std::fscanf(f, "%ld", &value) == 1) pages = value;
      std::fclose(f);
    }
    if (pages <= 0) return 1L << 20;  // 0: no soft limit
    return pages / 4 / (OutputPipe::kCapacity / 4096);
  }();
  return budget;
}

// A pipe of this thread's that a child's pipe is duplicated into (tee):
// what is read is copied out of it first, written, and only then taken off
// the child's pipe, so that the supervisor dying in between loses nothing
// (a successor reads it again). -1 when none could be made.
int scratch_write_end(int& read_end) {
  thread_local os::Pipe scratch = [] {
    auto made = os::make_pipe();
    return made ? std::move(*made) : os::Pipe{};
  }();
  read_end = scratch.read.get();
  return scratch.write.get();
}

// Set when a tee's copy could not be read back whole: what is left in the
// scratch pipe would come out in front of another pipe's data, so it is
// used no more on this thread.
thread_local bool scratch_broken = false;

// Takes `n` bytes off the front of the pipe behind `fd` (already copied).
void discard(int fd, char* buffer, std::size_t capacity, std::size_t n) {
  while (n > 0) {
    const ssize_t got = ::read(fd, buffer, std::min(n, capacity));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return;
    n -= static_cast<std::size_t>(got);
  }
}

// Raises the capacity of the pipe behind `fd` when the budget allows.
bool enlarge(int fd) {
  if (enlarged_pipes.fetch_add(1) >= enlarged_pipe_budget() ||
      ::fcntl(fd, F_SETPIPE_SZ, OutputPipe::kCapacity) < 0) {
    enlarged_pipes.fetch_sub(1);
    return false;
  }
  return true;
}

}  // namespace

SharedReadBuffer make_read_buffer(std::size_t size) {
  return std::make_shared<std::vector<char>>(std::max<std::size_t>(size, 1));
}

OutputPipe::OutputPipe(boost::asio::any_io_executor executor, int fd, SharedReadBuffer buffer,
                       Callbacks callbacks)
    : fd_(executor),
      buffer_(std::move(buffer)),
      callbacks_(std::move(callbacks)),
      alive_(std::make_shared<bool>(true)) {
  enlarged_ = enlarge(fd);
  boost::system::error_code ec;
  fd_.assign(fd, ec);
  if (!ec) fd_.non_blocking(true, ec);
  if (ec) {
    // Nothing can be read from a descriptor the reactor refused: report it
    // as an empty stream, from the executor as any other end.
    if (!fd_.is_open()) ::close(fd);
    std::weak_ptr<bool> alive = alive_;
    boost::asio::post(executor, [this, alive] {
      if (!alive.expired()) finish();
    });
    return;
  }
  wait();
}

OutputPipe::~OutputPipe() {
  // The handler of a pending wait still runs (operation_aborted) after this;
  // the expired flag keeps it away from the destroyed object.
  alive_.reset();
  boost::system::error_code ec;
  fd_.close(ec);
  if (enlarged_) enlarged_pipes.fetch_sub(1);
}

void OutputPipe::wait() {
  std::weak_ptr<bool> alive = alive_;
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this, alive](const boost::system::error_code& ec) {
                   if (alive.expired() || ec == boost::asio::error::operation_aborted) return;
                   if (ec) {
                     finish();
                     return;
                   }
                   on_readable();
                 });
}

void OutputPipe::on_readable() {
  // Callbacks may destroy this object: after each one, `alive` says whether
  // members may still be touched, and `buffer` keeps the data they look at.
  const std::weak_ptr<bool> alive = alive_;
  const SharedReadBuffer buffer = buffer_;
  char* const data = buffer->data();
  const std::size_t capacity = buffer->size();

  for (int reads = 0; reads < kReadsPerWake;) {
    // A short pending partial line goes in front of the new data, so that it
    // and the complete lines of this read reach on_lines in one call.
    const std::size_t carried = partial_.size() <= capacity / 2 ? partial_.size() : 0;
    if (carried > 0) std::memcpy(data, partial_.data(), carried);

    // Peeked (tee), then taken off the pipe once handed on: see
    // scratch_write_end. A descriptor that is not a pipe is read.
    ssize_t n = -1;
    int scratch_read = -1;
    const int scratch_write = peek_ && !scratch_broken ? scratch_write_end(scratch_read) : -1;
    bool peeked = false;
    if (scratch_write >= 0) {
      n = ::tee(fd_.native_handle(), scratch_write, capacity - carried, SPLICE_F_NONBLOCK);
      if (n > 0) {
        std::size_t copied = 0;
        while (copied < static_cast<std::size_t>(n)) {
          const ssize_t got =
              ::read(scratch_read, data + carried + copied, static_cast<std::size_t>(n) - copied);
          if (got < 0 && errno == EINTR) continue;
          if (got <= 0) break;
          copied += static_cast<std::size_t>(got);
        }
        peeked = copied == static_cast<std::size_t>(n);
        if (!peeked) {
          // Nothing was taken off the child's pipe: read it plainly.
          scratch_broken = true;
          continue;
        }
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        peek_ = false;  // not a pipe (EINVAL), or tee cannot now: read plainly
        continue;
      }
    } else {
      n = ::read(fd_.native_handle(), data + carried, capacity - carried);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      finish();  // a read error ends the stream as EOF does
      return;
    }
    if (n == 0) {
      finish();
      return;
    }
    ++reads;
    if (carried > 0) partial_.clear();
    consume(std::string_view(data, carried + static_cast<std::size_t>(n)));
    if (alive.expired()) return;
    if (peeked) discard(fd_.native_handle(), data, capacity, static_cast<std::size_t>(n));
    // A short read emptied the pipe, unless the scratch pipe held less.
    if (static_cast<std::size_t>(n) < capacity - carried && pending() == 0) break;
  }
  // Readiness is edge-triggered: data left now would wait for the child's
  // next write. It is read on the next turn instead, after the other
  // handlers had theirs.
  if (pending() > 0) {
    boost::asio::post(fd_.get_executor(), [this, alive] {
      if (!alive.expired() && !eof_) on_readable();
    });
    return;
  }
  wait();
}

std::size_t OutputPipe::pending() {
  int bytes = 0;
  if (::ioctl(fd_.native_handle(), FIONREAD, &bytes) != 0 || bytes < 0) return 0;
  return static_cast<std::size_t>(bytes);
}

void OutputPipe::consume(std::string_view chunk) {
  const std::weak_ptr<bool> alive = alive_;
  const std::size_t last = chunk.rfind('\n');
  if (last == std::string_view::npos) {
    keep_partial(chunk);
    return;
  }
  if (!partial_.empty()) {
    // The partial line was too long to carry in the buffer: complete it here.
    const std::size_t first = chunk.find('\n');
    partial_.append(chunk.substr(0, first + 1));
    deliver_partial();
    if (alive.expired()) return;
    chunk.remove_prefix(first + 1);
  }
  const std::size_t end = chunk.rfind('\n');
  const std::size_t complete = end == std::string_view::npos ? 0 : end + 1;
  if (complete > 0) {
    deliver_lines(chunk.substr(0, complete));
    if (alive.expired()) return;
  }
  keep_partial(chunk.substr(complete));
}

void OutputPipe::deliver_lines(std::string_view lines) {
  if (!callbacks_.on_lines) return;
  const std::weak_ptr<bool> alive = alive_;
  std::size_t start = 0;  // of the lines not handed on yet
  std::size_t at = 0;
  while (at < lines.size()) {
    const std::size_t newline = lines.find('\n', at);
    const std::size_t end = newline == std::string_view::npos ? lines.size() : newline;
    if (end - at > kMaxLine) {
      // The short lines before it go as they are, the long one in pieces,
      // as keep_partial() cuts a line whose end has not come yet.
      if (at > start) {
        callbacks_.on_lines(lines.substr(start, at - start));
        if (alive.expired()) return;
      }
      std::string_view line = lines.substr(at, end - at);
      std::string piece;
      while (!line.empty()) {
        const std::size_t n = line.size() > kMaxLine ? kMaxLine : line.size();
        piece.assign(line.substr(0, n));
        piece += '\n';
        callbacks_.on_lines(piece);
        if (alive.expired()) return;
        line.remove_prefix(n);
      }
      start = end + 1;
    }
    at = end + 1;
  }
  if (start < lines.size()) callbacks_.on_lines(lines.substr(start));
}

void OutputPipe::keep_partial(std::string_view tail) {
  partial_.append(tail);
  // Cut at exactly kMaxLine bytes, each piece a line of its own; what is
  // left waits for its newline.
  while (partial_.size() > kMaxLine) {
    const std::weak_ptr<bool> alive = alive_;
    std::string piece = partial_.substr(0, kMaxLine);
    piece += '\n';
    partial_.erase(0, kMaxLine);
    if (callbacks_.on_lines) callbacks_.on_lines(piece);
    if (alive.expired()) return;
  }
}

void OutputPipe::deliver_partial() {
  const std::weak_ptr<bool> alive = alive_;
  deliver_lines(partial_);
  if (alive.expired()) return;
  partial_.clear();
  if (partial_.capacity() > kKeptCapacity) partial_.shrink_to_fit();
}

void OutputPipe::finish() {
  if (eof_) return;
  eof_ = true;
  boost::system::error_code ec;
  fd_.close(ec);
  if (!partial_.empty()) {
    const std::weak_ptr<bool> alive = alive_;
    partial_ += '\n';
    deliver_partial();
    if (alive.expired()) return;
  }
  // Moved out first: on_eof may destroy this object, and with it callbacks_.
  auto on_eof = std::move(callbacks_.on_eof);
  callbacks_.on_eof = nullptr;
  if (on_eof) on_eof();
}

}  // namespace sempre
