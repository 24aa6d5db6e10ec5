#include "commands.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace sempre::cli {
namespace {

TEST(CommandTable, EveryProtocolCommandIsSentBySomeCommand) {
  for (const protocol::Command command : protocol::kCommands) {
    const bool sent = std::any_of(commands().begin(), commands().end(), [&](const Command& row) {
      return std::find(row.requests.begin(), row.requests.end(), command) != row.requests.end();
    });
    EXPECT_TRUE(sent) << protocol::command_name(command) << " is sent by no row of the table";
  }
}

TEST(CommandTable, OnlyRunTalksToNoDaemon) {
  for (const Command& row : commands()) {
    EXPECT_EQ(row.requests.empty(), row.name == "run") << row.name;
  }
}

TEST(ExitCodes, FollowTheKindOfTheError) {
  // man/sempre.1, EXIT STATUS: 1 the request failed, 2 bad usage, 3 no daemon.
  EXPECT_EQ(exit_code_for(ErrorKind::kNotFound), kExitFailed);
  EXPECT_EQ(exit_code_for(ErrorKind::kExists), kExitFailed);
  EXPECT_EQ(exit_code_for(ErrorKind::kSpawnFailed), kExitFailed);
  EXPECT_EQ(exit_code_for(ErrorKind::kInternal), kExitFailed);
  EXPECT_EQ(exit_code_for(ErrorKind::kIo), kExitFailed);
  EXPECT_EQ(exit_code_for(ErrorKind::kInvalidArgument), kExitUsage);
  EXPECT_EQ(exit_code_for(ErrorKind::kMalformed), kExitUsage);
  EXPECT_EQ(exit_code_for(ErrorKind::kUnavailable), kExitNoDaemon);
  EXPECT_EQ(exit_code_for(ErrorKind::kVersionMismatch), kExitNoDaemon);
}

TEST(ExitCodes, OfEveryWireErrorCodeAreTheOnesTheManPageGives) {
  using protocol::ErrorCode;
  const auto exit_of = [](ErrorCode code) { return exit_code_for(protocol::error_kind_for(code)); };
  EXPECT_EQ(exit_of(ErrorCode::kBadRequest), kExitUsage);
  EXPECT_EQ(exit_of(ErrorCode::kInvalid), kExitUsage);
  EXPECT_EQ(exit_of(ErrorCode::kVersion), kExitNoDaemon);
  EXPECT_EQ(exit_of(ErrorCode::kNotFound), kExitFailed);
  EXPECT_EQ(exit_of(ErrorCode::kExists), kExitFailed);
  EXPECT_EQ(exit_of(ErrorCode::kSpawnFailed), kExitFailed);
  EXPECT_EQ(exit_of(ErrorCode::kInternal), kExitFailed);
}

}  // namespace
}  // namespace sempre::cli
