#include "sempre/units.hpp"

#include <array>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <limits>

// Choices the header leaves open:
// - Unit suffixes are case-insensitive ("5S", "10mb"); surrounding blanks are
//   trimmed, blanks inside ("5 s") are not accepted.
// - A number may carry decimals ("1.5s", "0.5M") as long as the result is a
//   whole number of milliseconds or bytes: "1.2345s" and "1.1K" are refused
//   rather than silently rounded, so a value never means less than was typed.
// - A duration combines units from the largest to the smallest, each at most
//   once ("1h30m", "2s500ms"); "30m1h" is refused as a likely typo.
// - Sizes are binary whatever the spelling: "K", "KB" and "KiB" all mean 1024.

namespace sempre {
namespace {

// Wide enough that a 64-bit whole part times any unit, plus a scaled
// fraction, cannot overflow before the range check.
__extension__ using Wide = unsigned __int128;

// 10^19 is the largest power of ten below 2^64. A fraction with more
// significant digits than this is not a whole number of milliseconds or bytes
// in any unit a person would type it in.
constexpr std::size_t kMaxFractionDigits = 19;

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return to_lower(c) >= 'a' && to_lower(c) <= 'z'; }
bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

Wide pow10(std::size_t n) {
  Wide p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// "12" or "12.50": digits, then optionally '.' and at least one digit.
struct Decimal {
  Wide whole = 0;
  Wide fraction = 0;  // the digits after the point, trailing zeros dropped
  std::size_t fraction_digits = 0;
  bool too_large = false;  // the whole part does not fit in 64 bits
  bool too_fine = false;   // more fraction digits than any unit can make whole
};

// Reads a decimal at the front of `text`. Returns how many characters it
// took, or 0 when `text` does not start with one.
std::size_t read_decimal(std::string_view text, Decimal& out) {
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) {
    // Past 2^64 the value is out of range for every caller; stop growing.
    if (!out.too_large) {
      out.whole = out.whole * 10 + static_cast<unsigned>(text[i] - '0');
      out.too_large = out.whole > std::numeric_limits<std::uint64_t>::max();
    }
    ++i;
  }
  if (i == 0) return 0;
  if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
    ++i;
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    std::string_view digits = text.substr(start, i - start);
    while (!digits.empty() && digits.back() == '0') digits.remove_suffix(1);
    if (digits.size() > kMaxFractionDigits) {
      out.too_fine = true;
    } else {
      for (char c : digits) out.fraction = out.fraction * 10 + static_cast<unsigned>(c - '0');
      out.fraction_digits = digits.size();
    }
  }
  return i;
}

enum class Scale { kExact, kNotWhole, kTooLarge };

// value = number * unit, exactly, or why not.
Scale scale(const Decimal& number, std::uint64_t unit, Wide& value) {
  if (number.too_large) return Scale::kTooLarge;
  if (number.too_fine) return Scale::kNotWhole;
  const Wide fraction = number.fraction * unit;
  const Wide divisor = pow10(number.fraction_digits);
  if (fraction % divisor != 0) return Scale::kNotWhole;
  value = number.whole * unit + fraction / divisor;
  return Scale::kExact;
}

Error invalid(std::string_view what, std::string_view text, std::string_view why) {
  std::string message = "invalid ";
  message += what;
  message += " \"";
  message += text;
  message += "\": ";
  message += why;
  return Error{ErrorKind::kInvalidArgument, std::move(message), 0};
}

constexpr std::string_view kDurationExpected =
    "expected a number with a unit ms, s, m or h (e.g. 250ms, 5s, 1h30m)";
constexpr std::string_view kSizeExpected =
    "expected a number of bytes with an optional unit K, M, G or T (binary, e.g. 512, 64K, 10M)";

