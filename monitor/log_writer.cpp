#include "log_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <vector>

#include "os.hpp"

namespace sempre {
namespace {

namespace fs = std::filesystem;

constexpr int kOpenFlags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
constexpr mode_t kFileMode = 0640;

// "2026-11-26T16:49:27.123+0000 ": local time, so that it matches what the
// user's clock shows, with the offset, so that it still names one instant.
std::string format_stamp(std::chrono::system_clock::time_point when) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(when.time_since_epoch());
  const auto secs = floor<seconds>(ms);
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  const int millis = static_cast<int>((ms - secs).count());
  std::tm local{};
  ::localtime_r(&tt, &local);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &local);
  n += static_cast<std::size_t>(std::snprintf(buf + n, sizeof buf - n, ".%03d", millis));
  n += std::strftime(buf + n, sizeof buf - n, "%z ", &local);
  return std::string(buf, n);
}

// Every line of `lines` with `stamp` in front, in one buffer, so that the
// call still needs a single write(2).
std::string stamp_lines(std::string_view lines, std::string_view stamp) {
  const auto count = static_cast<std::size_t>(std::count(lines.begin(), lines.end(), '\n'));
  std::string out;
  out.reserve(lines.size() + (count + 1) * stamp.size());
  while (!lines.empty()) {
    const std::size_t end = lines.find('\n');
    const std::size_t len = end == std::string_view::npos ? lines.size() : end + 1;
    out.append(stamp);
    out.append(lines.substr(0, len));
    lines.remove_prefix(len);
  }
  return out;
}

// The length of the longest run of whole lines at the start of `data` that
// fits in `room` bytes (0 when not even the first line fits).
std::size_t whole_lines_within(std::string_view data, std::uint64_t room) {
  if (room == 0) return 0;
  if (room >= data.size()) return data.size();
  const std::size_t last = data.rfind('\n', static_cast<std::size_t>(room) - 1);
  return last == std::string_view::npos ? 0 : last + 1;
}

std::size_t first_line_length(std::string_view data) {
  const std::size_t end = data.find('\n');
  return end == std::string_view::npos ? data.size() : end + 1;
}

// The N of every PATH.N next to `path`, N written without leading zeros, so
// that only the names the writer itself gives are touched.
std::vector<int> rotated_indices(const std::string& path) {
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".";
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";

  std::vector<int> indices;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string_view digits = std::string_view(name).substr(prefix.size());
    if (digits.size() > 9 || digits.front() == '0') continue;
    int index = 0;
    const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (err != std::errc() || end != digits.data() + digits.size()) continue;
    indices.push_back(index);
  }
  std::sort(indices.begin(), indices.end());
  return indices;
}

std::string rotated_name(const std::string& path, int index) {
  return path + "." + std::to_string(index);
}

// A write cut short (disk full, file size limit) may have left the head of a
// line in the file, and the next line would be glued to it: cut it off.
// `written` is what the interrupted write put in the file.
void drop_partial_line(int fd, std::string_view written, std::uint64_t& size) {
  if (written.empty() || written.back() == '\n') return;
  const std::size_t last = written.rfind('\n');
  const std::size_t fragment =
      last == std::string_view::npos ? written.size() : written.size() - last - 1;
  // With O_APPEND the offset is the end of what was just written.
  const off_t end = ::lseek(fd, 0, SEEK_CUR);
  if (end < static_cast<off_t>(fragment)) return;
  if (::ftruncate(fd, end - static_cast<off_t>(fragment)) == 0) {
    size -= std::min<std::uint64_t>(size, fragment);
  }
}

// Writes `data` whole, through short writes and EINTR, counting into `size`;
// on an error drops what got through of its last line. `kept` is what of
// `data` is in the file afterwards.
Status write_lines_whole(int fd, std::string_view data, const std::string& path,
                         std::uint64_t& size, std::size_t& kept) {
  std::size_t done = 0;
  Status st = os::write_all(fd, data, &done);
  size += done;
  if (st) {
    kept = done;
    return st;
  }
  const std::string_view written = data.substr(0, done);
  const std::size_t last = written.rfind('\n');
  kept = last == std::string_view::npos ? 0 : last + 1;
  drop_partial_line(fd, written, size);
  return os_error(st.error().os_error, "write " + path);
}

// The directories above `path`, made as needed.
Status make_parent_directories(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return {};
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return os_error(ec.value(), "create directory " + parent.string());
  return {};
}

}  // namespace

