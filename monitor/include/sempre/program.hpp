// Turning what a user typed into what to exec: PATH lookup, the interpreter
// of a script, and user/group names into ids.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "sempre/export.hpp"
#include "sempre/result.hpp"

namespace sempre {

// Resolves argv[0] the way a shell would, against the PATH found in `env`
// ("K=V" entries; the default PATH "/usr/local/bin:/usr/bin:/bin" when none)
// and relative paths against `cwd` (empty: the caller's cwd). The result's
// argv[0] is an absolute path.
// - a name with a '/' is taken as a path; a bare name is searched in PATH,
//   then taken as a file of `cwd` (`sempre start worker` runs ./worker);
// - a regular file that is not executable but whose extension names an
//   interpreter (.js .mjs .cjs node, .py python3, .sh sh, .rb ruby, .pl perl,
//   .php php) runs with that interpreter, itself found in PATH;
// - a non-empty `interpreter` (may hold arguments, split on spaces) always
//   runs the program: {interpreter..., program, args...}.
// Fails with kNotFound ("PROG: No such file or directory") or kPermission
// ("PROG: Permission denied") as exec would.
SEMPRE_EXPORT Result<std::vector<std::string>> resolve_command(const std::vector<std::string>& argv,
                                                               const std::string& interpreter,
                                                               const std::vector<std::string>& env,
                                                               const std::string& cwd);

// The environment of this process, "K=V" entries in order.
SEMPRE_EXPORT std::vector<std::string> current_environment();

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups of the user
};

// Resolves a user (name or numeric uid) and a group (name or gid; empty: the
// user's primary group). Both empty: no change of identity (nullopt). Fails
// with kNotFound for an unknown name and kPermission when not root and the
// identity differs from the caller's.
SEMPRE_EXPORT Result<std::optional<Credentials>> resolve_credentials(const std::string& user,
                                                                     const std::string& group);

}  // namespace sempre
