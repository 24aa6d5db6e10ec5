// A tiny HTTP server to try sempre with: sempre run -- sempre_demo_server --port 8080
//
//   --port N         listen on 127.0.0.1:N (default 8080)
//   --crash-after N  exit with code 1 after serving N requests, to show restarts
//
// Prints one line per request on stdout and exits 0 on SIGTERM or SIGINT.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

void say(int fd, std::string line) {
  line += '\n';
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

bool parse_number(std::string_view s, unsigned long& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

[[noreturn]] void usage_error(const std::string& message) {
  say(2, "demo_server: " + message);
  say(2, "usage: demo_server [--port N] [--crash-after N]");
  std::_Exit(2);
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned long port = 8080;
  unsigned long crash_after = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if ((arg != "--port" && arg != "--crash-after") || i + 1 >= argc)
      usage_error("bad argument: " + std::string(arg));
    unsigned long& target = arg == "--port" ? port : crash_after;
    if (!parse_number(argv[++i], target)) usage_error("not a number: " + std::string(argv[i]));
  }
  if (port == 0 || port > 65535) usage_error("port out of range: " + std::to_string(port));

  // Signals stay blocked except inside ppoll, so a SIGTERM can never slip in
  // between checking the flag and going to sleep.
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigset_t blocked, waitmask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGINT);
  sigprocmask(SIG_BLOCK, &blocked, &waitmask);
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGINT);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int one = 1;
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0 || ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listener, 64) < 0) {
    say(2, "demo_server: cannot listen on 127.0.0.1:" + std::to_string(port) + ": " +
               std::strerror(errno));
    return 1;
  }
  const std::string pid = std::to_string(::getpid());
  say(1,
      "demo_server: listening on http://127.0.0.1:" + std::to_string(port) + " (pid " + pid + ")");

  unsigned long served = 0;
  while (!g_stop) {
    pollfd pfd{listener, POLLIN, 0};
    if (::ppoll(&pfd, 1, nullptr, &waitmask) < 0) continue;  // EINTR: the loop checks g_stop
    sockaddr_in peer{};
    socklen_t peer_len = sizeof peer;
    int client = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
    if (client < 0) continue;
    timeval timeout{2, 0};
    ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buf[4096];
    ssize_t got = ::recv(client, buf, sizeof buf, 0);
    std::string_view request(buf, got > 0 ? static_cast<size_t>(got) : 0);
    std::string_view line = request.substr(0, request.find_first_of("\r\n"));
    std::string_view method = line.substr(0, line.find(' '));
    std::string_view rest =
        line.substr(method.size() < line.size() ? method.size() + 1 : line.size());
    std::string_view path = rest.substr(0, rest.find(' '));
    if (method.empty()) {
      ::close(client);
      continue;
    }

    ++served;
    const bool ok = method == "GET";
    std::string body = ok ? "Hello from sempre's demo server: pid " + pid + ", request " +
                                std::to_string(served) + "\n"
                          : "only GET is supported\n";
    std::string response = std::string(ok ? "HTTP/1.1 200 OK" : "HTTP/1.1 405 Method Not Allowed") +
                           "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    send_all(client, response);
    ::close(client);

    char peer_ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &peer.sin_addr, peer_ip, sizeof peer_ip);
    say(1, "demo_server: " + std::string(peer_ip) + " \"" + std::string(method) + " " +
               std::string(path) + "\" " + (ok ? "200" : "405") + " (request " +
               std::to_string(served) + ")");

    if (crash_after > 0 && served >= crash_after) {
      say(2, "demo_server: crashing on purpose after " + std::to_string(served) +
                 " requests (--crash-after)");
      return 1;
    }
  }
  say(1, "demo_server: shutting down");
  ::close(listener);
  return 0;
}
