// FieldReader: reads the fields of one JSON object by their JSON types, for
// the codecs of the control protocol (protocol.hpp) and of state.json
// (daemon/state_store.hpp). Never throws: a field of the wrong type is an
// Error naming it ("spec.cmd: expected an array of strings").
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "sempre/result.hpp"
#include "sempre/units.hpp"

namespace sempre {

// A JSON number without a fraction that fits in [min, max]; nullopt for
// anything else (a double, a string, a number out of range).
template <class Int>
std::optional<Int> json_integer(const boost::json::value& value,
                                Int min = std::numeric_limits<Int>::min(),
                                Int max = std::numeric_limits<Int>::max()) {
  if (value.is_int64()) {
    const std::int64_t n = value.get_int64();
    if (std::cmp_less(n, min) || std::cmp_greater(n, max)) return std::nullopt;
    return static_cast<Int>(n);
  }
  if (value.is_uint64()) {
    const std::uint64_t n = value.get_uint64();
    if (std::cmp_less(n, min) || std::cmp_greater(n, max)) return std::nullopt;
    return static_cast<Int>(n);
  }
  return std::nullopt;
}

// `strings` as a JSON array of strings.
boost::json::array json_strings(const std::vector<std::string>& strings);

// Reads the fields of `object`. A missing field leaves its output alone
// unless it is required(). The first problem is kept and every later read
// does nothing, so that a codec reads every field and checks status() once.
// Not copyable: it refers to `object`, which must outlive it.
class FieldReader {
 public:
  // Errors read "PREFIX KEY: PROBLEM" (the prefix holds its own separator,
  // "spec."), of kind `kind`.
  explicit FieldReader(const boost::json::object& object, std::string prefix = {},
                       ErrorKind kind = ErrorKind::kMalformed)
      : object_(object), prefix_(std::move(prefix)), kind_(kind) {}
  FieldReader(const FieldReader&) = delete;
  FieldReader& operator=(const FieldReader&) = delete;

  // The field, or nullptr when it is missing or a problem was found.
  const boost::json::value* find(std::string_view key) const;
  // Records "KEY: PROBLEM" unless a problem is recorded already.
  void fail(std::string_view key, std::string_view problem);
  // Records "KEY: missing" when the field is missing; returns whether it is there.
  bool required(std::string_view key);

  void string(std::string_view key, std::string& out);
  void strings(std::string_view key, std::vector<std::string>& out);
  void boolean(std::string_view key, bool& out);
  // The object, or nullptr (with a problem recorded when it is of another type).
  const boost::json::object* object(std::string_view key);
  const boost::json::array* array(std::string_view key);

  // An integer in [min, max]: "expected an integer" (or "a non-negative
  // integer") for the full range, else "expected an integer from MIN to MAX".
  template <class Int>
  void integer(std::string_view key, Int& out, Int min = std::numeric_limits<Int>::min(),
               Int max = std::numeric_limits<Int>::max()) {
    const boost::json::value* value = find(key);
    if (value == nullptr) return;
    const std::optional<Int> n = json_integer<Int>(*value, min, max);
    if (n) {
      out = *n;
      return;
    }
    if (min == std::numeric_limits<Int>::min() && max == std::numeric_limits<Int>::max()) {
      return fail(
          key, std::is_signed_v<Int> ? "expected an integer" : "expected a non-negative integer");
    }
    fail(key, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }

  // As integer(); null resets `out`.
  template <class Int>
  void optional_integer(std::string_view key, std::optional<Int>& out,
                        Int min = std::numeric_limits<Int>::min(),
                        Int max = std::numeric_limits<Int>::max()) {
    const boost::json::value* value = find(key);
    if (value == nullptr) return;
    if (value->is_null()) {
      out.reset();
      return;
    }
    Int n{};
    integer(key, n, min, max);
    if (!error_) out = n;
  }

  void millis(std::string_view key, Millis& out);
  // A signal name ("TERM", "SIGTERM") or number.
  void signal(std::string_view key, int& out);

  // Ok, or the first problem found.
  Status status() const;
  bool ok() const { return !error_; }

 private:
  const boost::json::object& object_;
  std::string prefix_;
  ErrorKind kind_;
  std::optional<Error> error_;
};

}  // namespace sempre