struct DurationUnit {
  std::string_view name;
  std::uint64_t ms;
};
// Largest first: a duration must name them in this order.
constexpr std::array<DurationUnit, 4> kDurationUnits{{
    {"h", 3'600'000},
    {"m", 60'000},
    {"s", 1'000},
    {"ms", 1},
}};

struct SizeUnit {
  std::string_view name;
  std::uint64_t bytes;
};
constexpr std::array<SizeUnit, 13> kSizeUnits{{
    {"b", 1},
    {"k", 1ULL << 10},
    {"kb", 1ULL << 10},
    {"kib", 1ULL << 10},
    {"m", 1ULL << 20},
    {"mb", 1ULL << 20},
    {"mib", 1ULL << 20},
    {"g", 1ULL << 30},
    {"gb", 1ULL << 30},
    {"gib", 1ULL << 30},
    {"t", 1ULL << 40},
    {"tb", 1ULL << 40},
    {"tib", 1ULL << 40},
}};

struct SignalEntry {
  std::string_view name;
  int number;
};
// The first entry for a number is the name signal_name prints; the aliases
// follow their canonical names so they are only ever parsed.
constexpr SignalEntry kSignals[] = {
    {"HUP", SIGHUP},
    {"INT", SIGINT},
    {"QUIT", SIGQUIT},
    {"ILL", SIGILL},
    {"TRAP", SIGTRAP},
    {"ABRT", SIGABRT},
    {"BUS", SIGBUS},
    {"FPE", SIGFPE},
    {"KILL", SIGKILL},
    {"USR1", SIGUSR1},
    {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},
    {"ALRM", SIGALRM},
    {"TERM", SIGTERM},
#ifdef SIGSTKFLT
    {"STKFLT", SIGSTKFLT},
#endif
    {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},
    {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},
    {"URG", SIGURG},
    {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM},
    {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},
    {"IO", SIGIO},
#ifdef SIGPWR
    {"PWR", SIGPWR},
#endif
    {"SYS", SIGSYS},
    // Aliases.
    {"IOT", SIGIOT},
#ifdef SIGPOLL
    {"POLL", SIGPOLL},
#endif
#ifdef SIGCLD
    {"CLD", SIGCLD},
#endif
};

// "12" → 12; anything else (sign, blank, empty, overflow) → -1.
int read_small_number(std::string_view text) {
  if (text.empty()) return -1;
  for (char c : text) {
    if (!is_digit(c)) return -1;
  }
  int n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc{} || end != text.data() + text.size()) return -1;
  return n;
}

// "RTMIN", "RTMIN+3", "RTMAX", "RTMAX-2" (upper case), or -1.
int read_realtime_signal(std::string_view name) {
  const bool from_min = name.starts_with("RTMIN");
  if (!from_min && !name.starts_with("RTMAX")) return -1;
  std::string_view rest = name.substr(5);
  int offset = 0;
  if (!rest.empty()) {
    if (rest.front() != (from_min ? '+' : '-')) return -1;
    offset = read_small_number(rest.substr(1));
    if (offset < 0) return -1;
  }
  const int sig = from_min ? SIGRTMIN + offset : SIGRTMAX - offset;
  return (sig >= SIGRTMIN && sig <= SIGRTMAX) ? sig : -1;
}

}  // namespace

Result<Millis> parse_duration(std::string_view text) {
  constexpr std::string_view kWhat = "duration";
  const std::string_view s = trim(text);
  if (!s.empty() && s.front() == '-') return invalid(kWhat, text, "must not be negative");

  constexpr Wide kMax = static_cast<Wide>(std::numeric_limits<Millis::rep>::max());
  Wide total = 0;
  std::size_t pos = 0;
  std::size_t next_unit = 0;  // index into kDurationUnits: units only get smaller
  while (true) {
    Decimal number;
    const std::size_t used = read_decimal(s.substr(pos), number);
    if (used == 0) return invalid(kWhat, text, kDurationExpected);
    pos += used;

    std::size_t unit_end = pos;
    while (unit_end < s.size() && is_alpha(s[unit_end])) ++unit_end;
    const std::string unit = lowercase(s.substr(pos, unit_end - pos));
    pos = unit_end;

    std::uint64_t unit_ms = 1;
    if (unit.empty()) {
      // A bare number is milliseconds, but only on its own: "1h30" is a typo.
      if (pos != s.size() || total != 0 || next_unit != 0) {
        return invalid(kWhat, text, kDurationExpected);
      }
    } else {
      std::size_t found = kDurationUnits.size();
      for (std::size_t i = 0; i < kDurationUnits.size(); ++i) {
        if (kDurationUnits[i].name == unit) found = i;
      }
      if (found == kDurationUnits.size()) return invalid(kWhat, text, kDurationExpected);
      if (found < next_unit) {
        return invalid(kWhat, text,
                       "units must go from largest to smallest, each once (e.g. 1h30m)");
      }
      next_unit = found + 1;
      unit_ms = kDurationUnits[found].ms;
    }

    Wide part = 0;
    switch (scale(number, unit_ms, part)) {
      case Scale::kExact:
        break;
      case Scale::kNotWhole:
        return invalid(kWhat, text, "finer than a millisecond");
      case Scale::kTooLarge:
        return invalid(kWhat, text, "too large");
    }
    total += part;
    if (total > kMax) return invalid(kWhat, text, "too large");
    if (pos == s.size()) break;
  }
  return Millis{static_cast<Millis::rep>(total)};
}

