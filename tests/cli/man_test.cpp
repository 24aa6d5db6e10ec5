// The man page documents every command of the command table and every option.
#include <gtest/gtest.h>

#include <cctype>

#include "commands.hpp"
#include "option_schema.hpp"
#include "test_util.hpp"

namespace sempre::cli {
namespace {

// Whether `text` holds `--name` as a whole option (not a prefix of a longer one).
bool mentions(const std::string& text, const std::string& option) {
  for (auto at = text.find(option); at != std::string::npos; at = text.find(option, at + 1)) {
    const char next = at + option.size() < text.size() ? text[at + option.size()] : ' ';
    if (!std::isalnum(static_cast<unsigned char>(next)) && next != '-') return true;
  }
  return false;
}

TEST(ManPage, DocumentsEveryCommandAndOption) {
  const std::string page = test::read_file(SEMPRE_SOURCE_DIR "/man/sempre.1");
  ASSERT_FALSE(page.empty());
  Invocation invocation;
  for (const auto& command : commands()) {
    EXPECT_NE(page.find(".B " + command.name + "\n"), std::string::npos) << command.name;
    CLI::App app;
    command.define(app, invocation);
    for (const CLI::Option* option : app.get_options()) {
      for (const std::string& name : option->get_lnames()) {
        if (name == "help") continue;
        // roff escapes each '-' of an option as "\-".
        std::string roff = "\\-\\-";
        for (char c : name) roff += c == '-' ? std::string("\\-") : std::string(1, c);
        EXPECT_NE(page.find(roff), std::string::npos) << command.name << " --" << name;
      }
    }
  }
}

TEST(ManPage, ReadmeShowsEveryOptionOfRun) {
  const std::string readme = test::read_file(SEMPRE_SOURCE_DIR "/README.md");
  CLI::App app;
  Invocation invocation;
  define_run(app, invocation);
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_lnames()) {
      if (name == "help") continue;
      EXPECT_TRUE(mentions(readme, "--" + name)) << "--" << name;
    }
  }
}

TEST(ManPage, ConfigPageDocumentsEveryKeyOfTheOptionSchema) {
  const std::string page = test::read_file(SEMPRE_SOURCE_DIR "/man/sempre.toml.5");
  ASSERT_FALSE(page.empty());
  for (const OptionRow& row : option_rows()) {
    EXPECT_NE(page.find("\\fB" + std::string(row.key) + "\\fR"), std::string::npos) << row.key;
  }
}

}  // namespace
}  // namespace sempre::cli
