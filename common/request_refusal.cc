#include "common/request_refusal.h"

#include <string>

namespace retrain {

retrain::v1::RequestRefusal RefusalOf(const absl::Status& status) {
  retrain::v1::RequestRefusal refusal;
  refusal.set_code(static_cast<int32_t>(status.code()));
  refusal.set_message(std::string(status.message()));
  return refusal;
}

}  // namespace retrain
