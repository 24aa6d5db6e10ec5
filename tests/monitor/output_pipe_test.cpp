#include "output_pipe.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>

#include "log_writer.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

using test::run_until;
using test::TempDir;

// Both ends of a pipe, closed when the test is done with them.
struct Pipe {
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) == 0) {
      read_fd = fds[0];
      write_fd = fds[1];
    }
  }
  ~Pipe() {
    close_write();
    if (read_fd >= 0) ::close(read_fd);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  // Hands the read end to an OutputPipe, which owns it from then on.
  int release_read() { return std::exchange(read_fd, -1); }
  void close_write() {
    if (write_fd >= 0) ::close(std::exchange(write_fd, -1));
  }
  void write(std::string_view data) const {
    ASSERT_EQ(::write(write_fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  }

  int read_fd = -1;
  int write_fd = -1;
};

// What the callbacks of one OutputPipe received.
struct Received {
  std::vector<std::string> calls;
  int eofs = 0;

  OutputPipe::Callbacks callbacks() {
    return {[this](std::string_view lines) { calls.emplace_back(lines); }, [this] { ++eofs; }};
  }
  std::string all() const {
    std::string joined;
    for (const auto& c : calls) joined += c;
    return joined;
  }
};

// Starts the test child with `args`, its stdout on `out_fd`.
pid_t spawn_child(int out_fd, std::vector<std::string> args) {
  args.insert(args.begin(), SEMPRE_TEST_CHILD);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The line `flood` writes as number `n`: "%08d " and 'x' up to `len` bytes.
std::string flood_line(long n, std::size_t len) {
  char head[32];
  std::snprintf(head, sizeof head, "%08ld ", n);
  return std::string(head) + std::string(len - 10, 'x');
}

TEST(OutputPipe, DeliversTheCompleteLinesOfEachReadInOneCall) {
  boost::asio::io_context io;
  Pipe pipe;
  Received got;
  OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(), got.callbacks());

  pipe.write("a\nb\nc");
  ASSERT_TRUE(run_until(io, [&] { return got.calls.size() == 1; }));
  EXPECT_EQ(got.calls[0], "a\nb\n");

  pipe.write("d\ne");
  ASSERT_TRUE(run_until(io, [&] { return got.calls.size() == 2; }));
  EXPECT_EQ(got.calls[1], "cd\n");

  pipe.close_write();
  ASSERT_TRUE(run_until(io, [&] { return got.eofs == 1; }));
  EXPECT_EQ(got.calls.back(), "e\n");
  EXPECT_TRUE(out.at_eof());
}

TEST(OutputPipe, FlushesAFinalLineWithoutNewlineAtEof) {
  boost::asio::io_context io;
  Pipe pipe;
  const pid_t child = spawn_child(pipe.write_fd, {"print-nonl", "last words"});
  ASSERT_GT(child, 0);
  pipe.close_write();
  Received got;
  OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(), got.callbacks());

  ASSERT_TRUE(run_until(io, [&] { return got.eofs == 1; }));
  EXPECT_EQ(got.all(), "last words\n");
  EXPECT_EQ(wait_child(child), 0);
}

TEST(OutputPipe, CallsOnEofOnceWhenTheLastWriterCloses) {
  boost::asio::io_context io;
  Pipe pipe;
  const int second_writer = ::dup(pipe.write_fd);
  ASSERT_GE(second_writer, 0);
  Received got;
  OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(), got.callbacks());

  pipe.close_write();
  ASSERT_EQ(::write(second_writer, "still here\n", 11), 11);
  ASSERT_TRUE(run_until(io, [&] { return !got.calls.empty(); }));
  EXPECT_EQ(got.eofs, 0);
  EXPECT_FALSE(out.at_eof());

  ::close(second_writer);
  ASSERT_TRUE(run_until(io, [&] { return got.eofs > 0; }));
  io.poll();
  EXPECT_EQ(got.eofs, 1);
  EXPECT_EQ(got.all(), "still here\n");
}

TEST(OutputPipe, DeliversAPartialLongerThanMaxLineAsALineOfItsOwn) {
  boost::asio::io_context io;
  Pipe pipe;
  Received got;
  OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(), got.callbacks());

  // Written from the same thread, so through asio: more than a pipe holds.
  const std::string endless(3 * OutputPipe::kMaxLine + 10, 'a');
  boost::asio::posix::stream_descriptor writer(io, std::exchange(pipe.write_fd, -1));
  bool written = false;
  boost::asio::async_write(writer, boost::asio::buffer(endless),
                           [&](const boost::system::error_code& ec, std::size_t) {
                             EXPECT_FALSE(ec);
                             written = true;
                           });

  // Delivered while the writer is still open: not an EOF flush.
  ASSERT_TRUE(run_until(io, [&] { return !got.calls.empty(); }));
  EXPECT_EQ(got.eofs, 0);
  EXPECT_EQ(got.calls[0].size(), OutputPipe::kMaxLine + 1) << "cut at exactly kMaxLine";
  EXPECT_EQ(got.calls[0].back(), '\n');

  ASSERT_TRUE(run_until(io, [&] { return written; }));
  writer.close();
  ASSERT_TRUE(run_until(io, [&] { return got.eofs == 1; }));
  std::size_t total = 0;
  for (std::size_t i = 0; i < got.calls.size(); ++i) {
    const std::string& line = got.calls[i];
    EXPECT_EQ(line.find('\n'), line.size() - 1);
    EXPECT_EQ(line.find_first_not_of('a'), line.size() - 1);
    if (i + 1 < got.calls.size()) {
      EXPECT_EQ(line.size(), OutputPipe::kMaxLine + 1) << i;
    }
    total += line.size() - 1;
  }
  EXPECT_EQ(got.calls.size(), 4u);
  EXPECT_EQ(total, endless.size());
}

