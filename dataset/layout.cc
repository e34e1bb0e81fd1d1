#include "dataset/layout.h"

#include <charconv>
#include <cstdio>

namespace retrain::dataset {

namespace {

// An enum's values with their names, the first the default.
template <typename Enum>
struct Named {
  const char* name;
  Enum value;
};
constexpr Named<ShardFormat> kShardFormats[] = {{"tfrecord", ShardFormat::kTfRecord},
                                                {"webdataset", ShardFormat::kWebDataset}};
constexpr Named<VerifyMode> kVerifyModes[] = {{"full", VerifyMode::kFull},
                                              {"structure", VerifyMode::kStructure}};

template <typename Enum, size_t N>
const char* NameIn(const Named<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return table[0].name;
}

template <typename Enum, size_t N>
bool ParseIn(const Named<Enum> (&table)[N], std::string_view name, Enum* value) {
  for (const auto& entry : table) {
    if (name == entry.name) {
      *value = entry.value;
      return true;
    }
  }
  return false;
}

template <typename Enum, size_t N>
std::string NamesIn(const Named<Enum> (&table)[N]) {
  std::string names;
  for (const auto& entry : table) names += (names.empty() ? "" : ", ") + std::string(entry.name);
  return names;
}

}  // namespace

const char* ShardFormatName(ShardFormat format) { return NameIn(kShardFormats, format); }
bool ParseShardFormat(std::string_view name, ShardFormat* format) {
  return ParseIn(kShardFormats, name, format);
}
std::string ShardFormatNames() { return NamesIn(kShardFormats); }

const char* VerifyModeName(VerifyMode mode) { return NameIn(kVerifyModes, mode); }
bool ParseVerifyMode(std::string_view name, VerifyMode* mode) {
  return ParseIn(kVerifyModes, name, mode);
}
std::string VerifyModeNames() { return NamesIn(kVerifyModes); }

std::string ShardFileName(const std::string& split, int index, int count, ShardFormat format) {
  char numbers[48];
  if (format == ShardFormat::kWebDataset) {
    std::snprintf(numbers, sizeof(numbers), "-%06d.tar", index);
  } else {
    std::snprintf(numbers, sizeof(numbers), "-%05d-of-%05d", index, count);
  }
  return split + numbers;
}

std::string IndexFileFor(const std::string& shard_file) {
  return std::string(kIndexDirectory) + "/" + shard_file.substr(0, shard_file.find('.')) + ".idx";
}

std::string IndexLine(const IndexEntry& entry) {
  return std::to_string(entry.offset) + " " + std::to_string(entry.size) + "\n";
}

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Reads blanks, then a non-negative decimal number, from the front of `text`.
bool TakeNumber(std::string_view& text, int64_t* value) {
  while (!text.empty() && IsBlank(text.front())) text.remove_prefix(1);
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(begin, end, *value);
  if (error != std::errc() || stop == begin || *value < 0) return false;
  text.remove_prefix(static_cast<size_t>(stop - begin));
  return true;
}

}  // namespace

bool ParseIndexLine(std::string_view line, IndexEntry* entry) {
  IndexEntry parsed;
  if (!TakeNumber(line, &parsed.offset)) return false;
  if (line.empty() || !IsBlank(line.front())) return false;  // "12 34", not "12x34"
  if (!TakeNumber(line, &parsed.size)) return false;
  while (!line.empty() && IsBlank(line.front())) line.remove_prefix(1);
  if (!line.empty()) return false;
  *entry = parsed;
  return true;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string BuildWorkspaceDirectory(const std::string& output_directory) {
  return JoinPath(output_directory, kBuildWorkspaceDirectory);
}

}  // namespace retrain::dataset
