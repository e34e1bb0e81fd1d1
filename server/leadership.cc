#include "server/leadership.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace retrain::server {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

int64_t SteadyNs(steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Leadership::Leadership(std::unique_ptr<LeaderLease> lease, LeadershipOptions options)
    : lease_(std::move(lease)), options_(options) {}

Leadership::~Leadership() { StopRenewing(); }

absl::StatusOr<int64_t> Leadership::WaitToLead(const std::function<bool()>& stop) {
  auto log = Logger("server");
  std::string announced;
  while (!stop()) {
    const auto sent = steady_clock::now();
    auto epoch = lease_->TryAcquire();
    if (!epoch.ok() && !IsRetryableStoreError(epoch.status())) return epoch.status();
    if (!epoch.ok()) {
      log->warn("cannot reach the state database to ask for the lease: {}",
                epoch.status().ToString());
    } else if (*epoch > 0) {
      epoch_ = *epoch;
      renewed_at_ns_ = SteadyNs(sent);
      log->info("leading as {} (epoch {})", lease_->options().holder, epoch_);
      return epoch_;
    }
    auto leader = epoch.ok() ? lease_->Leader() : absl::StatusOr<LeaderInfo>(epoch.status());
    if (leader.ok()) {
      const std::string now = absl::StrCat(leader->holder, " (epoch ", leader->epoch, ")");
      {
        std::lock_guard<std::mutex> lock(mu_);
        leader_ = now;
      }
      if (now != announced) log->info("standing by; the leader is {}", now);
      announced = now;
    }
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, milliseconds(options_.poll_ms));
  }
  return 0;
}

std::string Leadership::StandbyMessage() const {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrCat("this coordinator is standing by; the leader is ",
                      leader_.empty() ? "not known yet" : leader_,
                      ": send requests to the leader (give every coordinator to --server)");
}

void Leadership::KeepRenewing(std::function<void(const std::string&)> lost) {
  lost_ = std::move(lost);
  renewer_ = std::thread([this] { RenewLoop(); });
  watchdog_ = std::thread([this] { WatchLoop(); });
}

bool Leadership::Sleep(milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return wake_.wait_for(lock, d, [&] { return stopping_; });
}

void Leadership::Lose(const std::string& why) {
  if (!lost_called_.exchange(true)) lost_(why);
}

void Leadership::RenewLoop() {
  const milliseconds quarter(options_.lease_ms / 4);
  bool failed = false;
  // After a failure, try again soon: the watchdog decides when to give up.
  while (!Sleep(failed ? milliseconds(100) : quarter)) {
    const auto sent = steady_clock::now();
    const absl::Status s = lease_->Renew(epoch_);
    failed = !s.ok();
    if (s.ok()) {
      renewed_at_ns_ = SteadyNs(sent);
    } else if (s.code() == absl::StatusCode::kFailedPrecondition) {
      Lose(std::string(s.message()));
      return;
    } else {
      Logger("server")->warn("cannot renew the leader lease: {}", s.ToString());
    }
  }
}

void Leadership::WatchLoop() {
  // The lease surely lasts until renewed_at + lease_ms in the database's
  // clock; stop acting a quarter before.
  const auto limit = std::chrono::nanoseconds(milliseconds(options_.lease_ms * 3 / 4));
  while (!Sleep(milliseconds(20))) {
    const int64_t since = SteadyNs(steady_clock::now()) - renewed_at_ns_.load();
    if (since >= limit.count()) {
      Lose(absl::StrCat("the leader lease could not be renewed for ", since / 1000000, " ms"));
      return;
    }
  }
}

void Leadership::StopRenewing() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

void Leadership::Resign() {
  StopRenewing();
  if (epoch_ == 0) return;
  absl::Status s = lease_->Release(epoch_);
  if (!s.ok()) Logger("server")->warn("cannot end the leader lease: {}", s.ToString());
}

}  // namespace retrain::server
