#include "trainer/trainer_log.h"

#include "common/logging.h"

namespace retrain::trainer {

void LogInfo(const std::string& line) { Logger("trainer")->info("{}", line); }
void LogWarning(const std::string& line) { Logger("trainer")->warn("{}", line); }
void SetTrainerLogLevel(const std::string& level) { SetLogLevel(level); }

}  // namespace retrain::trainer