// A long line whose newline comes (in the same read, or a later one) is cut
// at kMaxLine too: no line reaches the log longer than that.
TEST(OutputPipe, CutsALongLineAtMaxLineWhereverItsNewlineComes) {
  for (const std::size_t length :
       {OutputPipe::kMaxLine + 1, 2 * OutputPipe::kMaxLine, 3 * OutputPipe::kMaxLine / 2 + 7}) {
    boost::asio::io_context io;
    Pipe pipe;
    Received got;
    OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(), got.callbacks());
    const std::string text = "short\n" + std::string(length, 'b') + "\nafter\n";
    boost::asio::posix::stream_descriptor writer(io, std::exchange(pipe.write_fd, -1));
    boost::asio::async_write(writer, boost::asio::buffer(text),
                             [&](const boost::system::error_code& ec, std::size_t) {
                               EXPECT_FALSE(ec);
                               writer.close();
                             });
    ASSERT_TRUE(run_until(io, [&] { return got.eofs == 1; }));
    const std::vector<std::string> lines = test::split_lines(got.all());
    std::vector<std::string> want = {"short"};
    for (std::size_t left = length; left > 0;) {
      const std::size_t n = std::min(left, OutputPipe::kMaxLine);
      want.emplace_back(n, 'b');
      left -= n;
    }
    want.emplace_back("after");
    EXPECT_EQ(lines, want) << length;
  }
}

TEST(OutputPipe, AFloodingPipeDoesNotStarveAnother) {
  boost::asio::io_context io;
  // A tiny buffer turns the flood into thousands of reads.
  const SharedReadBuffer buffer = make_read_buffer(16);
  Pipe noisy_pipe;
  Pipe quiet_pipe;
  std::size_t noisy_bytes = 0;
  std::string quiet;
  OutputPipe noisy(io.get_executor(), noisy_pipe.release_read(), buffer,
                   {[&](std::string_view lines) { noisy_bytes += lines.size(); }, [] {}});
  OutputPipe calm(io.get_executor(), quiet_pipe.release_read(), buffer,
                  {[&](std::string_view lines) { quiet += lines; }, [] {}});

  std::string flood;
  while (flood.size() < 60000) flood += "noisy line\n";
  noisy_pipe.write(flood);
  quiet_pipe.write("quiet\n");

  ASSERT_TRUE(run_until(io, [&] { return !quiet.empty(); }));
  EXPECT_EQ(quiet, "quiet\n");
  EXPECT_LT(noisy_bytes, flood.size() / 10);
}

TEST(OutputPipe, TwoPipesIntoOneFileInterleaveWholeLinesOnly) {
  boost::asio::io_context io;
  TempDir dir;
  auto clock = make_asio_clock(io.get_executor());
  auto writer = LogWriter::open({.path = dir.file("app.log")}, *clock);
  ASSERT_TRUE(writer.ok());
  const long count = 20000;
  const std::size_t len = 100;

  const SharedReadBuffer buffer = make_read_buffer();
  Pipe out_pipe;
  Pipe err_pipe;
  const pid_t out_child = spawn_child(out_pipe.write_fd, {"flood", std::to_string(count), "100"});
  const pid_t err_child = spawn_child(err_pipe.write_fd, {"flood", std::to_string(count), "100"});
  ASSERT_GT(out_child, 0);
  ASSERT_GT(err_child, 0);
  out_pipe.close_write();
  err_pipe.close_write();

  int eofs = 0;
  int errors = 0;
  auto callbacks = [&] {
    return OutputPipe::Callbacks{[&](std::string_view lines) {
                                   if (!(*writer)->write_lines(lines).ok()) ++errors;
                                 },
                                 [&] { ++eofs; }};
  };
  OutputPipe out(io.get_executor(), out_pipe.release_read(), buffer, callbacks());
  OutputPipe err(io.get_executor(), err_pipe.release_read(), buffer, callbacks());
  ASSERT_TRUE(run_until(io, [&] { return eofs == 2; }));
  EXPECT_EQ(wait_child(out_child), 0);
  EXPECT_EQ(wait_child(err_child), 0);
  EXPECT_EQ(errors, 0);

  // Each line is whole, and the file is a merge of two ordered streams.
  const auto lines = test::split_lines(test::read_file(dir.file("app.log")));
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(2 * count));
  long next_a = 1;
  long next_b = 1;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const long n = std::atol(lines[i].substr(0, 8).c_str());
    ASSERT_EQ(lines[i], flood_line(n, len)) << "line " << i;
    if (n == next_a) {
      ++next_a;
    } else if (n == next_b) {
      ++next_b;
    } else {
      FAIL() << "line " << i << " out of order: " << n;
    }
  }
}

