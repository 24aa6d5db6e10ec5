#include "control_server.hpp"

#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "home.hpp"
#include "protocol.hpp"
#include "test_util.hpp"

namespace sempre {
namespace {

namespace json = boost::json;
using boost::asio::local::stream_protocol;
using test::run_until;
using test::TempDir;
using namespace std::chrono_literals;

// A request handler with one behaviour per command, enough to exercise the
// server: answers, streams, subscriptions, silence and failure.
class FakeHandler final : public RequestHandler {
 public:
  void handle(const protocol::Request& request, const std::shared_ptr<Session>& session) override {
    ++calls;
    if (request.cmd == "echo") {
      if (const auto* v = request.args.if_contains("who")) who.emplace_back(v->as_string());
      session->send(protocol::make_result(request.id, request.args));
    } else if (request.cmd == "stream") {
      const auto n = request.args.at("n").to_number<int>();
      for (int i = 0; i < n; ++i) session->send(protocol::make_item(request.id, {{"i", i}}));
      session->send(protocol::make_result(request.id, {{"count", n}}));
    } else if (request.cmd == "subscribe") {
      session->on_close([this] { ++closed; });
      subscribers.push_back(session);
      session->send(protocol::make_result(request.id));
    } else if (request.cmd == "flood") {
      // Far more than the server lets queue for a client that does not read.
      session->on_close([this] { ++closed; });
      const std::string chunk(512 * 1024, 'x');
      for (int i = 0; i < 16 && session->is_open(); ++i) {
        session->send(protocol::make_item(request.id, {{"chunk", chunk}}));
      }
    } else if (request.cmd == "bye") {
      session->send(protocol::make_result(request.id, {{"stopped", 0}}));
      if (on_bye) on_bye();
    } else if (request.cmd == "throw") {
      throw std::runtime_error("boom");
    }
  }

  int calls = 0;
  int closed = 0;
  std::vector<std::string> who;  // the "who" of each echo, in the order served
  std::vector<std::shared_ptr<Session>> subscribers;
  std::function<void()> on_bye;
};

// A client on the test's io_context: writes whatever it is told, and
// collects every line the server sends until the connection ends.
class Client {
 public:
  Client(boost::asio::io_context& io, const std::string& path)
      : state_(std::make_shared<State>(io)) {
    boost::system::error_code ec;
    state_->socket.connect(stream_protocol::endpoint(path), ec);
    EXPECT_FALSE(ec) << ec.message();
    read(state_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { close(); }

  void send_raw(std::string bytes) {
    auto data = std::make_shared<std::string>(std::move(bytes));
    boost::asio::async_write(state_->socket, boost::asio::buffer(*data),
                             [data](const boost::system::error_code&, std::size_t) {});
  }
  void send(const json::object& message) { send_raw(protocol::encode(message)); }
  void close() {
    boost::system::error_code ec;
    state_->socket.close(ec);
  }

  const std::vector<json::object>& messages() const { return state_->messages; }
  bool closed() const { return state_->closed; }

 private:
  struct State {
    explicit State(boost::asio::io_context& io) : socket(io) {}
    stream_protocol::socket socket;
    std::array<char, 4096> buffer{};
    std::string pending;
    std::vector<json::object> messages;
    bool closed = false;
  };

  static void read(const std::shared_ptr<State>& state) {
    state->socket.async_read_some(
        boost::asio::buffer(state->buffer),
        [state](const boost::system::error_code& ec, std::size_t n) {
          if (ec) {
            state->closed = true;
            return;
          }
          state->pending.append(state->buffer.data(), n);
          for (auto newline = state->pending.find('\n'); newline != std::string::npos;
               newline = state->pending.find('\n')) {
            state->messages.push_back(json::parse(state->pending.substr(0, newline)).as_object());
            state->pending.erase(0, newline + 1);
          }
          read(state);
        });
  }

  std::shared_ptr<State> state_;
};

// A peer driven by hand from the test's thread, without the io_context:
// it sends and reads only when told, never blocking.
class RawPeer {
 public:
  explicit RawPeer(const std::string& path)
      : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0)
        << std::strerror(errno);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;
  ~RawPeer() { ::close(fd_); }

  // Sends what the socket takes of `data` now; returns how much. Sets
  // broken() once the server has closed.
  std::size_t send_some(std::string_view data) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) broken_ = true;
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  // Reads what has arrived; returns how many lines it completed.
  std::size_t read_some() {
    std::size_t lines = 0;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n == 0) broken_ = true;
      if (n <= 0) return lines;
      lines += static_cast<std::size_t>(std::count(buffer, buffer + n, '\n'));
    }
  }
  // Waits at most `limit` for the server to send something.
  void wait_readable(std::chrono::milliseconds limit) {
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(limit.count()));
  }
  bool broken() const { return broken_; }

 private:
  int fd_;
  bool broken_ = false;
};

