// The library's side of sempre/reaper.hpp: every fork of the library goes
// through fork_registered() and every reap of such a child through the
// functions below, so that reap_orphans() (which takes the same lock) never
// sees a library child unregistered, nor reaps one.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>

#include "sempre/events.hpp"

namespace sempre {

// fork() with the registry locked: the child is registered before any
// reap_orphans() can look at it. In the child, `in_child` runs and must not
// return (it execs or calls _exit); like everything between fork and exec it
// may only make async-signal-safe calls. Returns what fork() returns in the
// parent: the pid, or -1 with errno set.
pid_t fork_registered(const std::function<void()>& in_child);

// Reaps the registered child `pid` (through `pidfd` when it is >= 0) if it
// has exited, and unregisters it; nullopt while it still runs. When someone
// else reaped it (ECHILD), it is unregistered and reported as {false, -1}:
// it is gone, but its status is lost. Never blocks.
std::optional<ExitStatus> reap_registered_if_exited(int pidfd, pid_t pid);

// Whether the registered child `pid` is still unreaped: running, or a zombie.
bool registered_unreaped(int pidfd, pid_t pid);

// Waits until the registered child `pid` has exited, then reaps and
// unregisters it. Only for a child known to be about to end (one that
// failed to exec, or was sent SIGKILL).
void reap_registered(pid_t pid);

// Unregisters `pid` without reaping it: the library gives up on it (it did
// not end after SIGKILL), so reap_orphans() reaps it when it does.
void release_registered(pid_t pid);

}  // namespace sempre
