#include "common/logging.h"

#include <gtest/gtest.h>

namespace retrain {
namespace {

TEST(JsonLogLineTest, EscapesAndNamesTheJobAndWorker) {
  EXPECT_EQ(JsonLogLine("2026-12-01T10:00:00.123Z", "info", "server",
                        "job j-000012: task 3 leased to w-7 \"fast\"\n"),
            "{\"time\":\"2026-12-01T10:00:00.123Z\",\"level\":\"info\",\"component\":\"server\","
            "\"message\":\"job j-000012: task 3 leased to w-7 \\\"fast\\\"\\n\","
            "\"job\":\"j-000012\",\"worker\":\"w-7\"}");
  // Ids only where they stand alone; control characters escaped.
  EXPECT_EQ(JsonLogLine("t", "warn", "worker", "raw-5 w-x j-\x01"),
            "{\"time\":\"t\",\"level\":\"warn\",\"component\":\"worker\","
            "\"message\":\"raw-5 w-x j-\\u0001\"}");
}

TEST(LogFormatTest, AcceptsTextAndJsonOnly) {
  EXPECT_TRUE(SetLogFormat("json"));
  EXPECT_TRUE(SetLogFormat("text"));
  EXPECT_FALSE(SetLogFormat("xml"));
}

}  // namespace
}  // namespace retrain
