// The protocol-buffer wire format (varints, tags, length-delimited and fixed
// fields), for the few messages the trainer reads and writes (tf.Example,
// tensorflow.Event). The trainer cannot link libprotobuf: PyTorch's LibTorch
// exports protobuf symbols of its own version, and two copies in one
// process crash. Everything else in retrain uses the generated classes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace retrain::wire {

enum class WireType : uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

// Reads the fields of one serialized message in order. A field's payload is
// read with the accessor of its wire type; fields nobody asks for are skipped
// by the next Next(). Views returned point into the input, which must
// outlive them. Malformed input (a truncated field, an overlong varint, a
// group or unknown wire type) makes Next() return false and ok() false.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  // Advances to the next field; false at the end of the message or on
  // malformed input.
  bool Next();
  bool ok() const { return ok_; }

  uint32_t field() const { return field_; }
  WireType type() const { return type_; }

  uint64_t varint() const { return varint_; }
  // The payload of a length-delimited field: bytes, a string, a nested
  // message or a packed repeated field.
  std::string_view bytes() const { return bytes_; }
  uint32_t fixed32() const { return static_cast<uint32_t>(varint_); }
  uint64_t fixed64() const { return varint_; }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }

  std::string_view data_;
  bool ok_ = true;
  uint32_t field_ = 0;
  WireType type_ = WireType::kVarint;
  uint64_t varint_ = 0;  // a varint, fixed32 or fixed64 payload
  std::string_view bytes_;
};

// Reads one varint from the front of `data` and drops it; false when the
// data ends first or the varint is longer than 10 bytes.
bool ReadVarint(std::string_view* data, uint64_t* value);

// Appends fields to `out` in the wire format.
void AppendVarint(uint64_t value, std::string* out);
void AppendTag(uint32_t field, WireType type, std::string* out);
void AppendVarintField(uint32_t field, uint64_t value, std::string* out);
void AppendBytesField(uint32_t field, std::string_view bytes, std::string* out);
void AppendFixed32Field(uint32_t field, uint32_t value, std::string* out);
void AppendFixed64Field(uint32_t field, uint64_t value, std::string* out);
void AppendFloatField(uint32_t field, float value, std::string* out);
void AppendDoubleField(uint32_t field, double value, std::string* out);

}  // namespace retrain::wire
