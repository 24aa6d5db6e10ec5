// Fuzzes the wire protocol from both ends, as bytes arrive from a socket:
// the daemon's path (FrameDecoder, parse_request, parse_command and
// decode_args<C> for the request's command, as daemon/control_server.cpp and
// AppManager::handle() take it) and the client's (parse_response, then the
// reply or item of every command, Event and AppInfo, as cli/client.cpp
// decodes them).
//
// Properties besides "no crash, no leak, no undefined behaviour":
//   - the same bytes fed whole or one at a time give the same messages;
//   - a message re-framed with encode() decodes to itself;
//   - whatever a decoder accepts, encoded and sent on, decodes again to the
//     same JSON (no peer can get a value into a struct that the struct
//     cannot send on).
#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "fuzz/fuzz_util.hpp"
#include "protocol.hpp"

namespace {

namespace json = boost::json;
namespace protocol = sempre::protocol;
using protocol::Command;
using protocol::FrameDecoder;
using sempre::fuzz::require;

struct Frames {
  std::vector<json::object> messages;
  bool malformed = false;
};

// Every message of `bytes`, fed in pieces of `piece` bytes (0: at once).
Frames frames_of(std::string_view bytes, std::size_t piece) {
  Frames frames;
  FrameDecoder decoder;
  std::size_t at = 0;
  do {
    const std::size_t n = piece == 0 ? bytes.size() : std::min(piece, bytes.size() - at);
    decoder.feed(bytes.substr(at, n));
    at += n;
    for (;;) {
      json::object message;
      std::string error;
      const auto status = decoder.next(message, error);
      if (status == FrameDecoder::Status::kNeedMore) break;
      if (status == FrameDecoder::Status::kMalformed) {
        require(!error.empty(), "a malformed frame says why");
        frames.malformed = true;
        return frames;
      }
      frames.messages.push_back(std::move(message));
    }
  } while (at < bytes.size());
  return frames;
}

// Whether `a` and `b` are the same JSON, but for doubles, which need only be
// close: Boost.JSON 1.81 parses a double it printed to within a few ulps of
// it ("7.222222222222222E40" is not quite the double it came from).
bool same_json(const json::value& a, const json::value& b) {
  if (a.is_double() || b.is_double()) {
    if (!a.is_number() || !b.is_number()) return false;
    const double x = a.to_number<double>();
    const double y = b.to_number<double>();
    return x == y || std::abs(x - y) <= 1e-12 * std::max(std::abs(x), std::abs(y));
  }
  if (a.is_object() && b.is_object()) {
    if (a.get_object().size() != b.get_object().size()) return false;
    for (const auto& [key, value] : a.get_object()) {
      const json::value* other = b.get_object().if_contains(key);
      if (other == nullptr || !same_json(value, *other)) return false;
    }
    return true;
  }
  if (a.is_array() && b.is_array()) {
    const json::array& x = a.get_array();
    const json::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!same_json(x[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

// `json` as the peer reads it: serialized and parsed again. (A number built
// in memory from an unsigned type is a uint64 until then, an int64 after.)
json::object on_the_wire(const json::object& json) {
  return json::parse(json::serialize(json)).as_object();
}

// Decodes `json` as a T with `decode`; if that succeeds, the JSON of the
// value must decode again to a value of the same JSON.
template <class Decode>
void round_trip(const json::object& json, Decode decode, std::string_view what) {
  auto decoded = decode(json);
  if (!decoded) {
    require(!decoded.error().message.empty(), "a decoding error says why", what);
    return;
  }
  const json::object once = on_the_wire(protocol::to_json(*decoded));
  auto again = decode(once);
  require(again.ok(), "what was decoded, encoded, decodes", json::serialize(once));
  require(same_json(on_the_wire(protocol::to_json(*again)), once),
          "what was decoded, encoded, decodes the same", json::serialize(once));
}

template <class T>
void round_trip(const json::object& json) {
  round_trip(
      json, [](const json::object& j) { return protocol::from_json<T>(j); }, "");
}

// Calls f.template operator()<C>() for the Command C equal to `command`.
template <class F>
void with_command(Command command, F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((command == protocol::kCommands[I] ? f.template operator()<protocol::kCommands[I]>() : void()),
     ...);
  }
  (std::make_index_sequence<std::size(protocol::kCommands)>());
}

// The daemon's side: a message becomes a request, its command and its args.
void serve(const json::object& message) {
  auto request = protocol::parse_request(message);
  if (!request) return;
  const auto command = protocol::parse_command(request->cmd);
  if (!command) return;
  require(protocol::command_name(*command) == request->cmd, "a command is named by its name");
  with_command(*command, [&]<Command C>() {
    round_trip(
        request->args, [](const json::object& j) { return protocol::decode_args<C>(j); },
        protocol::command_name(C));
  });
}

// The client's side: a message becomes a response, and its body the reply or
// item of whichever command the client sent.
void read_answer(const json::object& message) {
  auto response = protocol::parse_response(message);
  if (!response) return;
  using Kind = protocol::Response::Kind;
  if (response->kind == Kind::kError) {
    require(!response->error.message.empty(), "an error answer has a message");
    return;
  }
  for (Command command : protocol::kCommands) {
    with_command(command, [&]<Command C>() {
      if (response->kind == Kind::kResult) round_trip<protocol::ReplyOf<C>>(response->body);
      if constexpr (!std::is_same_v<protocol::ItemOf<C>, protocol::NoItem>) {
        if (response->kind == Kind::kItem) round_trip<protocol::ItemOf<C>>(response->body);
      }
    });
  }
  round_trip<sempre::Event>(response->body);
  round_trip<protocol::AppInfo>(response->body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Frames whole = frames_of(bytes, 0);
  const Frames bytewise = frames_of(bytes, 1);
  require(whole.malformed == bytewise.malformed && whole.messages == bytewise.messages,
          "the same bytes give the same messages however they are cut");
  for (const json::object& message : whole.messages) {
    const Frames again = frames_of(protocol::encode(message), 0);
    require(!again.malformed && again.messages.size() == 1 && same_json(again.messages[0], message),
            "an encoded message decodes to itself", json::serialize(message));
    serve(message);
    read_answer(message);
  }
  return 0;
}
