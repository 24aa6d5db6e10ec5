#include "sempre/log_files.hpp"

#include <gtest/gtest.h>

#include "test_util.hpp"

namespace sempre {
namespace {

using test::TempDir;
using test::write_file;
using Lines = std::vector<std::string>;

TEST(TailLines, ReturnsTheLastLinesOldestFirst) {
  TempDir dir;
  const std::string log = dir.file("app.log");
  write_file(log, "one\ntwo\nthree\nfour\n");
  EXPECT_EQ(tail_lines(log, 2), (Lines{"three", "four"}));
  EXPECT_EQ(tail_lines(log, 10), (Lines{"one", "two", "three", "four"}));
  EXPECT_EQ(tail_lines(log, 0), Lines{});
}

TEST(TailLines, KeepsALastLineWithoutNewline) {
  TempDir dir;
  const std::string log = dir.file("app.log");
  write_file(log, "one\ntwo");
  EXPECT_EQ(tail_lines(log, 1), Lines{"two"});
  EXPECT_EQ(tail_lines(log, 5), (Lines{"one", "two"}));
}

TEST(TailLines, ReachesBackIntoRotatedFiles) {
  TempDir dir;
  const std::string log = dir.file("app.log");
  write_file(log + ".2", "a\nb\n");
  write_file(log + ".1", "c\nd\n");
  write_file(log, "e\n");
  EXPECT_EQ(tail_lines(log, 4), (Lines{"b", "c", "d", "e"}));
  EXPECT_EQ(tail_lines(log, 100), (Lines{"a", "b", "c", "d", "e"}));
}

TEST(TailLines, ReadsLinesThatCrossBlockBoundaries) {
  TempDir dir;
  const std::string log = dir.file("big.log");
  std::string content;
  Lines expected;
  for (int i = 0; i < 5000; ++i) {
    std::string line = std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x');
    content += line + "\n";
    expected.push_back(line);
  }
  write_file(log, content);
  const Lines tail = tail_lines(log, 3000);
  EXPECT_EQ(tail, Lines(expected.end() - 3000, expected.end()));
  EXPECT_EQ(tail_lines(log, 5000), expected);
}

TEST(TailLines, MissingFileHoldsNoLines) {
  EXPECT_TRUE(tail_lines("/nonexistent/app.log", 5).empty());
}

TEST(RemoveRotatedLogs, RemovesOnlyTheRotatedCopies) {
  TempDir dir;
  const std::string log = dir.file("app.log");
  for (const char* suffix : {"", ".1", ".2", ".3"}) write_file(log + suffix, "x\n");
  EXPECT_EQ(remove_rotated_logs(log), 3);
  EXPECT_TRUE(std::filesystem::exists(log));
  EXPECT_FALSE(std::filesystem::exists(log + ".1"));
}

}  // namespace
}  // namespace sempre
