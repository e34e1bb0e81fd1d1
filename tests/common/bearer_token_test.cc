#include "common/bearer_token.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace retrain {
namespace {

TEST(BearerTokenTest, FileBeatsEnvironmentAndWhitespaceIsDropped) {
  const std::string file = std::filesystem::temp_directory_path() / "retrain-token-test";
  std::ofstream(file) << "  s3cret\n";
  setenv("RETRAIN_TEST_TOKEN", "from-env", 1);
  EXPECT_EQ(*LoadToken("--token_file", file, "RETRAIN_TEST_TOKEN"), "s3cret");
  EXPECT_EQ(*LoadToken("--token_file", "", "RETRAIN_TEST_TOKEN"), "from-env");
  unsetenv("RETRAIN_TEST_TOKEN");
  EXPECT_EQ(*LoadToken("--token_file", "", "RETRAIN_TEST_TOKEN"), "");
  std::ofstream(file) << " \n";
  auto empty = LoadToken("--token_file", file, "RETRAIN_TEST_TOKEN");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("--token_file: the token file"), std::string::npos);
  std::filesystem::remove(file);
  auto missing = LoadToken("--token_file", file, "RETRAIN_TEST_TOKEN");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot read"), std::string::npos);
}

TEST(BearerTokenTest, BearerValuesRoundTrip) {
  EXPECT_EQ(BearerValue("abc"), "Bearer abc");
  EXPECT_EQ(TokenOfBearerValue("Bearer abc"), "abc");
  EXPECT_EQ(TokenOfBearerValue("bearer  abc "), "abc");
  EXPECT_EQ(TokenOfBearerValue("Basic abc"), "");
  EXPECT_EQ(TokenOfBearerValue(""), "");
}

}  // namespace
}  // namespace retrain
