#include "sempre/result.hpp"

#include <cerrno>
#include <cstring>

namespace sempre {

Error os_error(int err, const std::string& what) {
  ErrorKind kind = ErrorKind::kIo;
  switch (err) {
    case ENOENT:
    case ESRCH:
      kind = ErrorKind::kNotFound;
      break;
    case EACCES:
    case EPERM:
      kind = ErrorKind::kPermission;
      break;
    case EAGAIN:
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      kind = ErrorKind::kTransient;
      break;
    case EINVAL:
      kind = ErrorKind::kInvalidArgument;
      break;
    default:
      break;
  }
  return Error{kind, what + ": " + std::strerror(err), err};
}

}  // namespace sempre
