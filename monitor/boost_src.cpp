// The one translation unit that compiles Boost.Asio and Boost.Process v2
// (BOOST_ASIO_SEPARATE_COMPILATION, BOOST_PROCESS_V2_SEPARATE_COMPILATION).
// Asio must come first: Process v2's sources use it.
#include <boost/asio/impl/src.hpp>
#include <boost/process/v2/src.hpp>