Result<std::unique_ptr<LogWriter>> LogWriter::open(const Options& options, const Clock& clock) {
  if (options.path.empty()) {
    return Error{ErrorKind::kInvalidArgument, "log path is empty", 0};
  }
  if (auto made = make_parent_directories(options.path); !made) return made.error();

  const int flags = kOpenFlags | (options.append ? 0 : O_TRUNC);
  const int fd = ::open(options.path.c_str(), flags, kFileMode);
  if (fd < 0) return os_error(errno, "open " + options.path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return os_error(err, "stat " + options.path);
  }
  Options effective = options;
  std::uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<std::uint64_t>(st.st_size);
  } else {
    // A device or FIFO (/dev/null, a pipe to a log collector) has no size
    // and must never be renamed away.
    effective.max_size = 0;
  }
  return std::unique_ptr<LogWriter>(new LogWriter(effective, clock, fd, size));
}

LogWriter::LogWriter(const Options& options, const Clock& clock, int fd, std::uint64_t size)
    : options_(options), clock_(clock), fd_(fd), size_(size) {}

LogWriter::~LogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status LogWriter::write_lines(std::string_view lines, std::uint64_t* dropped) {
  std::string stamp;
  std::string stamped;
  std::string_view data = lines;
  if (options_.timestamps && !lines.empty()) {
    stamp = format_stamp(clock_.wall_now());
    stamped = stamp_lines(lines, stamp);
    data = stamped;
  }

  std::size_t kept = 0;
  Status result = reopen_if_deleted();
  if (result) result = write_stamped(data, kept);

  // What was dropped is whole lines (or the final unfinished one), each
  // with its stamp, which is not the app's.
  const std::string_view lost = data.substr(kept);
  std::uint64_t lost_bytes = lost.size();
  if (!stamp.empty() && !lost.empty()) {
    const auto count = static_cast<std::size_t>(std::count(lost.begin(), lost.end(), '\n')) +
                       (lost.back() == '\n' ? 0 : 1);
    lost_bytes -= std::min<std::uint64_t>(lost_bytes, count * stamp.size());
  }
  dropped_ += lost_bytes;
  if (dropped != nullptr) *dropped = lost_bytes;
  if (result) {
    failing_ = false;
    return result;
  }
  if (!failing_) dropped_while_failing_ = 0;
  failing_ = true;
  error_ = result.error().message;
  dropped_while_failing_ += lost_bytes;
  return result;
}

Status LogWriter::write_stamped(std::string_view lines, std::size_t& kept) {
  // A failed rotation must not cost lines: the rest of the call goes into
  // the current file, past max_size, and the error is reported afterwards.
  Status rotation;
  bool may_rotate = options_.max_size > 0;
  kept = 0;
  while (!lines.empty()) {
    std::size_t chunk = lines.size();
    if (may_rotate && size_ + lines.size() > options_.max_size) {
      const std::uint64_t room = options_.max_size > size_ ? options_.max_size - size_ : 0;
      chunk = whole_lines_within(lines, room);
      if (chunk == 0) {
        if (size_ > 0) {
          Status rotated = rotate();
          if (!rotated.ok()) {
            rotation = std::move(rotated);
            may_rotate = false;
          }
          continue;
        }
        // An empty file and a line longer than max_size: the line goes
        // whole into this file rather than being split.
        chunk = first_line_length(lines);
      }
    }
    std::size_t chunk_kept = 0;
    Status written =
        write_lines_whole(fd_, lines.substr(0, chunk), options_.path, size_, chunk_kept);
    kept += chunk_kept;
    if (!written.ok()) return written;
    lines.remove_prefix(chunk);
  }
  return rotation;
}

Status LogWriter::reopen_if_deleted() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 0) return {};
  if (auto made = make_parent_directories(options_.path); !made) return made;
  const int fd = ::open(options_.path.c_str(), kOpenFlags, kFileMode);
  if (fd < 0) return os_error(errno, "open " + options_.path);
  struct stat now {};
  const bool sized = ::fstat(fd, &now) == 0;
  ::close(fd_);
  fd_ = fd;
  size_ = sized ? static_cast<std::uint64_t>(now.st_size) : 0;
  return {};
}

Status LogWriter::truncate() {
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && !S_ISREG(st.st_mode)) return {};
  if (::ftruncate(fd_, 0) != 0) return os_error(errno, "truncate " + options_.path);
  size_ = 0;
  return {};
}

