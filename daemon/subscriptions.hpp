// Subscriptions: the clients following a stream of items (`logs -f`, or
// `events`), each on the request that asked for it. A follower is added for
// some apps or for every app, and is removed when its session closes; an
// item published for an app goes, as an item of that request, to every
// follower of that app. Used on the daemon's io thread; a session closing
// while an item is being published (a client dropped for not reading) is
// safe.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "control_server.hpp"
#include "sempre/monitor.hpp"

namespace sempre {

class Subscriptions {
 public:
  // Which items a follower gets.
  struct Filter {
    std::vector<std::uint64_t> app_ids;  // empty: every app, those added later too
    bool out = true;                     // items of an output stream: which ones
    bool err = true;
  };

  Subscriptions() = default;
  Subscriptions(const Subscriptions&) = delete;
  Subscriptions& operator=(const Subscriptions&) = delete;
  // Forgets every follower; their sessions stay open.
  ~Subscriptions() = default;

  // `session` follows the items that pass `filter`, each sent as an item of
  // request `request_id`, until it closes (at once if it is closed already).
  void add(const std::shared_ptr<Session>& session, std::uint64_t request_id, Filter filter);

  // Sends `item` to every follower of app `app_id`; `stream`, when given,
  // further limits it to the followers of that output stream.
  void publish(std::uint64_t app_id, const boost::json::object& item,
               std::optional<OutputStream> stream = std::nullopt);

  // How many sessions follow; none means publishing is free.
  std::size_t size() const { return list_->followers.size(); }
  bool empty() const { return size() == 0; }

 private:
  struct Follower {
    std::uint64_t key = 0;
    std::weak_ptr<Session> session;
    std::uint64_t request_id = 0;
    Filter filter;
    bool closed = false;  // its session closed during a publish: erased after it
  };
  // Shared with the sessions' close handlers, which outlive this object.
  struct List {
    std::vector<Follower> followers;
    int publishing = 0;
    void erase(std::uint64_t key);
  };

  std::shared_ptr<List> list_ = std::make_shared<List>();
  std::uint64_t last_key_ = 0;
};

}  // namespace sempre
