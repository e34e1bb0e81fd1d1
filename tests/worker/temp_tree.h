// A test fixture over a temporary directory tree (canonical path) with a
// helper that makes files in it.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/process.h"

namespace retrain::worker {

class TempTreeTest : public ::testing::Test {
 protected:
  // Writes a one-byte file at `rel` under root_, making its directories.
  void Touch(const std::string& rel) {
    std::filesystem::create_directories(std::filesystem::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << "x";
  }
  retrain::testing::TempDir dir_;
  std::string root_ = std::filesystem::canonical(dir_.path()).string();
};

}  // namespace retrain::worker
