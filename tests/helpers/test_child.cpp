// sempre_test_child MODE [ARGS...]: a small program whose behaviour the tests
// choose, so that they exercise real processes without shell tricks.
//
//   exit CODE                 exit with CODE
//   sleep forever             wait until a signal ends it
//   print LINE...             write each LINE with '\n', exit 0
//   print-nonl TEXT           write TEXT without a newline, exit 0
//   fds                       list the open descriptors, one per line
//   env NAME                  print $NAME ("<unset>" when unset)
//   cwd                       print the working directory
//   ids                       print "uid gid"
//   umask                     print the umask in octal
//   limits                    print "nice N nofile SOFT HARD"
//   session                   print "pid pgid sid"
//   sigstate                  print the SigBlk and SigIgn lines of /proc/self/status
//   ignore-term               ignore SIGTERM, print "ready", wait forever
//   term-exit CODE            on SIGTERM exit with CODE; print "ready" first
//   signals                   print "got NAME" for HUP/USR1/USR2; exit 0 on TERM
//   grandchild PIDFILE        fork a child that ignores SIGTERM and sleeps forever
//                             (its pid written to PIDFILE), print "ready", wait
//   escape PIDFILE stay|exit  double-fork a process that calls setsid and sleeps forever
//                             (its pid written to PIDFILE), print "ready", then wait
//                             forever (stay) or exit 0 (exit), as a daemonizing server does
//   listen-on-usr1 PORT       print "waiting"; on SIGUSR1 listen on 127.0.0.1:PORT, wait
//   notify-on-usr1 [FILE]     print "waiting"; on SIGUSR1 send READY=1 to $NOTIFY_SOCKET
//                             (then make FILE, if given), wait
//   serve PORTFILE            an HTTP server on 127.0.0.1 (a free port, written to
//                             PORTFILE): answers each request "200 ok" and logs a
//                             line for it to stderr, as an access log does
//   mute                      close stdout and stderr, then wait forever
//   bytes N                   write N bytes cycling through all 256 values (NUL and
//                             invalid UTF-8 among them), then wait forever
//   long-line N               write one line of N 'x' and its newline, then wait forever
//   forks N                   fork N children that sleep forever, print "ready", wait
//   burst N                   write N numbered lines at once, then wait forever
//   tick MS                   write numbered lines ("%08d"), one every MS ms, forever;
//                             exit 0 on SIGTERM
//   flood N LEN               write N numbered lines of LEN bytes ("%08d " + 'x'...)
//                             in writes that cut lines at odd places, exit 0
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

