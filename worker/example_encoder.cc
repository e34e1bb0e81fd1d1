#include "worker/example_encoder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "dataset/example_features.h"
#include "tensorflow/core/example/example.pb.h"

namespace retrain::worker {

namespace {

void SetBytes(tensorflow::Features* f, const char* key, std::string_view value) {
  (*f->mutable_feature())[key].mutable_bytes_list()->add_value(value.data(), value.size());
}
void SetInt(tensorflow::Features* f, const char* key, int64_t value) {
  (*f->mutable_feature())[key].mutable_int64_list()->add_value(value);
}

}  // namespace

std::string EncodeExample(const ExampleFields& in) {
  tensorflow::Example example;
  auto* f = example.mutable_features();
  SetInt(f, dataset::kImageHeight, in.height);
  SetInt(f, dataset::kImageWidth, in.width);
  SetBytes(f, dataset::kImageColorspace, dataset::kColorspace);
  SetInt(f, dataset::kImageChannels, dataset::kChannels);
  SetInt(f, dataset::kClassLabel, in.label);
  SetBytes(f, dataset::kClassText, in.text);
  SetBytes(f, dataset::kImageFormat, dataset::kFormatJpeg);
  SetBytes(f, dataset::kImageFilename, in.filename);
  SetBytes(f, dataset::kImageEncoded, in.jpeg);
  // Serialized into a buffer of exactly its size: no growth, no copy.
  std::string out(example.ByteSizeLong(), '\0');
  {
    google::protobuf::io::ArrayOutputStream stream(out.data(), static_cast<int>(out.size()));
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map keys in sorted order
    example.SerializeWithCachedSizes(&coded);
  }
  return out;
}

}  // namespace retrain::worker
