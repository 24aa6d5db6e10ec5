#include "sempre/units.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <limits>
#include <string>

namespace sempre {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

Millis duration_of(std::string_view text) {
  auto parsed = parse_duration(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << (parsed.ok() ? "" : parsed.error().message);
  return parsed.ok() ? *parsed : Millis{-1};
}

std::uint64_t size_of(std::string_view text) {
  auto parsed = parse_size(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << (parsed.ok() ? "" : parsed.error().message);
  return parsed.ok() ? *parsed : 0;
}

int signal_of(std::string_view text) {
  auto parsed = parse_signal(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << (parsed.ok() ? "" : parsed.error().message);
  return parsed.ok() ? *parsed : -1;
}

// The error for `text`, which must be refused as an invalid argument.
template <class Parse>
std::string refusal(Parse parse, std::string_view text) {
  auto parsed = parse(text);
  EXPECT_FALSE(parsed.ok()) << text << " was accepted";
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.error().kind, ErrorKind::kInvalidArgument) << text;
  return parsed.error().message;
}

std::string duration_refusal(std::string_view text) { return refusal(parse_duration, text); }
std::string size_refusal(std::string_view text) { return refusal(parse_size, text); }
std::string signal_refusal(std::string_view text) { return refusal(parse_signal, text); }

TEST(ParseDuration, PlainIntegerIsMilliseconds) {
  EXPECT_EQ(duration_of("0"), Millis{0});
  EXPECT_EQ(duration_of("250"), Millis{250});
  EXPECT_EQ(duration_of("007"), Millis{7});
}

TEST(ParseDuration, AcceptsEachUnit) {
  EXPECT_EQ(duration_of("250ms"), Millis{250});
  EXPECT_EQ(duration_of("5s"), seconds{5});
  EXPECT_EQ(duration_of("2m"), minutes{2});
  EXPECT_EQ(duration_of("1h"), hours{1});
  EXPECT_EQ(duration_of("0s"), Millis{0});
}

TEST(ParseDuration, CombinesUnitsFromLargestToSmallest) {
  EXPECT_EQ(duration_of("1h30m"), minutes{90});
  EXPECT_EQ(duration_of("1m30s"), seconds{90});
  EXPECT_EQ(duration_of("2s500ms"), Millis{2500});
  EXPECT_EQ(duration_of("1h2m3s4ms"), hours{1} + minutes{2} + seconds{3} + Millis{4});
}

TEST(ParseDuration, AcceptsDecimalsThatAreWholeMilliseconds) {
  EXPECT_EQ(duration_of("1.5s"), Millis{1500});
  EXPECT_EQ(duration_of("0.25s"), Millis{250});
  EXPECT_EQ(duration_of("1.5h"), minutes{90});
  EXPECT_EQ(duration_of("0.001s"), Millis{1});
  EXPECT_EQ(duration_of("1.500000000000000000000s"), Millis{1500});
  EXPECT_EQ(duration_of("2.0"), Millis{2});
}

TEST(ParseDuration, IgnoresCaseOfUnitsAndSurroundingBlanks) {
  EXPECT_EQ(duration_of("5S"), seconds{5});
  EXPECT_EQ(duration_of("250MS"), Millis{250});
  EXPECT_EQ(duration_of("1H30M"), minutes{90});
  EXPECT_EQ(duration_of(" 5s\n"), seconds{5});
}

TEST(ParseDuration, RefusalNamesTheTextAndWhatWasExpected) {
  EXPECT_EQ(duration_refusal("5x"),
            "invalid duration \"5x\": expected a number with a unit ms, s, m or h "
            "(e.g. 250ms, 5s, 1h30m)");
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* text : {"", " ", "s", "x5s", "5 s", "5ss", "5sec", "1h30", ".5s", "5.s", "5..0s",
                           "1e3", "0x10", "5s!", "+5s", "5d", "1,5s", "5s 3ms"}) {
    EXPECT_NE(duration_refusal(text).find("\"" + std::string(text) + "\""), std::string::npos)
        << text;
  }
}

TEST(ParseDuration, RejectsNegative) {
  EXPECT_EQ(duration_refusal("-5s"), "invalid duration \"-5s\": must not be negative");
  duration_refusal("-0");
}

TEST(ParseDuration, RejectsUnitsOutOfOrderOrRepeated) {
  EXPECT_NE(duration_refusal("30m1h").find("largest to smallest"), std::string::npos);
  EXPECT_NE(duration_refusal("1m1m").find("largest to smallest"), std::string::npos);
  EXPECT_NE(duration_refusal("5ms1s").find("largest to smallest"), std::string::npos);
}

TEST(ParseDuration, RejectsPrecisionFinerThanAMillisecond) {
  EXPECT_EQ(duration_refusal("1.2345s"), "invalid duration \"1.2345s\": finer than a millisecond");
  duration_refusal("0.5ms");
  EXPECT_EQ(duration_refusal("0.000000000000000000001s"),
            "invalid duration \"0.000000000000000000001s\": finer than a millisecond");
  duration_refusal("1.5");
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_EQ(duration_of("9223372036854775807"), Millis{std::numeric_limits<Millis::rep>::max()});
  EXPECT_NE(duration_refusal("9223372036854775808").find("too large"), std::string::npos);
  EXPECT_NE(duration_refusal("99999999999999999999999999h").find("too large"), std::string::npos);
  EXPECT_NE(duration_refusal("2562047788016h").find("too large"), std::string::npos);
  EXPECT_NE(duration_refusal("2562047788015h12m55s808ms").find("too large"), std::string::npos);
  EXPECT_EQ(duration_of("2562047788015h12m55s807ms"),
            Millis{std::numeric_limits<Millis::rep>::max()});
}

TEST(ParseSize, PlainIntegerIsBytes) {
  EXPECT_EQ(size_of("0"), 0u);
  EXPECT_EQ(size_of("512"), 512u);
  EXPECT_EQ(size_of("512B"), 512u);
}

TEST(ParseSize, MultiplesAreBinaryWhateverTheSpelling) {
  EXPECT_EQ(size_of("64K"), 64u * 1024);
  EXPECT_EQ(size_of("10M"), 10u * 1024 * 1024);
  EXPECT_EQ(size_of("1G"), 1024u * 1024 * 1024);
  EXPECT_EQ(size_of("2T"), 2ULL << 40);
  for (const char* text : {"1k", "1K", "1kb", "1KB", "1KiB", "1kib"}) {
    EXPECT_EQ(size_of(text), 1024u) << text;
  }
  for (const char* text : {"1m", "1MB", "1MiB"}) EXPECT_EQ(size_of(text), 1u << 20) << text;
  for (const char* text : {"1g", "1GB", "1GiB"}) EXPECT_EQ(size_of(text), 1u << 30) << text;
}

TEST(ParseSize, AcceptsDecimalsThatAreWholeBytes) {
  EXPECT_EQ(size_of("1.5K"), 1536u);
  EXPECT_EQ(size_of("0.5M"), 512u * 1024);
  EXPECT_EQ(size_of("0.25G"), 256u * 1024 * 1024);
  EXPECT_EQ(size_of(" 10M "), 10u * 1024 * 1024);
}

TEST(ParseSize, RefusalNamesTheTextAndWhatWasExpected) {
  EXPECT_EQ(size_refusal("10X"),
            "invalid size \"10X\": expected a number of bytes with an optional unit K, M, G or T "
            "(binary, e.g. 512, 64K, 10M)");
  EXPECT_EQ(size_refusal("1.1K"), "invalid size \"1.1K\": not a whole number of bytes");
}

TEST(ParseSize, RejectsGarbageNegativeAndOverflow) {
  for (const char* text : {"", "K", "10 M", "10MM", "10Kb2", "1e6", "ten", "+1K", "10Mbit"}) {
    EXPECT_NE(size_refusal(text).find("\"" + std::string(text) + "\""), std::string::npos) << text;
  }
  EXPECT_EQ(size_refusal("-1K"), "invalid size \"-1K\": must not be negative");
  EXPECT_EQ(size_of("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_NE(size_refusal("18446744073709551616").find("too large"), std::string::npos);
  EXPECT_NE(size_refusal("16777216T").find("too large"), std::string::npos);
  EXPECT_EQ(size_of("16777215T"), 16777215ULL << 40);
}

TEST(ParseSignal, AcceptsNamesWithOrWithoutPrefixInAnyCase) {
  EXPECT_EQ(signal_of("TERM"), SIGTERM);
  EXPECT_EQ(signal_of("SIGTERM"), SIGTERM);
  EXPECT_EQ(signal_of("term"), SIGTERM);
  EXPECT_EQ(signal_of("SigHup"), SIGHUP);
  EXPECT_EQ(signal_of("kill"), SIGKILL);
  EXPECT_EQ(signal_of("usr2"), SIGUSR2);
  EXPECT_EQ(signal_of("IOT"), SIGABRT);
  EXPECT_EQ(signal_of("SIGPOLL"), SIGIO);
}

TEST(ParseSignal, KnowsTheStandardLinuxSignals) {
  const std::pair<const char*, int> expected[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
      {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
      {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
      {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
      {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
      {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
      {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
      {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
  };
  for (const auto& [name, number] : expected) {
    EXPECT_EQ(signal_of(name), number) << name;
    EXPECT_EQ(signal_name(number), name);
  }
}

TEST(ParseSignal, AcceptsNumbersFromOneTo64) {
  EXPECT_EQ(signal_of("15"), SIGTERM);
  EXPECT_EQ(signal_of("1"), 1);
  EXPECT_EQ(signal_of("64"), 64);
  EXPECT_EQ(signal_of("SIG42"), 42);
  EXPECT_EQ(signal_of(" 9 "), SIGKILL);
}

TEST(ParseSignal, AcceptsRealtimeNames) {
  EXPECT_EQ(signal_of("RTMIN"), SIGRTMIN);
  EXPECT_EQ(signal_of("SIGRTMIN+2"), SIGRTMIN + 2);
  EXPECT_EQ(signal_of("rtmax"), SIGRTMAX);
  EXPECT_EQ(signal_of("RTMAX-1"), SIGRTMAX - 1);
  signal_refusal("RTMIN-1");
  signal_refusal("RTMAX+1");
  signal_refusal("RTMIN+99");
}

TEST(ParseSignal, RefusalNamesTheTextAndWhatWasExpected) {
  EXPECT_EQ(signal_refusal("FOO"),
            "invalid signal \"FOO\": expected a name like TERM or SIGTERM, or a number from 1 "
            "to 64");
  for (const char* text :
       {"", "SIG", "0", "65", "-15", "+15", "TERM2", "SIG TERM", "99999999999"}) {
    EXPECT_NE(signal_refusal(text).find("\"" + std::string(text) + "\""), std::string::npos)
        << text;
  }
}

TEST(FormatDuration, WritesTheShortestExactSpelling) {
  EXPECT_EQ(format_duration(Millis{0}), "0s");
  EXPECT_EQ(format_duration(Millis{250}), "250ms");
  EXPECT_EQ(format_duration(seconds{5}), "5s");
  EXPECT_EQ(format_duration(minutes{2}), "2m");
  EXPECT_EQ(format_duration(hours{1}), "1h");
  EXPECT_EQ(format_duration(minutes{90}), "1h30m");
  EXPECT_EQ(format_duration(Millis{1500}), "1s500ms");
  EXPECT_EQ(format_duration(hours{48}), "48h");
  EXPECT_EQ(format_duration(Millis{-1500}), "-1s500ms");
}

TEST(FormatDuration, ParsesBackToTheSameValue) {
  using Rep = Millis::rep;
  for (Rep ms : {Rep{0}, Rep{1}, Rep{999}, Rep{1000}, Rep{61001}, Rep{3600000}, Rep{5400000},
                 Rep{86400001}, std::numeric_limits<Rep>::max()}) {
    EXPECT_EQ(duration_of(format_duration(Millis{ms})), Millis{ms}) << ms;
  }
}

TEST(FormatUptime, RoundsDownToTwoUnits) {
  EXPECT_EQ(format_uptime(Millis{0}), "0ms");
  EXPECT_EQ(format_uptime(Millis{250}), "250ms");
  EXPECT_EQ(format_uptime(Millis{1234}), "1.2s");
  EXPECT_EQ(format_uptime(Millis{59999}), "59.9s");
  EXPECT_EQ(format_uptime(seconds{184}), "3m04s");
  EXPECT_EQ(format_uptime(minutes{125} + seconds{59}), "2h05m");
  EXPECT_EQ(format_uptime(hours{76} + minutes{59}), "3d04h");
  EXPECT_EQ(format_uptime(Millis{-5}), "0ms");
}

TEST(FormatSize, WritesBytesThenOneDecimal) {
  EXPECT_EQ(format_size(0), "0B");
  EXPECT_EQ(format_size(512), "512B");
  EXPECT_EQ(format_size(1023), "1023B");
  EXPECT_EQ(format_size(1024), "1.0K");
  EXPECT_EQ(format_size(1536), "1.5K");
  EXPECT_EQ(format_size(10u * 1024 * 1024), "10.0M");
  EXPECT_EQ(format_size(3ULL << 30), "3.0G");
  EXPECT_EQ(format_size((1u << 20) - 1), "1.0M");
  EXPECT_EQ(format_size(std::numeric_limits<std::uint64_t>::max()), "16.0E");
}

TEST(SignalName, NamesWithoutPrefixOrFallsBackToNumber) {
  EXPECT_EQ(signal_name(SIGTERM), "TERM");
  EXPECT_EQ(signal_name(SIGKILL), "KILL");
  EXPECT_EQ(signal_name(SIGABRT), "ABRT");
  EXPECT_EQ(signal_name(SIGCHLD), "CHLD");
  EXPECT_EQ(signal_name(42), "SIG42");
  EXPECT_EQ(signal_of(signal_name(42)), 42);
}

}  // namespace
}  // namespace sempre
