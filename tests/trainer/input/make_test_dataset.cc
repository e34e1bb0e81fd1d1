// retrain-make-test-dataset: writes a dataset as `retrain build-dataset`
// would (TFRecord shards of tf.Example JPEGs, index files, dataset.json) from
// generated photo-like images, with libjpeg alone. For benchmarks and checks
// on machines that build only the trainer (no libvips, no service).
//
//   retrain-make-test-dataset DIR [--train 2048] [--validation 256]
//       [--shards 8] [--width 500] [--height 375] [--labels 10]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/trainer/input/test_dataset.h"

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: retrain-make-test-dataset DIR [--train 2048] [--validation 256] "
                 "[--shards 8] [--width 500] [--height 375] [--labels 10]\n");
    return 2;
  }
  const std::string dir = argv[1];
  int train = 2048, validation = 256, shards = 8, width = 500, height = 375, labels = 10;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const int value = std::atoi(argv[i + 1]);
    int* field = key == "--train"        ? &train
                 : key == "--validation" ? &validation
                 : key == "--shards"     ? &shards
                 : key == "--width"      ? &width
                 : key == "--height"     ? &height
                 : key == "--labels"     ? &labels
                                         : nullptr;
    if (field == nullptr || value < 1) {
      std::fprintf(stderr, "retrain-make-test-dataset: bad option %s %s\n", argv[i], argv[i + 1]);
      return 2;
    }
    *field = value;
  }
  std::filesystem::create_directories(dir);
  retrain::trainer::testing::DatasetSpec spec;
  spec.num_labels = labels;
  spec.splits = {{"train", train, shards, width, height, false, 90},
                 {"validation", validation, 1, width, height, false, 90}};
  retrain::trainer::testing::WriteDataset(dir, spec);
  std::printf("%s: %d train and %d validation %dx%d JPEGs, %d labels\n", dir.c_str(), train,
              validation, width, height, labels);
  return 0;
}
