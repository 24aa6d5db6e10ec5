// Followers of logs and events: who gets an item, and that closing a
// session (even while an item is being sent) removes its follower.
#include "subscriptions.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "daemon/fake_session.hpp"

namespace sempre {
namespace {

using test::FakeSession;
namespace json = boost::json;

json::object line(const std::string& text) { return {{"line", text}}; }

// The "line" of each item `session` got.
std::vector<std::string> lines(const FakeSession& session) {
  std::vector<std::string> out;
  for (const auto& item : session.items()) out.emplace_back(item.at("line").as_string());
  return out;
}

using Lines = std::vector<std::string>;

TEST(Subscriptions, AnItemGoesToTheFollowersOfItsAppAsAnItemOfTheirRequest) {
  Subscriptions subs;
  auto web = std::make_shared<FakeSession>();
  auto all = std::make_shared<FakeSession>();
  subs.add(web, 7, {{1}});
  subs.add(all, 9, {});
  subs.publish(1, line("one"));
  subs.publish(2, line("two"));
  EXPECT_EQ(lines(*web), (Lines{"one"}));
  EXPECT_EQ(lines(*all), (Lines{"one", "two"}));
  ASSERT_EQ(web->sent.size(), 1u);
  EXPECT_EQ(web->sent[0].at("id").as_uint64(), 7u);
  EXPECT_EQ(all->sent[0].at("id").as_uint64(), 9u);
}

TEST(Subscriptions, AFollowerOfSeveralAppsGetsTheItemsOfEach) {
  Subscriptions subs;
  auto s = std::make_shared<FakeSession>();
  subs.add(s, 1, {{2, 3}});
  subs.publish(1, line("a"));
  subs.publish(2, line("b"));
  subs.publish(3, line("c"));
  EXPECT_EQ(lines(*s), (Lines{"b", "c"}));
}

TEST(Subscriptions, OutputItemsGoOnlyToTheFollowersOfTheirStream) {
  Subscriptions subs;
  auto out = std::make_shared<FakeSession>();
  auto err = std::make_shared<FakeSession>();
  auto both = std::make_shared<FakeSession>();
  subs.add(out, 1, {{}, true, false});
  subs.add(err, 2, {{}, false, true});
  subs.add(both, 3, {});
  subs.publish(1, line("o"), OutputStream::kStdout);
  subs.publish(1, line("e"), OutputStream::kStderr);
  subs.publish(1, line("event"));  // not of a stream: to everyone
  EXPECT_EQ(lines(*out), (Lines{"o", "event"}));
  EXPECT_EQ(lines(*err), (Lines{"e", "event"}));
  EXPECT_EQ(lines(*both), (Lines{"o", "e", "event"}));
}

TEST(Subscriptions, AClosedSessionIsNoLongerAFollower) {
  Subscriptions subs;
  auto s = std::make_shared<FakeSession>();
  auto other = std::make_shared<FakeSession>();
  subs.add(s, 1, {});
  subs.add(other, 2, {});
  EXPECT_EQ(subs.size(), 2u);
  s->close();
  EXPECT_EQ(subs.size(), 1u);
  subs.publish(1, line("after"));
  EXPECT_TRUE(s->sent.empty());
  EXPECT_EQ(lines(*other), (Lines{"after"}));
}

TEST(Subscriptions, ASessionClosedAlreadyNeverFollows) {
  Subscriptions subs;
  auto s = std::make_shared<FakeSession>();
  s->close();
  subs.add(s, 1, {});
  EXPECT_TRUE(subs.empty());
}

TEST(Subscriptions, ASessionThatClosesWhileAnItemIsSentIsRemovedSafely) {
  Subscriptions subs;
  auto first = std::make_shared<FakeSession>();
  auto dropped = std::make_shared<FakeSession>();
  auto last = std::make_shared<FakeSession>();
  // As the control server drops a client that does not read: inside send().
  dropped->on_send = [&](const json::object&) { dropped->close(); };
  // And one that closes another follower's session from inside its send.
  first->on_send = [&](const json::object&) { last->close(); };
  subs.add(first, 1, {});
  subs.add(dropped, 2, {});
  subs.add(last, 3, {});
  subs.publish(1, line("x"));
  EXPECT_EQ(lines(*first), (Lines{"x"}));
  EXPECT_EQ(lines(*dropped), (Lines{"x"}));
  EXPECT_TRUE(last->sent.empty());
  EXPECT_EQ(subs.size(), 1u);
  subs.publish(1, line("y"));
  EXPECT_EQ(lines(*first), (Lines{"x", "y"}));
}

TEST(Subscriptions, ASessionOutlivingTheSubscriptionsMayStillClose) {
  auto s = std::make_shared<FakeSession>();
  {
    Subscriptions subs;
    subs.add(s, 1, {});
  }
  s->close();  // its close handler finds nothing to remove
  EXPECT_FALSE(s->is_open());
}

TEST(Subscriptions, AGoneSessionIsSkipped) {
  Subscriptions subs;
  auto kept = std::make_shared<FakeSession>();
  {
    auto gone = std::make_shared<FakeSession>();
    subs.add(gone, 1, {});
  }
  subs.add(kept, 2, {});
  subs.publish(1, line("z"));
  EXPECT_EQ(lines(*kept), (Lines{"z"}));
}

}  // namespace
}  // namespace sempre
