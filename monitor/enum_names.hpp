// Names of enumerators, as one table per enum instead of a switch for each
// direction: the table gives the name of a value (name_of) and the value of
// a name (value_of). A table lists every enumerator in declaration order,
// which in_declaration_order() lets a static_assert prove.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace sempre {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

template <class E, std::size_t N>
constexpr bool in_declaration_order(const EnumName<E> (&table)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(table[i].value) != i) return false;
  }
  return true;
}

// The name of `value`, or `fallback` when the table lacks it.
template <class E, std::size_t N>
constexpr const char* name_of(const EnumName<E> (&table)[N], E value, const char* fallback) {
  for (const EnumName<E>& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return fallback;
}

// The value named `name`; nullopt when none is.
template <class E, std::size_t N>
constexpr std::optional<E> value_of(const EnumName<E> (&table)[N], std::string_view name) {
  for (const EnumName<E>& entry : table) {
    if (name == entry.name) return entry.value;
  }
  return std::nullopt;
}

}  // namespace sempre
