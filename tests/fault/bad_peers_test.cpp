// Fault scenario for hostile clients, all at once: one pipelining requests
// without reading the answers, a connect-and-hang-up storm, a crowd of idle
// connections, and a slow drip of one request a byte at a time, while
// `sempre list` is asked again and again; then clients up to the cap and
// past it. Counted exactly: lists answered, answers the pipeliner gets once
// it reads, clients served and refused at the cap, pids of the apps; the
// time each list took is printed, not asserted.
#include <atomic>
#include <iostream>
#include <thread>

#include "e2e/raw_client.hpp"
#include "fault/fault_fixture.hpp"
#include "protocol.hpp"

namespace sempre::fault {
namespace {

using BadPeers = FaultScenario;
using test::RawClient;

TEST_F(BadPeers, NoClientKeepsTheDaemonFromAnsweringTheOthers) {
  constexpr int kMaxClients = 64;
  constexpr int kPastTheCap = 20;
  constexpr int kRequests = 20000;
  constexpr int kLists = 20;
  fs::create_directories(home_);
  fs::permissions(home_, fs::perms::owner_all, fs::perm_options::replace);
  test::write_file(home_ + "/config.toml",
                   "[daemon]\nmax_clients = " + std::to_string(kMaxClients) + "\n");
  for (const char* name : {"web", "worker"}) {
    ASSERT_EQ(start(name, {kChild, "sleep", "forever"}), 0);
  }
  std::map<std::string, json::object> before = apps();
  const std::string socket = home_ + "/sempre.sock";

  const int idle = kMaxClients / 2;
  std::vector<std::unique_ptr<RawClient>> crowd;
  const std::string ping = protocol::encode(protocol::make_request(1, "ping"));
  for (int i = 0; i < idle; ++i) {
    crowd.push_back(std::make_unique<RawClient>(socket));
    ASSERT_TRUE(crowd.back()->send(ping) && crowd.back()->read_line()) << "idle client " << i;
  }

  std::string requests;
  for (int i = 1; i <= kRequests; ++i) {
    requests += protocol::encode(protocol::make_request(i, "ping"));
  }
  RawClient pipeliner(socket);
  ASSERT_TRUE(pipeliner.connected());
  std::atomic<bool> attacking{true};
  bool sent = false;
  std::thread sender([&] { sent = pipeliner.send(requests); });
  std::atomic<long> storms{0};
  std::thread storm([&] {
    while (attacking) {
      RawClient hit(socket);
      storms += hit.connected() ? 1 : 0;
    }
  });
  std::atomic<bool> dripped{false};
  std::thread drip([&] {
    RawClient slow(socket);
    for (char c : ping) {
      if (!slow.send(std::string_view(&c, 1))) return;
      ::usleep(5000);
    }
    dripped = slow.read_line().has_value();
  });

  int answered = 0;
  std::vector<double> took;
  for (int i = 0; i < kLists; ++i) {
    const auto asked = std::chrono::steady_clock::now();
    std::string out;
    answered += sempre({"list"}, &out) == 0 ? 1 : 0;
    took.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked)
            .count());
  }

  attacking = false;
  storm.join();
  drip.join();

  int answers = 0;
  while (answers < kRequests && pipeliner.read_line()) ++answers;
  sender.join();

  // Up to the cap: served, and kept; past it, each one more is told so and
  // closed, unserved. (A client that left a moment ago may still hold its
  // place until the daemon reads its hang-up: one more is tried then.)
  std::vector<std::unique_ptr<RawClient>> more;
  int served = 0;
  int refused = 0;
  for (int tries = 0; refused < kPastTheCap && tries < kMaxClients + kPastTheCap; ++tries) {
    more.push_back(std::make_unique<RawClient>(socket));
    more.back()->send(ping);
    const auto line = more.back()->read_line();
    if (line && line->find("too many clients") != std::string::npos) {
      ++refused;
    } else if (line) {
      if (refused > 0) break;  // a place came free after a refusal
      ++served;
    }
  }
  crowd.clear();
  more.clear();
  std::map<std::string, json::object> after;
  EXPECT_TRUE(test::eventually([&] { return !(after = apps()).empty(); }));
  std::sort(took.begin(), took.end());
  std::cout << "lists answered: " << answered << " of " << kLists << " (median " << took[kLists / 2]
            << " ms, max " << took.back() << " ms) during " << storms << " connections of the storm"
            << "; pipelined answers " << answers << " of " << kRequests << "; at the cap of "
            << kMaxClients << " with " << idle << " idle: " << served << " more served, then "
            << refused << " refused\n";
  EXPECT_EQ(answered, kLists);
  EXPECT_TRUE(sent);
  EXPECT_EQ(answers, kRequests);
  EXPECT_TRUE(dripped) << "a request sent a byte at a time is answered";
  EXPECT_EQ(served, kMaxClients - idle - 1);  // the pipeliner holds one
  EXPECT_EQ(refused, kPastTheCap);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [name, app] : before) {
    EXPECT_EQ(pid_of(after.at(name)), pid_of(app)) << name;
  }
}

}  // namespace
}  // namespace sempre::fault