// `n` echo requests of about `size` bytes each, in one string.
std::string pipelined_echoes(int n, std::size_t size) {
  std::string all;
  for (int i = 1; i <= n; ++i) {
    all += protocol::encode(protocol::make_request(i, "echo", {{"pad", std::string(size, 'x')}}));
  }
  return all;
}

class ControlServerTest : public ::testing::Test {
 protected:
  void serve(std::chrono::milliseconds idle_limit = ControlServer::kIdleLimit,
             std::size_t max_clients = 64) {
    auto fd = bind_control_socket(path_);
    ASSERT_TRUE(fd.ok()) << fd.error().message;
    auto server =
        ControlServer::create(io_.get_executor(), *fd, handler_, log_, max_clients, idle_limit);
    ASSERT_TRUE(server.ok()) << server.error().message;
    server_ = std::move(*server);
  }

  bool wait_for_messages(const Client& client, std::size_t n) {
    return run_until(io_, [&] { return client.messages().size() >= n; });
  }
  bool wait_for_close(const Client& client) {
    return run_until(io_, [&] { return client.closed(); });
  }
  std::string logged() const { return log_text_.str(); }

  TempDir dir_;
  const std::string path_ = dir_.file("sempre.sock");
  boost::asio::io_context io_;
  std::ostringstream log_text_;
  std::shared_ptr<spdlog::logger> log_ = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_st>(log_text_));
  FakeHandler handler_;
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlServerTest, AnswersARequestById) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(7, "echo", {{"x", 1}}));
  ASSERT_TRUE(wait_for_messages(client, 1));
  const json::object& answer = client.messages()[0];
  EXPECT_EQ(answer.at("id").to_number<int>(), 7);
  EXPECT_TRUE(answer.at("ok").as_bool());
  EXPECT_EQ(answer.at("result").as_object(), (json::object{{"x", 1}}));
}

TEST_F(ControlServerTest, AnswersTwoRequestsPipelinedInOneWrite) {
  serve();
  Client client(io_, path_);
  client.send_raw(protocol::encode(protocol::make_request(1, "echo", {{"n", "one"}})) +
                  protocol::encode(protocol::make_request(2, "echo", {{"n", "two"}})));
  ASSERT_TRUE(wait_for_messages(client, 2));
  EXPECT_EQ(client.messages()[0].at("id").to_number<int>(), 1);
  EXPECT_EQ(client.messages()[0].at("result").at("n").as_string(), "one");
  EXPECT_EQ(client.messages()[1].at("id").to_number<int>(), 2);
  EXPECT_EQ(client.messages()[1].at("result").at("n").as_string(), "two");
}

TEST_F(ControlServerTest, StreamsItemsThenAnswers) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(4, "stream", {{"n", 3}}));
  ASSERT_TRUE(wait_for_messages(client, 4));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client.messages()[i].at("id").to_number<int>(), 4);
    EXPECT_EQ(client.messages()[i].at("item").at("i").to_number<int>(), i);
  }
  EXPECT_EQ(client.messages()[3].at("result").at("count").to_number<int>(), 3);
}

