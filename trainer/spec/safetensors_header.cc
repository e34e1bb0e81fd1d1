#include "trainer/spec/safetensors_header.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

namespace retrain::trainer {
namespace {

// The format's own bound on the header (the reference implementation's).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Sets *error for `name` and returns false.
bool Fail(std::string* error, const std::string& name, const std::string& what) {
  *error = name + ": not a usable safetensors file: " + what;
  return false;
}

SafetensorsRead Invalid(std::string* error, const std::string& path, const std::string& what) {
  Fail(error, path, what);
  return SafetensorsRead::kInvalid;
}

bool ParseEntry(const std::string& tensor, const nlohmann::json& j, uint64_t data_start,
                uint64_t file_size, const std::string& name, SafetensorsEntry* out,
                std::string* error) {
  const std::string where = "tensor \"" + tensor + "\": ";
  if (!j.is_object()) return Fail(error, name, where + "its entry is not an object");
  SafetensorsEntry& e = *out;
  const auto dtype = j.find("dtype");
  if (dtype == j.end() || !dtype->is_string()) return Fail(error, name, where + "no dtype");
  e.dtype = dtype->get<std::string>();
  const int element_size = SafetensorsDtypeSize(e.dtype);
  if (element_size == 0) return Fail(error, name, where + "unknown dtype " + e.dtype);
  const auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array()) return Fail(error, name, where + "no shape");
  uint64_t bytes = static_cast<uint64_t>(element_size);
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned())
      return Fail(error, name, where + "a dimension is not a whole number");
    const uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (n != 0 && bytes > std::numeric_limits<uint64_t>::max() / n)) {
      return Fail(error, name, where + "its shape overflows");
    }
    bytes *= n;
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const auto offsets = j.find("data_offsets");
  if (offsets == j.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    return Fail(error, name, where + "data_offsets is not a pair of byte offsets");
  }
  const uint64_t begin = (*offsets)[0].get<uint64_t>();
  const uint64_t end = (*offsets)[1].get<uint64_t>();
  if (begin > end || end > file_size - data_start) {
    return Fail(error, name,
                where + "its bytes [" + std::to_string(begin) + ", " + std::to_string(end) +
                    ") lie outside the file's " + std::to_string(file_size - data_start) +
                    " bytes of data (a truncated download?)");
  }
  if (end - begin != bytes) {
    return Fail(error, name,
                where + "holds " + std::to_string(end - begin) + " bytes, its shape needs " +
                    std::to_string(bytes));
  }
  e.begin = data_start + begin;
  e.end = data_start + end;
  return true;
}

}  // namespace

bool IsSafetensorsPath(const std::string& path) {
  static const std::string kExtension = ".safetensors";
  return path.size() >= kExtension.size() &&
         path.compare(path.size() - kExtension.size(), kExtension.size(), kExtension) == 0;
}

int SafetensorsDtypeSize(const std::string& dtype) {
  static const std::map<std::string, int> kSizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
      {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2},  {"U32", 4}, {"U64", 8}};
  const auto it = kSizes.find(dtype);
  return it == kSizes.end() ? 0 : it->second;
}

bool ParseSafetensorsHeader(const std::string& header, uint64_t file_size, const std::string& name,
                            SafetensorsIndex* out, std::string* error) {
  const nlohmann::json j = nlohmann::json::parse(header, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Fail(error, name, "its header is not a JSON object");
  const uint64_t data_start = 8 + header.size();
  if (data_start > file_size) return Fail(error, name, "its header runs past the end of the file");
  SafetensorsIndex& index = *out;
  index = SafetensorsIndex();
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return Fail(error, name, "__metadata__ is not an object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) return Fail(error, name, "__metadata__." + k + " is not a string");
        index.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry entry;
    if (!ParseEntry(key, value, data_start, file_size, name, &entry, error)) return false;
    index.tensors.emplace(key, std::move(entry));
  }
  std::vector<std::pair<uint64_t, const std::string*>> ranges;
  for (const auto& [key, e] : index.tensors) {
    if (e.end > e.begin) ranges.emplace_back(e.begin, &key);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const SafetensorsEntry& previous = index.tensors.at(*ranges[i - 1].second);
    if (ranges[i].first < previous.end) {
      return Fail(error, name,
                  "tensors \"" + *ranges[i - 1].second + "\" and \"" + *ranges[i].second +
                      "\" share bytes");
    }
  }
  return true;
}

SafetensorsRead ReadSafetensorsIndex(const std::string& path, SafetensorsIndex* index,
                                     std::string* error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    *error = path + ": cannot open the weights file";
    return SafetensorsRead::kCannotOpen;
  }
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::array<unsigned char, 8> length_bytes{};
  if (size < 8 || !in.read(reinterpret_cast<char*>(length_bytes.data()), 8)) {
    return Invalid(error, path, "shorter than its 8-byte header length");
  }
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | length_bytes[i];
  if (length > kMaxHeaderBytes || length > size - 8) {
    return Invalid(error, path,
                   "its header length (" + std::to_string(length) + " bytes) exceeds " +
                       (length > kMaxHeaderBytes ? "the format's limit" : "the file"));
  }
  std::string header(length, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(length))) {
    return Invalid(error, path, "cannot read its header");
  }
  return ParseSafetensorsHeader(header, size, path, index, error) ? SafetensorsRead::kOk
                                                                  : SafetensorsRead::kInvalid;
}

}  // namespace retrain::trainer
