#include "common/proto_wire.h"

#include <cstring>

namespace retrain::wire {

namespace {

uint64_t LoadLittleEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void StoreLittleEndian(uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

bool ReadVarint(std::string_view* data, uint64_t* value) {
  uint64_t v = 0;
  for (size_t i = 0; i < data->size() && i < 10; ++i) {
    const auto byte = static_cast<uint8_t>((*data)[i]);
    v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      *value = v;
      data->remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool Reader::Next() {
  if (!ok_ || data_.empty()) return false;
  uint64_t tag = 0;
  if (!ReadVarint(&data_, &tag)) return Fail();
  field_ = static_cast<uint32_t>(tag >> 3);
  if (field_ == 0 || (tag >> 3) > 0x1fffffff) return Fail();
  switch (tag & 7) {
    case 0:
      type_ = WireType::kVarint;
      return ReadVarint(&data_, &varint_) || Fail();
    case 1:
      type_ = WireType::kFixed64;
      if (data_.size() < 8) return Fail();
      varint_ = LoadLittleEndian(data_.data(), 8);
      data_.remove_prefix(8);
      return true;
    case 2: {
      type_ = WireType::kLengthDelimited;
      uint64_t size = 0;
      if (!ReadVarint(&data_, &size) || size > data_.size()) return Fail();
      bytes_ = data_.substr(0, size);
      data_.remove_prefix(size);
      return true;
    }
    case 5:
      type_ = WireType::kFixed32;
      if (data_.size() < 4) return Fail();
      varint_ = LoadLittleEndian(data_.data(), 4);
      data_.remove_prefix(4);
      return true;
    default:  // groups (3, 4) and undefined types: not in the messages read here
      return Fail();
  }
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void AppendTag(uint32_t field, WireType type, std::string* out) {
  AppendVarint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(type), out);
}

void AppendVarintField(uint32_t field, uint64_t value, std::string* out) {
  AppendTag(field, WireType::kVarint, out);
  AppendVarint(value, out);
}

void AppendBytesField(uint32_t field, std::string_view bytes, std::string* out) {
  AppendTag(field, WireType::kLengthDelimited, out);
  AppendVarint(bytes.size(), out);
  out->append(bytes.data(), bytes.size());
}

void AppendFixed32Field(uint32_t field, uint32_t value, std::string* out) {
  AppendTag(field, WireType::kFixed32, out);
  StoreLittleEndian(value, 4, out);
}

void AppendFixed64Field(uint32_t field, uint64_t value, std::string* out) {
  AppendTag(field, WireType::kFixed64, out);
  StoreLittleEndian(value, 8, out);
}

void AppendFloatField(uint32_t field, float value, std::string* out) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  AppendFixed32Field(field, bits, out);
}

void AppendDoubleField(uint32_t field, double value, std::string* out) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  AppendFixed64Field(field, bits, out);
}

}  // namespace retrain::wire
