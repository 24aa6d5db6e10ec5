// The embedding example of the README, built and run as users would.
#include <gtest/gtest.h>

#include "e2e/subprocess.hpp"

namespace sempre {
namespace {

TEST(EmbedExample, SupervisesAndGivesUpAfterThreeCrashLoopRestarts) {
  test::Subprocess p({SEMPRE_EMBED_EXAMPLE, SEMPRE_TEST_CHILD, "exit", "1"});
  EXPECT_EQ(p.wait(), 1);
  int starts = 0;
  for (std::size_t at = 0; (at = p.err().find("event: start", at)) != std::string::npos; ++at)
    ++starts;
  EXPECT_EQ(starts, 4) << p.err();
  EXPECT_NE(p.err().find("event: failed"), std::string::npos) << p.err();
}

TEST(EmbedExample, PrintsTheChildsOutput) {
  test::Subprocess p({SEMPRE_EMBED_EXAMPLE, SEMPRE_TEST_CHILD, "signals"});
  ASSERT_TRUE(p.wait_for_output("ready"));
  ::kill(p.pid(), SIGTERM);
  EXPECT_EQ(p.wait(), 0);
}

}  // namespace
}  // namespace sempre
