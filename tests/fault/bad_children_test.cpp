// Fault scenario for children that misbehave, side by side under one
// daemon: one ignores SIGTERM, one forks a hundred children, one closes its
// stdout and stderr at once, one writes binary bytes, one a 10 MB line.
// Counted exactly: the processes of each app before and after stop, bytes
// in the logs against bytes written, the pieces a long line is cut into,
// and that every app keeps running (same pid) until it is stopped.
#include <iostream>

#include "fault/fault_fixture.hpp"

namespace sempre::fault {
namespace {

using BadChildren = FaultScenario;

constexpr std::size_t kCut = 64 * 1024;  // the documented cut of a line with no end

TEST_F(BadChildren, EachKeepsRunningLosesNoByteAndStopsWhole) {
  // 1 MiB and a bit, so that the last byte is a newline (10): a line is
  // written once it is whole.
  constexpr long kBytes = (1 << 20) + 11;
  constexpr long kLongLine = 10 * 1000 * 1000;
  constexpr int kForks = 100;
  ASSERT_EQ(start("deaf", {kChild, "ignore-term"}, {"--kill-timeout", "300ms"}), 0);
  ASSERT_EQ(start("forker", {kChild, "forks", std::to_string(kForks)}), 0);
  ASSERT_EQ(start("mute", {kChild, "mute"}), 0);
  ASSERT_EQ(start("binary", {kChild, "bytes", std::to_string(kBytes)}), 0);
  ASSERT_EQ(start("long", {kChild, "long-line", std::to_string(kLongLine)}), 0);

  const auto full = [](const std::string& path, std::size_t size) {
    return [path, size] { return fs::exists(path) && fs::file_size(path) >= size; };
  };
  ASSERT_TRUE(test::eventually(full(out_log("binary"), kBytes)));
  ASSERT_TRUE(test::eventually(full(out_log("long"), kLongLine + kLongLine / kCut + 1)));
  ASSERT_TRUE(test::eventually([&] { return copies("forker").size() == kForks + 1; }));

  std::map<std::string, json::object> before = apps();
  ASSERT_EQ(before.size(), 5u);
  for (const auto& [name, app] : before) {
    EXPECT_GT(pid_of(app), 0) << name;
    EXPECT_EQ(number(app, "restarts"), 0) << name;
  }

  // Binary output, byte for byte.
  const std::string bytes = test::read_file(out_log("binary"));
  long wrong = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    wrong += static_cast<unsigned char>(bytes[i]) != i % 256 ? 1 : 0;
  }
  // A line with no end, cut at exactly 64 KiB: every piece a line.
  const std::string long_log = test::read_file(out_log("long"));
  std::size_t pieces = 0;
  std::size_t longest = 0;
  std::size_t xs = 0;
  for (std::size_t at = 0; at < long_log.size();) {
    const std::size_t end = long_log.find('\n', at);
    const std::size_t n = (end == std::string::npos ? long_log.size() : end) - at;
    ++pieces;
    longest = std::max(longest, n);
    xs += n;
    at = end == std::string::npos ? long_log.size() : end + 1;
  }

  const std::size_t forked = copies("forker").size();
  ASSERT_EQ(sempre({"stop", "all"}), 0);
  std::size_t left = 0;
  for (const auto& [name, app] : before) left += copies(name).size();
  std::cout << "binary: " << bytes.size() << " of " << kBytes << " bytes, " << wrong
            << " wrong; 10 MB line: " << xs << " bytes in " << pieces << " lines of at most "
            << longest << "; forker: " << forked << " processes; after stop all: " << left
            << " processes left\n";
  EXPECT_EQ(static_cast<long>(bytes.size()), kBytes);
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(static_cast<long>(xs), kLongLine);
  EXPECT_EQ(longest, kCut);
  EXPECT_EQ(pieces, (kLongLine + kCut - 1) / kCut);
  EXPECT_EQ(forked, static_cast<std::size_t>(kForks + 1));
  EXPECT_EQ(left, 0u);
}

}  // namespace
}  // namespace sempre::fault
