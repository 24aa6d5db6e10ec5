// Reaping for a host that adopts orphans: a child subreaper
// (PR_SET_CHILD_SUBREAPER) or a container's PID 1 must reap every child that
// is not reaped by its own code, but must never reap one the library forked
// (an app's main process, an `exec:` readiness check): the library reaps
// those itself to learn how they ended.
//
// The set of the library's children is kept per process, not per Monitor or
// executor, because children are a per-process resource: waitpid cannot tell
// one executor's children from another's, and a host that had to collect
// the registries of every Monitor (and of code embedding sempre without its
// knowledge) would be back to guessing. The set is guarded by a mutex, so
// every function here may be called from any thread.
#pragma once

#include <sys/types.h>

#include <vector>

#include "sempre/events.hpp"
#include "sempre/export.hpp"

namespace sempre {

struct ReapedChild {
  pid_t pid = 0;
  ExitStatus status;
};

// The children of this process that the library forked and has not reaped
// yet (running or exited), in no particular order.
SEMPRE_EXPORT std::vector<pid_t> library_children();

// Whether `pid` is one of library_children().
SEMPRE_EXPORT bool is_library_child(pid_t pid);

// Reaps every exited child of the calling process that the library did not
// fork, without ever blocking, and returns what it reaped (empty when there
// was nothing to reap, or when /proc could not be read). A library child is
// never reaped here, except one the library gave up on: a process that
// outlived SIGKILL when its ChildProcess was destroyed is handed over to this
// function.
SEMPRE_EXPORT std::vector<ReapedChild> reap_orphans();

}  // namespace sempre
