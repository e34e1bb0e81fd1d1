// The two features of a tf.Example the trainer needs, read straight from
// the wire format without copying the image (see common/proto_wire.h for why
// not libprotobuf).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace retrain::trainer {

struct TrainingExampleFields {
  std::string_view encoded;  // image/encoded: the JPEG, a view into the record
  int64_t label = 0;         // image/class/label
};

// Parses a serialized tf.Example that has exactly one image/encoded bytes
// value and exactly one image/class/label int64 value (other features are
// skipped). On failure returns false and sets *error to what is wrong, as a
// phrase ("not a serialized tf.Example", "the example has no image/encoded
// bytes", ...). `record` must outlive fields->encoded.
bool ParseTrainingExample(std::string_view record, TrainingExampleFields* fields,
                          std::string* error);

}  // namespace retrain::trainer
