// The index of a safetensors file (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the tensors' bytes. Pretrained weights
// come in this format (Hugging Face, timm) or are written in it from a
// PyTorch state dict by scripts/weights_to_safetensors.py. Reading the index
// needs no LibTorch and throws nothing, so that the coordinator can check a
// training request against the weights it names.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace retrain::trainer {

// The metadata key naming the model whose weights a file holds (as
// CreateModel() names it); written by scripts/weights_to_safetensors.py and
// retrain, optional on reading.
inline constexpr const char* kSafetensorsModelKey = "retrain.model";

struct SafetensorsEntry {
  // As the format spells it: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL.
  std::string dtype;
  std::vector<int64_t> shape;
  // Absolute byte offsets in the file: [begin, end).
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct SafetensorsIndex {
  std::map<std::string, SafetensorsEntry> tensors;
  // The header's "__metadata__" (string to string), if any.
  std::map<std::string, std::string> metadata;
};

// Whether `path` names a safetensors file (by its extension, as the format
// has no magic number).
bool IsSafetensorsPath(const std::string& path);

// Bytes per element of a dtype of the format; 0 for one it does not define.
int SafetensorsDtypeSize(const std::string& dtype);

// How reading an index went.
enum class SafetensorsRead {
  kOk,
  kCannotOpen,  // the file is missing or unreadable
  kInvalid,     // not a usable safetensors file
};

// Reads and checks the index: a header that parses, known dtypes, shapes
// whose byte size matches the range, ranges inside the file that do not
// overlap. Exception-free: anything but kOk sets *error, naming the file
// (and the tensor).
SafetensorsRead ReadSafetensorsIndex(const std::string& path, SafetensorsIndex* index,
                                     std::string* error);
// The same from a header's bytes (after the 8-byte length), for a file of
// `file_size` bytes; `name` is used in messages. False: not a usable file.
bool ParseSafetensorsHeader(const std::string& header, uint64_t file_size,
                            const std::string& name, SafetensorsIndex* index, std::string* error);

}  // namespace retrain::trainer
