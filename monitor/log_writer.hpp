// LogWriter: one log file of a child, written whole lines at a time and
// rotated by size from inside the writer, so that no line is lost,
// duplicated, split or merged at a rotation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sempre/clock.hpp"
#include "sempre/log_files.hpp"
#include "sempre/result.hpp"

namespace sempre {

// Empties the regular file at `path`, which no writer holds; a missing
// file, or one that is not regular, is left alone.
Status truncate_log_file(const std::string& path);

class LogWriter {
 public:
  struct Options {
    std::string path;
    bool append = false;         // false: truncate when opened
    std::uint64_t max_size = 0;  // rotate before a write would pass it; 0 = never
    int keep = 5;                // PATH.1 (newest) ... PATH.keep; older ones deleted
    bool timestamps = false;     // prefix each line with "2026-11-26T16:49:27.123+0000 "
  };

  // Opens (creating parent directories as needed) PATH with O_APPEND|O_CLOEXEC,
  // mode 0640. `clock` gives the timestamps; it must outlive the writer.
  static Result<std::unique_ptr<LogWriter>> open(const Options& options, const Clock& clock);

  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;
  ~LogWriter();

  // Writes `lines`, which holds only complete lines (each ending in '\n').
  // Without timestamps it is one write(2) per call unless a rotation falls
  // inside it; rotation happens only between lines. A single line longer
  // than max_size goes whole into a file of its own. On an error (ENOSPC...)
  // the lines not written whole are dropped, counted in `*dropped` (bytes
  // of `lines`, without timestamps) and dropped(), and the error returned;
  // the next call tries again. If a rotation fails, the lines go into the
  // current file instead and the rotation's error is returned. A file that
  // was deleted (its directory too) is made again at PATH first, so that
  // nothing is written where no one can read it.
  Status write_lines(std::string_view lines, std::uint64_t* dropped = nullptr);

  // True from a write_lines() that failed to the next one that succeeds.
  bool failing() const { return failing_; }
  // What the last failed write_lines() returned ("write PATH: No space left
  // on device"); kept after writing works again.
  const std::string& error() const { return error_; }
  // Bytes dropped since the writer was opened, and since failing() began.
  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t dropped_while_failing() const { return dropped_while_failing_; }

  // Renames PATH.(keep-1) ... PATH to PATH.keep ... PATH.1 and reopens PATH
  // empty. Called by write_lines; public for a forced rotation. A PATH that
  // is not a regular file (a device, a FIFO) is never rotated.
  Status rotate();

  // Empties PATH in place (the descriptor stays; with O_APPEND the next
  // line lands at offset 0). A PATH that is not a regular file is left alone.
  Status truncate();

  // Called after each rotation with PATH (the file that was rotated).
  void set_on_rotate(std::function<void(const std::string&)> on_rotate);

  const std::string& path() const;
  std::uint64_t size() const;  // bytes in the current file

 private:
  LogWriter(const Options& options, const Clock& clock, int fd, std::uint64_t size);

  Status write_stamped(std::string_view lines, std::size_t& kept);
  Status reopen_if_deleted();

  Options options_;
  const Clock& clock_;
  int fd_;
  std::uint64_t size_;
  bool failing_ = false;
  std::string error_;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_while_failing_ = 0;
  std::function<void(const std::string&)> on_rotate_;
};

}  // namespace sempre