namespace {

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::exit(3);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void say(const std::string& line) {
  std::string s = line + "\n";
  write_all(1, s.data(), s.size());
}

[[noreturn]] void wait_forever() {
  for (;;) ::pause();
}

int g_term_code = 0;
void on_term_exit(int) { ::_exit(g_term_code); }

int usage() {
  std::cerr << "usage: sempre_test_child MODE [ARGS...]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string mode = argv[1];

  if (mode == "exit" && argc == 3) return std::atoi(argv[2]);
  if (mode == "sleep" && argc == 3 && std::strcmp(argv[2], "forever") == 0) wait_forever();
  if (mode == "print") {
    for (int i = 2; i < argc; ++i) say(argv[i]);
    return 0;
  }
  if (mode == "print-nonl" && argc == 3) {
    write_all(1, argv[2], std::strlen(argv[2]));
    return 0;
  }
  if (mode == "fds") {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) return 3;
    int own = ::dirfd(dir);
    std::string out;
    while (dirent* e = ::readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      if (std::atoi(e->d_name) == own) continue;
      out += e->d_name;
      out += '\n';
    }
    ::closedir(dir);
    write_all(1, out.data(), out.size());
    return 0;
  }
  if (mode == "env" && argc == 3) {
    const char* v = std::getenv(argv[2]);
    say(v ? v : "<unset>");
    return 0;
  }
  if (mode == "cwd") {
    char buf[4096];
    say(::getcwd(buf, sizeof buf) ? buf : "<error>");
    return 0;
  }
  if (mode == "ids") {
    say(std::to_string(::getuid()) + " " + std::to_string(::getgid()));
    return 0;
  }
  if (mode == "umask") {
    mode_t m = ::umask(0);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(m));
    say(buf);
    return 0;
  }
  if (mode == "limits") {
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, 0);
    if (nice == -1 && errno != 0) return 3;
    struct rlimit nofile {};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0) return 3;
    say("nice " + std::to_string(nice) + " nofile " + std::to_string(nofile.rlim_cur) + " " +
        std::to_string(nofile.rlim_max));
    return 0;
  }
  if (mode == "session") {
    say(std::to_string(::getpid()) + " " + std::to_string(::getpgid(0)) + " " +
        std::to_string(::getsid(0)));
    return 0;
  }
  if (mode == "sigstate") {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("SigBlk:", 0) == 0 || line.rfind("SigIgn:", 0) == 0) say(line);
    }
    return 0;
  }
  if (mode == "ignore-term") {
    ::signal(SIGTERM, SIG_IGN);
    say("ready");
    wait_forever();
  }
  if (mode == "term-exit" && argc == 3) {
    g_term_code = std::atoi(argv[2]);
    ::signal(SIGTERM, on_term_exit);
    say("ready");
    wait_forever();
  }
  if (mode == "signals") {
    // sigwait on blocked signals: none can slip in between two waits.
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM}) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    say("ready");
    for (;;) {
      int sig = 0;
      if (::sigwait(&set, &sig) != 0) return 3;
      if (sig == SIGTERM) return 0;
      say(std::string("got ") + (sig == SIGHUP ? "HUP" : sig == SIGUSR1 ? "USR1" : "USR2"));
    }
  }
  if ((mode == "listen-on-usr1" && argc == 3) ||
      (mode == "notify-on-usr1" && (argc == 2 || argc == 3))) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    say("waiting");
    int sig = 0;
    if (::sigwait(&set, &sig) != 0) return 3;
    if (mode == "listen-on-usr1") {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
          ::listen(fd, 8) != 0) {
        return 3;
      }
      say("listening");
    } else {
      const char* path = std::getenv("NOTIFY_SOCKET");
      if (path == nullptr || *path == '\0') return 3;
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      const size_t n = std::strlen(path);
      if (n >= sizeof addr.sun_path) return 3;
      std::memcpy(addr.sun_path, path, n);
      if (path[0] == '@') addr.sun_path[0] = '\0';  // the abstract namespace
      const int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
      const char message[] = "STATUS=up\nREADY=1";
      if (::sendto(fd, message, sizeof message - 1, 0, reinterpret_cast<sockaddr*>(&addr),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n)) < 0) {
        return 3;
      }
      if (argc == 3) std::ofstream(argv[2]) << "sent\n";
      say("notified");
    }
    wait_forever();
  }
  if (mode == "grandchild" && argc == 3) {
    pid_t pid = ::fork();
    if (pid < 0) return 3;
    if (pid == 0) {
      ::signal(SIGTERM, SIG_IGN);
      wait_forever();
    }
    std::string tmp = std::string(argv[2]) + ".tmp";
    {
      std::ofstream out(tmp);
      out << pid << "\n";
    }
    ::rename(tmp.c_str(), argv[2]);
    say("ready");
    wait_forever();
  }
  if (mode == "escape" && argc == 4) {
    int ready[2];
    if (::pipe(ready) < 0) return 3;
    pid_t first = ::fork();
    if (first < 0) return 3;
    if (first == 0) {
      ::close(ready[0]);
      ::setsid();
      pid_t second = ::fork();
      if (second < 0) ::_exit(3);
      if (second > 0) ::_exit(0);
      std::string tmp = std::string(argv[2]) + ".tmp";
      {
        std::ofstream out(tmp);
        out << ::getpid() << "\n";
      }
      ::rename(tmp.c_str(), argv[2]);
      write_all(ready[1], "x", 1);
      ::close(ready[1]);
      wait_forever();
    }
    ::close(ready[1]);
    char byte;
    while (::read(ready[0], &byte, 1) < 0 && errno == EINTR) {
    }
    ::waitpid(first, nullptr, 0);
    say("ready");
    if (std::strcmp(argv[3], "exit") == 0) return 0;
    wait_forever();
  }
  if (mode == "mute" && argc == 2) {
    ::close(1);
    ::close(2);
    wait_forever();
  }
  if (mode == "bytes" && argc == 3) {
    std::string all(static_cast<size_t>(std::atol(argv[2])), '\0');
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<char>(i % 256);
    write_all(1, all.data(), all.size());
    wait_forever();
  }
  if (mode == "long-line" && argc == 3) {
    std::string line(static_cast<size_t>(std::atol(argv[2])), 'x');
    line += '\n';
    write_all(1, line.data(), line.size());
    wait_forever();
  }
  if (mode == "forks" && argc == 3) {
    for (long i = 0; i < std::atol(argv[2]); ++i) {
      const pid_t pid = ::fork();
      if (pid < 0) return 3;
      if (pid == 0) wait_forever();
    }
    say("ready");
    wait_forever();
  }
  if (mode == "serve" && argc == 3) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 128) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      return 3;
    }
    const std::string tmp = std::string(argv[2]) + ".tmp";
    {
      std::ofstream out(tmp);
      out << ntohs(addr.sin_port) << "\n";
    }
    ::rename(tmp.c_str(), argv[2]);
    const std::string reply = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    for (long served = 0;; ++served) {
      const int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        if (errno == EINTR) continue;
        return 3;
      }
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
        const ssize_t n = ::read(client, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
      }
      (void)!::write(client, reply.data(), reply.size());
      ::close(client);
      const std::string line = "served " + std::to_string(served) + "\n";
      write_all(2, line.data(), line.size());
    }
  }
  if (mode == "burst" && argc == 3) {
    std::string all;
    for (long i = 0; i < std::atol(argv[2]); ++i) {
      char line[32];
      std::snprintf(line, sizeof line, "%08ld\n", i);
      all += line;
    }
    write_all(1, all.data(), all.size());
    wait_forever();
  }
  if (mode == "tick" && argc == 3) {
    const long ms = std::atol(argv[2]);
    ::signal(SIGTERM, [](int) { ::_exit(0); });
    for (long i = 0;; ++i) {
      char line[32];
      const int n = std::snprintf(line, sizeof line, "%08ld\n", i);
      write_all(1, line, static_cast<size_t>(n));
      if (ms > 0) ::usleep(static_cast<useconds_t>(ms * 1000));
    }
  }
  if (mode == "flood" && argc == 4) {
    long n = std::atol(argv[2]);
    long len = std::atol(argv[3]);
    if (len < 10) return usage();
    std::string buf;
    // Odd write sizes, so that lines are cut across writes.
    const size_t chunks[] = {4093, 17, 65537, 1, 8191, 300000};
    size_t next = 0;
    for (long i = 1; i <= n; ++i) {
      char head[32];
      std::snprintf(head, sizeof head, "%08ld ", i);
      buf += head;
      buf.append(static_cast<size_t>(len - 10), 'x');
      buf += '\n';
      size_t want = chunks[next % (sizeof chunks / sizeof chunks[0])];
      if (buf.size() >= want) {
        write_all(1, buf.data(), want);
        buf.erase(0, want);
        ++next;
      }
    }
    write_all(1, buf.data(), buf.size());
    return 0;
  }
  return usage();
}
