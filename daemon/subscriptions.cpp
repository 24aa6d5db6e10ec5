#include "subscriptions.hpp"

#include <algorithm>

#include "protocol.hpp"

namespace sempre {

void Subscriptions::List::erase(std::uint64_t key) {
  if (publishing > 0) {
    for (Follower& f : followers) {
      if (f.key == key) f.closed = true;
    }
    return;
  }
  std::erase_if(followers, [key](const Follower& f) { return f.key == key; });
}

void Subscriptions::add(const std::shared_ptr<Session>& session, std::uint64_t request_id,
                        Filter filter) {
  const std::uint64_t key = ++last_key_;
  list_->followers.push_back({key, session, request_id, std::move(filter)});
  std::weak_ptr<List> list = list_;
  session->on_close([list, key] {
    if (auto l = list.lock()) l->erase(key);
  });
}

void Subscriptions::publish(std::uint64_t app_id, const boost::json::object& item,
                            std::optional<OutputStream> stream) {
  List& list = *list_;
  ++list.publishing;
  // A session may close inside send() (a client that does not read is
  // dropped): its follower is only marked then, and erased at the end. By
  // index, as one may also be added meanwhile.
  for (std::size_t i = 0; i < list.followers.size(); ++i) {
    const Follower& f = list.followers[i];
    if (f.closed) continue;
    const auto& ids = f.filter.app_ids;
    if (!ids.empty() && std::find(ids.begin(), ids.end(), app_id) == ids.end()) continue;
    if (stream == OutputStream::kStdout && !f.filter.out) continue;
    if (stream == OutputStream::kStderr && !f.filter.err) continue;
    const std::uint64_t request_id = f.request_id;
    if (auto session = f.session.lock()) session->send(protocol::make_item(request_id, item));
  }
  if (--list.publishing == 0) {
    std::erase_if(list.followers, [](const Follower& f) { return f.closed; });
  }
}

}  // namespace sempre
