// The coordinator's request validators on arbitrary requests: the first
// byte picks SubmitDatasetBuild, SubmitTraining or SubmitEvaluation, the
// rest is the request's wire format. Always validate_only (nothing is
// created); any answer but a crash is fine, and refusals carry a message.
#include <filesystem>
#include <memory>
#include <string>

#include "server/coordinator.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

retrain::server::Coordinator& TheCoordinator() {
  static std::unique_ptr<retrain::server::Coordinator> coordinator = [] {
    const std::string root = std::filesystem::temp_directory_path() / "retrain-fuzz-requests";
    std::filesystem::create_directories(root + "/data/train/cat");
    retrain::server::CoordinatorOptions options;
    options.state_dir = root + "/state";
    options.data_roots = {root + "/data"};
    auto c = retrain::server::Coordinator::Create(options);
    if (!c.ok()) __builtin_trap();
    return *std::move(c);
  }();
  return *coordinator;
}

template <typename Request>
absl::Status Validate(const uint8_t* data, size_t size,
                      absl::StatusOr<retrain::v1::Job> (retrain::server::Coordinator::*submit)(
                          const Request&, const std::string&)) {
  Request req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return absl::OkStatus();
  req.set_validate_only(true);
  return (TheCoordinator().*submit)(req, "fuzz").status();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  absl::Status s;
  switch (data[0] % 3) {
    case 0:
      s = Validate(data + 1, size - 1, &retrain::server::Coordinator::SubmitDatasetBuild);
      break;
    case 1:
      s = Validate(data + 1, size - 1, &retrain::server::Coordinator::SubmitTraining);
      break;
    default:
      s = Validate(data + 1, size - 1, &retrain::server::Coordinator::SubmitEvaluation);
      break;
  }
  if (!s.ok() && s.message().empty()) __builtin_trap();
  return 0;
}