TEST_F(ControlServerTest, DropsAMalformedClientAndKeepsServing) {
  serve();
  Client bad(io_, path_);
  bad.send_raw("{not json\n");
  ASSERT_TRUE(wait_for_close(bad));
  ASSERT_EQ(bad.messages().size(), 1u);
  EXPECT_EQ(bad.messages()[0].at("error").at("code").as_string(), "bad_request");
  EXPECT_NE(logged().find("malformed"), std::string::npos) << logged();

  Client good(io_, path_);
  good.send(protocol::make_request(1, "echo"));
  ASSERT_TRUE(wait_for_messages(good, 1));
  EXPECT_TRUE(good.messages()[0].at("ok").as_bool());
  EXPECT_EQ(handler_.calls, 1);
}

TEST_F(ControlServerTest, DropsAClientSendingAnOversizedFrame) {
  serve();
  Client client(io_, path_);
  client.send_raw(std::string(protocol::kMaxMessage + 1, 'x'));
  ASSERT_TRUE(wait_for_close(client));
  EXPECT_NE(logged().find("malformed"), std::string::npos) << logged();
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ControlServerTest, AnswersAnotherProtocolVersionNamingBoth) {
  serve();
  Client client(io_, path_);
  client.send(
      {{"v", protocol::kVersion + 1}, {"id", 3}, {"cmd", "echo"}, {"args", json::object{}}});
  ASSERT_TRUE(wait_for_messages(client, 1));
  const json::object& answer = client.messages()[0];
  EXPECT_EQ(answer.at("id").to_number<int>(), 3);
  EXPECT_FALSE(answer.at("ok").as_bool());
  EXPECT_EQ(answer.at("error").at("code").as_string(), "version");
  const std::string message(answer.at("error").at("message").as_string());
  EXPECT_NE(message.find(std::to_string(protocol::kVersion + 1)), std::string::npos) << message;
  EXPECT_NE(message.find(std::to_string(protocol::kVersion)), std::string::npos) << message;
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ControlServerTest, AnswersABadRequestAndKeepsTheClient) {
  serve();
  Client client(io_, path_);
  client.send({{"v", protocol::kVersion}, {"id", 5}});
  client.send(protocol::make_request(6, "echo"));
  ASSERT_TRUE(wait_for_messages(client, 2));
  EXPECT_EQ(client.messages()[0].at("id").to_number<int>(), 5);
  EXPECT_EQ(client.messages()[0].at("error").at("code").as_string(), "bad_request");
  EXPECT_TRUE(client.messages()[1].at("ok").as_bool());
}

