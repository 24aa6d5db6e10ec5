// Errors as values: every fallible call across a module boundary returns a
// Result<T> (a value or an Error) or a Status (Result<void>).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include "sempre/export.hpp"

namespace sempre {

// One kind per meaning: callers decide by kind (the daemon's wire error
// code, the CLI's exit code), people read the message.
enum class ErrorKind {
  kInvalidArgument,  // the caller asked for something invalid (a bad value, a bad spec)
  kNotFound,         // a named thing (program, user, file, app) does not exist
  kExists,           // a named thing (app, lock) exists already
  kPermission,       // the OS refused (EACCES, EPERM)
  kSpawnFailed,      // fork or exec failed for another reason
  kIo,               // a read, write, open or rename failed
  kTransient,        // try again later (EAGAIN, ENOMEM on fork, ENOSPC)
  kMalformed,        // a message or file that does not have the expected shape
  kVersionMismatch,  // the peer speaks another version of a protocol
  kUnavailable,      // a peer (the daemon) cannot be reached or stopped answering
  kInternal,         // anything else: a failure no kind above describes
};

// What went wrong, for a person to read. os_error is the errno behind it, or 0.
struct Error {
  ErrorKind kind = ErrorKind::kIo;
  std::string message;
  int os_error = 0;
};

// An Error built from errno: "<what>: <strerror(err)>", kind derived from err.
SEMPRE_EXPORT Error os_error(int err, const std::string& what);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  // REQUIRES: ok()
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // REQUIRES: !ok()
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  // REQUIRES: !ok()
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace sempre
