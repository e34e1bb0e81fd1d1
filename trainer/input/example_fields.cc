#include "trainer/input/example_fields.h"

#include <optional>
#include <vector>

#include "common/proto_wire.h"
#include "dataset/example_features.h"

namespace retrain::trainer {

namespace {

using wire::Reader;
using wire::WireType;

// Field numbers of tensorflow/core/example/{example,feature}.proto.
constexpr uint32_t kExampleFeatures = 1;   // Example.features
constexpr uint32_t kFeaturesFeature = 1;   // Features.feature (map entries)
constexpr uint32_t kMapKey = 1;            // map entry key
constexpr uint32_t kMapValue = 2;          // map entry value (Feature)
constexpr uint32_t kFeatureBytesList = 1;  // Feature.bytes_list
constexpr uint32_t kFeatureFloatList = 2;  // Feature.float_list
constexpr uint32_t kFeatureInt64List = 3;  // Feature.int64_list
constexpr uint32_t kListValue = 1;         // {Bytes,Float,Int64}List.value

// One Feature: which list of the oneof it holds, and that list's payload.
struct FeatureView {
  uint32_t kind = 0;  // 0: none set
  std::string_view list;
};

bool ReadFeature(std::string_view data, FeatureView* out) {
  Reader r(data);
  while (r.Next()) {
    if (r.type() != WireType::kLengthDelimited) continue;
    if (r.field() == kFeatureBytesList || r.field() == kFeatureFloatList ||
        r.field() == kFeatureInt64List) {
      out->kind = r.field();  // a oneof: the last one on the wire wins
      out->list = r.bytes();
    }
  }
  return r.ok();
}

// The values of a BytesList; false on malformed data.
bool ReadBytesList(std::string_view list, std::vector<std::string_view>* values) {
  Reader r(list);
  while (r.Next()) {
    if (r.field() == kListValue && r.type() == WireType::kLengthDelimited) {
      values->push_back(r.bytes());
    }
  }
  return r.ok();
}

// The values of an Int64List, packed or not; false on malformed data.
bool ReadInt64List(std::string_view list, std::vector<int64_t>* values) {
  Reader r(list);
  while (r.Next()) {
    if (r.field() != kListValue) continue;
    if (r.type() == WireType::kVarint) {
      values->push_back(static_cast<int64_t>(r.varint()));
    } else if (r.type() == WireType::kLengthDelimited) {
      std::string_view packed = r.bytes();
      while (!packed.empty()) {
        uint64_t v = 0;
        if (!wire::ReadVarint(&packed, &v)) return false;
        values->push_back(static_cast<int64_t>(v));
      }
    }
  }
  return r.ok();
}

}  // namespace

bool ParseTrainingExample(std::string_view record, TrainingExampleFields* fields,
                          std::string* error) {
  // Map entries may repeat a key; as in protobuf, the last one wins.
  std::optional<FeatureView> encoded, label;
  Reader example(record);
  while (example.Next()) {
    if (example.field() != kExampleFeatures || example.type() != WireType::kLengthDelimited) {
      continue;
    }
    Reader features(example.bytes());
    while (features.Next()) {
      if (features.field() != kFeaturesFeature ||
          features.type() != WireType::kLengthDelimited) {
        continue;
      }
      std::string_view key, value;
      Reader entry(features.bytes());
      while (entry.Next()) {
        if (entry.type() != WireType::kLengthDelimited) continue;
        if (entry.field() == kMapKey) key = entry.bytes();
        if (entry.field() == kMapValue) value = entry.bytes();
      }
      FeatureView feature;
      if (!entry.ok() || !ReadFeature(value, &feature)) {
        *error = "not a serialized tf.Example";
        return false;
      }
      if (key == dataset::kImageEncoded) encoded = feature;
      if (key == dataset::kClassLabel) label = feature;
    }
    if (!features.ok()) {
      *error = "not a serialized tf.Example";
      return false;
    }
  }
  if (!example.ok()) {
    *error = "not a serialized tf.Example";
    return false;
  }
  std::vector<std::string_view> bytes;
  if (!encoded || encoded->kind != kFeatureBytesList || !ReadBytesList(encoded->list, &bytes) ||
      bytes.size() != 1) {
    *error = "the example has no image/encoded bytes";
    return false;
  }
  std::vector<int64_t> labels;
  if (!label || label->kind != kFeatureInt64List || !ReadInt64List(label->list, &labels) ||
      labels.size() != 1) {
    *error = "the example has no image/class/label";
    return false;
  }
  fields->encoded = bytes[0];
  fields->label = labels[0];
  return true;
}

}  // namespace retrain::trainer