TEST_F(ControlServerTest, TurnsAHandlerExceptionIntoAnInternalError) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(9, "throw"));
  client.send(protocol::make_request(10, "echo"));
  ASSERT_TRUE(wait_for_messages(client, 2));
  EXPECT_EQ(client.messages()[0].at("id").to_number<int>(), 9);
  EXPECT_EQ(client.messages()[0].at("error").at("code").as_string(), "internal");
  EXPECT_TRUE(client.messages()[1].at("ok").as_bool());
  EXPECT_NE(logged().find("boom"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, RefusesPeerOfAnotherUser) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  serve();
  // Only the uid check may stop nobody: let it reach the socket.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(path_.c_str(), 0666), 0);

  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only async-signal-safe calls from here: the parent may hold locks.
    ::close(out[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path_.copy(address.sun_path, sizeof address.sun_path - 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      ::_exit(11);
    }
    const char request[] = "{\"v\":1,\"id\":1,\"cmd\":\"echo\",\"args\":{}}\n";
    // The refusal may close the connection first: no SIGPIPE for that.
    (void)!::send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
    char buffer[1024];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) (void)!::write(out[1], buffer, n);
    ::_exit(0);
  }
  ::close(out[1]);

  boost::asio::posix::stream_descriptor reader(io_, out[0]);
  std::string answer;
  std::array<char, 1024> buffer{};
  bool done = false;
  std::function<void(const boost::system::error_code&, std::size_t)> on_read =
      [&](const boost::system::error_code& ec, std::size_t n) {
        answer.append(buffer.data(), n);
        if (ec) {
          done = true;
          return;
        }
        reader.async_read_some(boost::asio::buffer(buffer), on_read);
      };
  reader.async_read_some(boost::asio::buffer(buffer), on_read);
  ASSERT_TRUE(run_until(io_, [&] { return done; }));

  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_FALSE(answer.empty());
  const json::object reply = json::parse(answer).as_object();
  EXPECT_FALSE(reply.at("ok").as_bool());
  EXPECT_NE(
      std::string(reply.at("error").at("message").as_string()).find("permission denied: uid 65534"),
      std::string::npos)
      << answer;
  EXPECT_EQ(handler_.calls, 0);
  EXPECT_NE(logged().find("refused client"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, RunsOnCloseWhenTheClientDisconnects) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(1, "subscribe"));
  ASSERT_TRUE(wait_for_messages(client, 1));
  EXPECT_EQ(handler_.closed, 0);
  client.close();
  ASSERT_TRUE(run_until(io_, [&] { return handler_.closed == 1; }));
  EXPECT_FALSE(handler_.subscribers[0]->is_open());

  // Registering on a closed session runs the handler at once.
  bool ran = false;
  handler_.subscribers[0]->on_close([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST_F(ControlServerTest, KnowsThePeer) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(1, "subscribe"));
  ASSERT_TRUE(wait_for_messages(client, 1));
  EXPECT_EQ(handler_.subscribers[0]->peer_uid(), ::geteuid());
  EXPECT_EQ(handler_.subscribers[0]->peer_pid(), ::getpid());
}

TEST_F(ControlServerTest, DropsASilentClientAfterTheIdleLimit) {
  serve(200ms);
  Client client(io_, path_);
  ASSERT_TRUE(wait_for_close(client));
  EXPECT_NE(logged().find("no request within 200 ms"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, DropsAClientThatNeverFinishesItsRequest) {
  serve(200ms);
  Client client(io_, path_);
  // Bytes that never make a whole request do not keep a client alive.
  client.send_raw("{\"v\":1,");
  ASSERT_TRUE(wait_for_close(client));
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ControlServerTest, KeepsAStreamingClientPastTheIdleLimit) {
  serve(200ms);
  Client streaming(io_, path_);
  streaming.send(protocol::make_request(1, "subscribe"));
  ASSERT_TRUE(wait_for_messages(streaming, 1));
  // Connected later, so it is dropped after the streaming client would have
  // been, had it been idle.
  Client silent(io_, path_);
  ASSERT_TRUE(wait_for_close(silent));
  EXPECT_FALSE(streaming.closed());
  EXPECT_EQ(handler_.closed, 0);
}

TEST_F(ControlServerTest, DropsAClientThatDoesNotRead) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(1, "flood"));
  ASSERT_TRUE(run_until(io_, [&] { return handler_.closed == 1; }));
  EXPECT_NE(logged().find("does not read"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, StopsReadingAPipeliningClientThatDoesNotReadAndServesTheOthers) {
  serve();
  // Answers to all of these would be far more than the daemon lets queue
  // before it drops a client: it must stop reading instead.
  constexpr int kRequests = 4000;
  const std::string requests = pipelined_echoes(kRequests, 1000);
  RawPeer flood(path_);
  std::string_view unsent = requests;
  // Send until neither side can move: the client's socket is full and the
  // server waits for it to read.
  for (int idle_passes = 0, i = 0; idle_passes < 3 && i < 100000; ++i) {
    const std::size_t sent = flood.send_some(unsent);
    unsent.remove_prefix(sent);
    io_.restart();
    const std::size_t ran = io_.poll();
    idle_passes = sent == 0 && ran == 0 ? idle_passes + 1 : 0;
  }
  EXPECT_FALSE(flood.broken()) << logged();
  EXPECT_FALSE(unsent.empty()) << "the server read every request";
  EXPECT_LT(handler_.calls, kRequests);
  EXPECT_EQ(logged().find("dropping"), std::string::npos) << logged();

  Client other(io_, path_);
  other.send(protocol::make_request(1, "echo", {{"who", "other"}}));
  ASSERT_TRUE(wait_for_messages(other, 1));
  EXPECT_TRUE(other.messages()[0].at("ok").as_bool());

  // Once it reads, it is served to its last request.
  std::size_t answers = 0;
  for (int idle_passes = 0; answers < kRequests && idle_passes < 50;) {
    const std::size_t got = flood.read_some();
    answers += got;
    const std::size_t sent = flood.send_some(unsent);
    unsent.remove_prefix(sent);
    io_.restart();
    const std::size_t ran = io_.poll();
    if (got == 0 && sent == 0 && ran == 0) {
      ++idle_passes;
      flood.wait_readable(100ms);
    } else {
      idle_passes = 0;
    }
  }
  EXPECT_EQ(answers, static_cast<std::size_t>(kRequests));
  EXPECT_FALSE(flood.broken()) << logged();
}

TEST_F(ControlServerTest, DropsAPipeliningClientThatReadsNothingForTheIdleLimit) {
  serve(200ms);
  const std::string requests = pipelined_echoes(2000, 1000);
  std::string_view unsent = requests;
  RawPeer flood(path_);
  ASSERT_TRUE(run_until(io_, [&] {
    unsent.remove_prefix(flood.send_some(unsent));  // whatever it takes, it never reads
    return logged().find("took none of its answers within 200 ms") != std::string::npos;
  })) << logged();
}

TEST_F(ControlServerTest, ServesAnotherClientBetweenThePipelinedRequestsOfOne) {
  serve();
  Client busy(io_, path_);
  Client other(io_, path_);
  std::string requests;
  for (int i = 1; i <= 200; ++i) {
    requests += protocol::encode(protocol::make_request(i, "echo", {{"who", "busy"}}));
  }
  busy.send_raw(requests);
  other.send(protocol::make_request(1, "echo", {{"who", "other"}}));
  ASSERT_TRUE(wait_for_messages(other, 1));
  ASSERT_TRUE(wait_for_messages(busy, 200));
  const auto at = std::find(handler_.who.begin(), handler_.who.end(), "other");
  ASSERT_NE(at, handler_.who.end());
  EXPECT_LT(at - handler_.who.begin(), 100) << "one client's pipelined requests went first";
}

TEST_F(ControlServerTest, RefusesAClientOverTheCapUntilOneLeaves) {
  serve(ControlServer::kIdleLimit, 2);
  auto first = std::make_unique<Client>(io_, path_);
  Client second(io_, path_);
  first->send(protocol::make_request(1, "subscribe"));
  second.send(protocol::make_request(1, "subscribe"));
  ASSERT_TRUE(wait_for_messages(*first, 1));
  ASSERT_TRUE(wait_for_messages(second, 1));

  for (int i = 0; i < 2; ++i) {
    Client over(io_, path_);
    over.send(protocol::make_request(1, "echo"));
    ASSERT_TRUE(wait_for_close(over));
    ASSERT_EQ(over.messages().size(), 1u);
    const json::object& error = over.messages()[0].at("error").as_object();
    EXPECT_EQ(error.at("code").as_string(), "busy");
    EXPECT_EQ(error.at("message").as_string(), "sempred has too many clients (2); try again");
  }
  EXPECT_EQ(handler_.calls, 2) << "a refused client is not read";
  const std::string log = logged();
  const auto refusing = log.find("refusing new clients");
  ASSERT_NE(refusing, std::string::npos) << log;
  EXPECT_EQ(log.find("refusing new clients", refusing + 1), std::string::npos)
      << "a crowd is logged once: " << log;

  first->close();
  ASSERT_TRUE(run_until(io_, [&] { return handler_.closed == 1; }));
  Client late(io_, path_);
  late.send(protocol::make_request(2, "echo"));
  ASSERT_TRUE(wait_for_messages(late, 1));
  EXPECT_TRUE(late.messages()[0].at("ok").as_bool());
  EXPECT_NE(logged().find("accepting clients again (2 refused"), std::string::npos) << logged();
}

// Clients that hang up before the server reads their end of file (a storm of
// them, accepted in one turn) give their places back as soon as the cap is
// reached, rather than keep the next client out.
TEST_F(ControlServerTest, APlaceHeldByAClientThatHungUpIsGivenBackAtTheCap) {
  serve(ControlServer::kIdleLimit, 2);
  {
    RawPeer gone(path_);
    RawPeer also_gone(path_);
  }
  Client third(io_, path_);
  third.send(protocol::make_request(1, "echo"));
  ASSERT_TRUE(wait_for_messages(third, 1));
  EXPECT_TRUE(third.messages()[0].at("ok").as_bool()) << json::serialize(third.messages()[0]);
  EXPECT_EQ(logged().find("refusing new clients"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, KeepsAcceptingAfterRunningOutOfDescriptorsWithoutSpinning) {
#if defined(__SANITIZE_ADDRESS__)
  // With no descriptor left, the sanitizers' own runtime fails its checks.
  GTEST_SKIP() << "not under the sanitizers: their runtime needs descriptors of its own";
#endif
  serve();
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  Client client(io_, path_);  // waits in the backlog
  // No new descriptor from here: every accept fails with EMFILE.
  rlimit none = limit;
  none.rlim_cur = 0;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &none), 0);
  const bool failed =
      run_until(io_, [&] { return logged().find("cannot accept a client") != std::string::npos; });
  // While out of descriptors, the loop waits for its retry timer rather than
  // waking again and again on the readable listener.
  io_.restart();
  int ran = 0;
  for (int i = 0; i < 1000; ++i) ran += static_cast<int>(io_.poll_one());
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  ASSERT_TRUE(failed) << logged();
  EXPECT_LE(ran, 2) << "the accept loop spins";

  client.send(protocol::make_request(1, "echo"));
  ASSERT_TRUE(wait_for_messages(client, 1));
  EXPECT_TRUE(client.messages()[0].at("ok").as_bool());
  EXPECT_NE(logged().find("accepting clients again"), std::string::npos) << logged();
}

TEST_F(ControlServerTest, CloseDeliversTheLastAnswerFirst) {
  serve();
  bool done = false;
  handler_.on_bye = [&] { server_->close([&] { done = true; }); };
  Client client(io_, path_);
  client.send(protocol::make_request(1, "bye"));
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  ASSERT_TRUE(wait_for_close(client));
  ASSERT_EQ(client.messages().size(), 1u);
  EXPECT_EQ(client.messages()[0].at("result").at("stopped").to_number<int>(), 0);
}

TEST_F(ControlServerTest, CloseEndsStreamsAndStopsAccepting) {
  serve();
  Client client(io_, path_);
  client.send(protocol::make_request(1, "subscribe"));
  ASSERT_TRUE(wait_for_messages(client, 1));
  bool done = false;
  server_->close([&] { done = true; });
  ASSERT_TRUE(run_until(io_, [&] { return done && client.closed(); }));
  EXPECT_EQ(handler_.closed, 1);

  stream_protocol::socket late(io_);
  boost::system::error_code ec;
  late.connect(stream_protocol::endpoint(path_), ec);
  EXPECT_TRUE(ec) << "the listener is closed";
}

}  // namespace
}  // namespace sempre