Result<std::uint64_t> parse_size(std::string_view text) {
  constexpr std::string_view kWhat = "size";
  const std::string_view s = trim(text);
  if (!s.empty() && s.front() == '-') return invalid(kWhat, text, "must not be negative");

  Decimal number;
  const std::size_t used = read_decimal(s, number);
  if (used == 0) return invalid(kWhat, text, kSizeExpected);
  const std::string unit = lowercase(s.substr(used));

  std::uint64_t unit_bytes = 0;
  if (unit.empty()) {
    unit_bytes = 1;
  } else {
    for (const SizeUnit& u : kSizeUnits) {
      if (u.name == unit) unit_bytes = u.bytes;
    }
    if (unit_bytes == 0) return invalid(kWhat, text, kSizeExpected);
  }

  Wide bytes = 0;
  switch (scale(number, unit_bytes, bytes)) {
    case Scale::kExact:
      break;
    case Scale::kNotWhole:
      return invalid(kWhat, text, "not a whole number of bytes");
    case Scale::kTooLarge:
      return invalid(kWhat, text, "too large");
  }
  if (bytes > std::numeric_limits<std::uint64_t>::max()) return invalid(kWhat, text, "too large");
  return static_cast<std::uint64_t>(bytes);
}

Result<int> parse_signal(std::string_view text) {
  std::string name(trim(text));
  for (char& c : name) c = to_upper(c);
  std::string_view bare = name;
  if (bare.starts_with("SIG")) bare.remove_prefix(3);

  const int number = read_small_number(bare);
  if (number >= 1 && number <= SIGRTMAX) return number;
  if (number < 0 && !bare.empty()) {
    for (const SignalEntry& entry : kSignals) {
      if (entry.name == bare) return entry.number;
    }
    const int realtime = read_realtime_signal(bare);
    if (realtime > 0) return realtime;
  }
  return invalid(
      "signal", text,
      "expected a name like TERM or SIGTERM, or a number from 1 to " + std::to_string(SIGRTMAX));
}

std::string format_duration(Millis d) {
  const Millis::rep count = d.count();
  if (count == 0) return "0s";
  std::string out;
  // Negated in unsigned arithmetic so that the most negative value survives.
  std::uint64_t ms = static_cast<std::uint64_t>(count);
  if (count < 0) {
    out = "-";
    ms = 0 - ms;
  }
  for (const DurationUnit& unit : kDurationUnits) {
    const std::uint64_t n = ms / unit.ms;
    ms %= unit.ms;
    if (n != 0) {
      out += std::to_string(n);
      out += unit.name;
    }
  }
  return out;
}

std::string format_uptime(Millis d) {
  // Truncated rather than rounded: 59.96s is "59.9s", never "60.0s", and each
  // form stays five characters wide in a table.
  const std::uint64_t ms = d.count() > 0 ? static_cast<std::uint64_t>(d.count()) : 0;
  constexpr std::uint64_t kSecond = 1000;
  constexpr std::uint64_t kMinute = 60 * kSecond;
  constexpr std::uint64_t kHour = 60 * kMinute;
  constexpr std::uint64_t kDay = 24 * kHour;
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  char buf[64];
  if (ms < kSecond) {
    std::snprintf(buf, sizeof buf, "%llums", u(ms));
  } else if (ms < kMinute) {
    std::snprintf(buf, sizeof buf, "%llu.%llus", u(ms / kSecond), u(ms % kSecond / 100));
  } else if (ms < kHour) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", u(ms / kMinute), u(ms % kMinute / kSecond));
  } else if (ms < kDay) {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", u(ms / kHour), u(ms % kHour / kMinute));
  } else {
    std::snprintf(buf, sizeof buf, "%llud%02lluh", u(ms / kDay), u(ms % kDay / kHour));
  }
  return buf;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + "B";
  constexpr std::string_view kUnits = "KMGTPE";
  std::size_t unit = 0;
  double value = static_cast<double>(bytes) / 1024.0;
  // Move up while the value would print as 1024.0 or more, so that rounding
  // never shows "1024.0K" for what is "1.0M".
  while (unit + 1 < kUnits.size() && value >= 1023.95) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%c", value, kUnits[unit]);
  return buf;
}

std::string signal_name(int sig) {
  for (const SignalEntry& entry : kSignals) {
    if (entry.number == sig) return std::string(entry.name);
  }
  return "SIG" + std::to_string(sig);
}

}  // namespace sempre
