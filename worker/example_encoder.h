// The tf.Example record for one image, with exactly the features the
// reference converter writes (build_image_data.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace retrain::worker {

struct ExampleFields {
  std::string_view jpeg;      // image/encoded
  int64_t height = 0;         // image/height
  int64_t width = 0;          // image/width
  int64_t label = 0;          // image/class/label
  std::string_view text;      // image/class/text
  std::string_view filename;  // image/filename (base name)
};

// Serialized tensorflow.Example with image/colorspace "RGB",
// image/channels 3 and image/format "JPEG" besides the fields above.
// Deterministic: the same fields give the same bytes (keys sorted).
std::string EncodeExample(const ExampleFields& fields);

}  // namespace retrain::worker