TEST(OutputPipe, FloodThroughRotationLosesDuplicatesAndSplitsNoLine) {
  boost::asio::io_context io;
  TempDir dir;
  auto clock = make_asio_clock(io.get_executor());
  const std::string path = dir.file("logs/app.out.log");
  const std::uint64_t max_size = 1024 * 1024;
  auto opened = LogWriter::open({.path = path, .max_size = max_size, .keep = 1000}, *clock);
  ASSERT_TRUE(opened.ok());
  LogWriter& writer = **opened;
  int rotations = 0;
  writer.set_on_rotate([&](const std::string&) { ++rotations; });

  const long count = 200000;
  const std::size_t len = 100;
  Pipe pipe;
  const pid_t child = spawn_child(pipe.write_fd, {"flood", std::to_string(count), "100"});
  ASSERT_GT(child, 0);
  pipe.close_write();
  bool eof = false;
  int errors = 0;
  OutputPipe out(io.get_executor(), pipe.release_read(), make_read_buffer(),
                 {[&](std::string_view lines) {
                    if (!writer.write_lines(lines).ok()) ++errors;
                  },
                  [&] { eof = true; }});
  ASSERT_TRUE(run_until(io, [&] { return eof; }));
  EXPECT_EQ(wait_child(child), 0);
  EXPECT_EQ(errors, 0);

  const std::size_t total = count * (len + 1);
  EXPECT_EQ(rotations, static_cast<int>((total - 1) / (max_size / (len + 1) * (len + 1))));
  long expected = 1;
  for (int i = rotations; i >= 0; --i) {
    const std::string file = i == 0 ? path : path + "." + std::to_string(i);
    const std::string content = test::read_file(file);
    ASSERT_LE(content.size(), max_size) << file;
    ASSERT_FALSE(content.empty()) << file;
    ASSERT_EQ(content.back(), '\n') << file;
    for (const auto& line : test::split_lines(content)) {
      ASSERT_EQ(line, flood_line(expected, len)) << file;
      ++expected;
    }
  }
  EXPECT_EQ(expected, count + 1);
  EXPECT_FALSE(std::filesystem::exists(path + "." + std::to_string(rotations + 1)));
}

TEST(OutputPipe, DestructionWithAPendingWaitRunsNoCallback) {
  boost::asio::io_context io;
  Pipe pipe;
  Received got;
  auto out = std::make_unique<OutputPipe>(io.get_executor(), pipe.release_read(),
                                          make_read_buffer(), got.callbacks());
  io.poll();
  // Readable, but the wait's handler has not run yet when the pipe goes.
  pipe.write("too late\n");
  out.reset();
  io.restart();
  io.poll();
  EXPECT_TRUE(got.calls.empty());
  EXPECT_EQ(got.eofs, 0);
}

TEST(OutputPipe, OnEofMayDestroyThePipe) {
  boost::asio::io_context io;
  Pipe pipe;
  std::unique_ptr<OutputPipe> out;
  std::string lines;
  bool eof = false;
  out = std::make_unique<OutputPipe>(io.get_executor(), pipe.release_read(), make_read_buffer(),
                                     OutputPipe::Callbacks{[&](std::string_view l) { lines += l; },
                                                           [&] {
                                                             eof = true;
                                                             out.reset();
                                                           }});
  pipe.write("bye");
  pipe.close_write();
  ASSERT_TRUE(run_until(io, [&] { return eof; }));
  EXPECT_FALSE(out);
  EXPECT_EQ(lines, "bye\n");
}

TEST(OutputPipe, OnLinesMayDestroyThePipe) {
  boost::asio::io_context io;
  Pipe pipe;
  std::unique_ptr<OutputPipe> out;
  std::vector<std::string> calls;
  bool eof = false;
  out = std::make_unique<OutputPipe>(io.get_executor(), pipe.release_read(), make_read_buffer(),
                                     OutputPipe::Callbacks{[&](std::string_view l) {
                                                             calls.emplace_back(l);
                                                             out.reset();
                                                           },
                                                           [&] { eof = true; }});
  pipe.write("first\nsecond");
  pipe.close_write();
  ASSERT_TRUE(run_until(io, [&] { return !out; }));
  io.poll();
  EXPECT_EQ(calls, std::vector<std::string>{"first\n"});
  EXPECT_FALSE(eof);
}

}  // namespace
}  // namespace sempre
