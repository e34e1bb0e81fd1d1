#include "worker/example_encoder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

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
  SetInt(f, "image/height", in.height);
  SetInt(f, "image/width", in.width);
  SetBytes(f, "image/colorspace", "RGB");
  SetInt(f, "image/channels", 3);
  SetInt(f, "image/class/label", in.label);
  SetBytes(f, "image/class/text", in.text);
  SetBytes(f, "image/format", "JPEG");
  SetBytes(f, "image/filename", in.filename);
  SetBytes(f, "image/encoded", in.jpeg);
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map keys in sorted order
    example.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace retrain::worker
