#include "sempre/clock.hpp"

#include <boost/asio/steady_timer.hpp>

namespace sempre {
namespace {

class AsioTimer final : public Timer {
 public:
  AsioTimer(boost::asio::any_io_executor executor, Clock::Duration after,
            std::function<void()> fire)
      : timer_(executor, after), alive_(std::make_shared<bool>(true)) {
    // The handler holds only a weak flag: after ~AsioTimer the cancelled
    // wait completes with operation_aborted and must touch nothing.
    std::weak_ptr<bool> alive = alive_;
    timer_.async_wait([alive, fire = std::move(fire)](const boost::system::error_code& ec) {
      if (ec || alive.expired()) return;
      fire();
    });
  }
  ~AsioTimer() override { timer_.cancel(); }

 private:
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
};

class AsioClock final : public Clock {
 public:
  explicit AsioClock(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  std::unique_ptr<Timer> start_timer(Duration after, std::function<void()> fire) override {
    return std::make_unique<AsioTimer>(executor_, after, std::move(fire));
  }

 private:
  boost::asio::any_io_executor executor_;
};

}  // namespace

std::unique_ptr<Clock> make_asio_clock(boost::asio::any_io_executor executor) {
  return std::make_unique<AsioClock>(std::move(executor));
}

}  // namespace sempre
