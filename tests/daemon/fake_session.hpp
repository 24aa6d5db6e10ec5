// A Session that keeps what is sent to it: the client side of a request
// handler's answers, without a socket.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <functional>
#include <vector>

#include "control_server.hpp"

namespace sempre::test {

class FakeSession final : public Session {
 public:
  void send(const boost::json::object& message) override {
    if (!open_) return;
    sent.push_back(message);
    if (on_send) on_send(message);
  }
  bool is_open() const override { return open_; }
  void on_close(std::function<void()> handler) override {
    if (!open_) {
      handler();
      return;
    }
    close_handlers_.push_back(std::move(handler));
  }
  // Closes at once, as a dropped client does, running the close handlers.
  void close() override {
    if (!open_) return;
    open_ = false;
    auto handlers = std::move(close_handlers_);
    close_handlers_.clear();
    for (auto& handler : handlers) handler();
  }
  uid_t peer_uid() const override { return ::getuid(); }
  pid_t peer_pid() const override { return ::getpid(); }

  // The messages that answer a request: {"id","ok":true,"result"} or
  // {"id","ok":false,"error"}, leaving out the items.
  std::vector<boost::json::object> answers() const {
    std::vector<boost::json::object> out;
    for (const auto& m : sent) {
      if (m.contains("ok")) out.push_back(m);
    }
    return out;
  }
  // The items sent (the "item" member of each), in order.
  std::vector<boost::json::object> items() const {
    std::vector<boost::json::object> out;
    for (const auto& m : sent) {
      if (const auto* item = m.if_contains("item"); item != nullptr && item->is_object()) {
        out.push_back(item->as_object());
      }
    }
    return out;
  }

  std::vector<boost::json::object> sent;
  // Runs after each message is kept (a test may close the session here).
  std::function<void(const boost::json::object&)> on_send;

 private:
  bool open_ = true;
  std::vector<std::function<void()>> close_handlers_;
};

}  // namespace sempre::test
