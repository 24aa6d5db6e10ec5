#include "json_fields.hpp"

namespace sempre {
namespace json = boost::json;

json::array json_strings(const std::vector<std::string>& strings) {
  json::array array;
  array.reserve(strings.size());
  for (const std::string& s : strings) array.emplace_back(s);
  return array;
}

const json::value* FieldReader::find(std::string_view key) const {
  if (error_) return nullptr;
  return object_.if_contains(key);
}

void FieldReader::fail(std::string_view key, std::string_view problem) {
  if (error_) return;
  std::string message = prefix_;
  message += key;
  message += ": ";
  message += problem;
  error_ = Error{kind_, std::move(message), 0};
}

bool FieldReader::required(std::string_view key) {
  if (error_) return false;
  if (object_.contains(key)) return true;
  fail(key, "missing");
  return false;
}

void FieldReader::string(std::string_view key, std::string& out) {
  const json::value* value = find(key);
  if (value == nullptr) return;
  if (!value->is_string()) return fail(key, "expected a string");
  out = std::string(value->get_string());
}

void FieldReader::strings(std::string_view key, std::vector<std::string>& out) {
  const json::value* value = find(key);
  if (value == nullptr) return;
  if (!value->is_array()) return fail(key, "expected an array of strings");
  std::vector<std::string> strings;
  strings.reserve(value->get_array().size());
  for (const json::value& item : value->get_array()) {
    if (!item.is_string()) return fail(key, "expected an array of strings");
    strings.emplace_back(item.get_string());
  }
  out = std::move(strings);
}

void FieldReader::boolean(std::string_view key, bool& out) {
  const json::value* value = find(key);
  if (value == nullptr) return;
  if (!value->is_bool()) return fail(key, "expected true or false");
  out = value->get_bool();
}

const json::object* FieldReader::object(std::string_view key) {
  const json::value* value = find(key);
  if (value == nullptr) return nullptr;
  if (!value->is_object()) {
    fail(key, "expected an object");
    return nullptr;
  }
  return &value->get_object();
}

const json::array* FieldReader::array(std::string_view key) {
  const json::value* value = find(key);
  if (value == nullptr) return nullptr;
  if (!value->is_array()) {
    fail(key, "expected an array");
    return nullptr;
  }
  return &value->get_array();
}

void FieldReader::millis(std::string_view key, Millis& out) {
  Millis::rep count = out.count();
  integer(key, count);
  out = Millis{count};
}

void FieldReader::signal(std::string_view key, int& out) {
  const json::value* value = find(key);
  if (value == nullptr) return;
  std::string text;
  if (value->is_string()) {
    text = std::string(value->get_string());
  } else if (const auto n = json_integer<int>(*value, 1)) {
    text = std::to_string(*n);
  } else {
    return fail(key, "expected a signal name or number");
  }
  auto sig = parse_signal(text);
  if (!sig) return fail(key, sig.error().message);
  out = *sig;
}

Status FieldReader::status() const {
  if (error_) return *error_;
  return {};
}

}  // namespace sempre