Status truncate_log_file(const std::string& path) {
  if (path.empty()) return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  if (::truncate(path.c_str(), 0) != 0) return os_error(errno, "truncate " + path);
  return {};
}

Status LogWriter::rotate() {
  const std::string& path = options_.path;
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && !S_ISREG(st.st_mode)) return {};
  // The next file first: when it cannot be made (no inode left, no
  // descriptor), nothing is renamed, and the lines go on into this one.
  const std::string next = path + ".rotating";
  os::UniqueFd fresh(::open(next.c_str(), kOpenFlags | O_TRUNC, kFileMode));
  if (!fresh) return os_error(errno, "open " + next);
  auto fail = [&next](int err, const std::string& what) {
    ::unlink(next.c_str());
    return os_error(err, what);
  };
  if (options_.keep > 0) {
    // Highest first, so that each rename lands on a name already moved away.
    std::vector<int> indices = rotated_indices(path);
    for (auto it = indices.rbegin(); it != indices.rend(); ++it) {
      const std::string from = rotated_name(path, *it);
      if (*it >= options_.keep) {
        if (::unlink(from.c_str()) != 0 && errno != ENOENT) return fail(errno, "remove " + from);
        continue;
      }
      const std::string to = rotated_name(path, *it + 1);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
        return fail(errno, "rename " + from);
      }
    }
    const std::string first = rotated_name(path, 1);
    if (::rename(path.c_str(), first.c_str()) != 0 && errno != ENOENT) {
      return fail(errno, "rename " + path);
    }
  } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(errno, "remove " + path);
  }
  // If this fails the old descriptor stays: its file is now PATH.1 (or
  // unlinked), and the next write makes PATH again (reopen_if_deleted).
  if (::rename(next.c_str(), path.c_str()) != 0) return fail(errno, "rename " + next);
  ::close(fd_);
  fd_ = fresh.release();
  size_ = 0;
  if (on_rotate_) on_rotate_(path);
  return {};
}

void LogWriter::set_on_rotate(std::function<void(const std::string&)> on_rotate) {
  on_rotate_ = std::move(on_rotate);
}

const std::string& LogWriter::path() const { return options_.path; }

std::uint64_t LogWriter::size() const { return size_; }

int remove_rotated_logs(const std::string& path) {
  int removed = 0;
  for (int index : rotated_indices(path)) {
    if (::unlink(rotated_name(path, index).c_str()) == 0) ++removed;
  }
  return removed;
}

namespace {

// Appends to `out` (newest first) lines of the file at `path`, until `out`
// holds `count`, reading backwards in blocks so that a large log costs only
// its tail.
void tail_one(const std::string& path, std::size_t count, std::vector<std::string>& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  off_t end = st.st_size;
  std::string pending;  // the start of a line whose beginning is not read yet
  bool at_end = true;
  char block[65536];
  while (end > 0 && out.size() < count) {
    const off_t start =
        end > static_cast<off_t>(sizeof block) ? end - static_cast<off_t>(sizeof block) : 0;
    const ssize_t n = ::pread(fd, block, static_cast<std::size_t>(end - start), start);
    if (n <= 0) break;
    std::string chunk(block, static_cast<std::size_t>(n));
    chunk += pending;
    pending.clear();
    std::size_t stop = chunk.size();
    if (at_end && stop > 0 && chunk[stop - 1] == '\n') --stop;  // the file's final newline
    at_end = false;
    for (;;) {
      const std::size_t nl = chunk.rfind('\n', stop == 0 ? 0 : stop - 1);
      if (nl == std::string::npos || stop == 0) {
        pending = chunk.substr(0, stop);
        break;
      }
      out.push_back(chunk.substr(nl + 1, stop - nl - 1));
      if (out.size() == count) break;
      stop = nl;
    }
    end = start;
  }
  if (end == 0 && out.size() < count && !pending.empty()) out.push_back(pending);
  ::close(fd);
}

}  // namespace

std::vector<std::string> tail_lines(const std::string& path, std::size_t count) {
  std::vector<std::string> newest_first;
  if (count == 0) return newest_first;
  tail_one(path, count, newest_first);
  for (int index = 1; newest_first.size() < count; ++index) {
    const std::string rotated = path + "." + std::to_string(index);
    if (::access(rotated.c_str(), F_OK) != 0) break;
    tail_one(rotated, count, newest_first);
  }
  return {newest_first.rbegin(), newest_first.rend()};
}

}  // namespace sempre
