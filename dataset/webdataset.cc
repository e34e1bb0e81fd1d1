#include "dataset/webdataset.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

namespace retrain::dataset {
namespace {

// ustar header fields: offset and length.
struct Field {
  size_t at;
  size_t length;
};
constexpr Field kName{0, 100};
constexpr Field kMode{100, 8};
constexpr Field kUid{108, 8};
constexpr Field kGid{116, 8};
constexpr Field kSize{124, 12};
constexpr Field kMtime{136, 12};
constexpr Field kChecksum{148, 8};
constexpr size_t kTypeFlag = 156;
constexpr Field kMagic{257, 6};
constexpr Field kVersion{263, 2};
constexpr Field kDevMajor{329, 8};
constexpr Field kDevMinor{337, 8};

// Writes `value` as zero-padded octal digits filling the field but its last
// byte, which is NUL. `value` must fit (the sizes of members: 8 GiB).
void PutOctal(char* header, Field f, int64_t value) {
  auto v = static_cast<uint64_t>(value);
  for (size_t i = f.length - 1; i-- > 0; v >>= 3)
    header[f.at + i] = static_cast<char>('0' + (v & 7));
  header[f.at + f.length - 1] = '\0';
}

// The header checksum: the sum of its bytes, the checksum field counted as spaces.
int64_t HeaderChecksum(const unsigned char* header) {
  int64_t sum = 0;
  for (size_t i = 0; i < static_cast<size_t>(kTarBlockSize); ++i) {
    const bool in_checksum = i >= kChecksum.at && i < kChecksum.at + kChecksum.length;
    sum += in_checksum ? ' ' : header[i];
  }
  return sum;
}

void AppendMember(const std::string& name, std::string_view data, std::string* out) {
  char header[kTarBlockSize] = {};
  std::memcpy(header + kName.at, name.data(), std::min(name.size(), kName.length - 1));
  PutOctal(header, kMode, 0644);
  PutOctal(header, kUid, 0);
  PutOctal(header, kGid, 0);
  PutOctal(header, kSize, static_cast<int64_t>(data.size()));
  PutOctal(header, kMtime, 0);
  header[kTypeFlag] = '0';
  std::memcpy(header + kMagic.at, "ustar", 6);  // with its NUL
  std::memcpy(header + kVersion.at, "00", 2);
  PutOctal(header, kDevMajor, 0);
  PutOctal(header, kDevMinor, 0);
  // Six octal digits (at most 512 * 255), a NUL and a space, as tar writes it.
  PutOctal(header, Field{kChecksum.at, kChecksum.length - 1},
           HeaderChecksum(reinterpret_cast<const unsigned char*>(header)));
  header[kChecksum.at + kChecksum.length - 1] = ' ';
  out->append(header, sizeof(header));
  out->append(data);
  out->append(static_cast<size_t>(TarPadding(static_cast<int64_t>(data.size()))), '\0');
}

// The text of a NUL- or space-terminated octal field; -1 when not octal.
int64_t ReadOctal(const char* header, Field f) {
  int64_t value = 0;
  size_t i = f.at;
  const size_t end = f.at + f.length;
  while (i < end && header[i] == ' ') ++i;
  const size_t first = i;
  for (; i < end && header[i] >= '0' && header[i] <= '7'; ++i)
    value = value * 8 + (header[i] - '0');
  if (i == first) return -1;
  for (; i < end; ++i) {
    if (header[i] != '\0' && header[i] != ' ') return -1;
  }
  return value;
}

std::string ReadName(const char* header) {
  return std::string(header + kName.at, strnlen(header + kName.at, kName.length));
}

// "000042" and the like, for keys.
std::string Digits(int64_t value, int width) {
  char text[32];
  std::snprintf(text, sizeof(text), "%0*lld", width, static_cast<long long>(value));
  return text;
}

bool TakeToken(std::string_view& text, std::string_view* token) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  size_t end = 0;
  while (end < text.size() && text[end] != ' ' && text[end] != '\t' && text[end] != '\r') ++end;
  if (end == 0) return false;
  *token = text.substr(0, end);
  text.remove_prefix(end);
  return true;
}

bool ToNumber(std::string_view token, int64_t* value) {
  const auto [stop, error] = std::from_chars(token.data(), token.data() + token.size(), *value);
  return error == std::errc() && stop == token.data() + token.size() && *value >= 0;
}

}  // namespace

std::string SampleKey(const std::string& shard_file, int64_t position) {
  return shard_file.substr(0, shard_file.find('.')) + "-" + Digits(position, 6);
}

void AppendSample(const Sample& sample, int64_t shard_offset, std::string* out,
                  std::vector<TarMember>* members) {
  const nlohmann::json info = {{"filename", sample.filename},
                               {"height", sample.height},
                               {"label", sample.label},
                               {"label_name", sample.label_name},
                               {"width", sample.width}};
  const std::string label = std::to_string(sample.label);
  const std::string json = info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  const size_t start = out->size();
  const std::pair<const char*, std::string_view> parts[] = {{kSampleImageExtension, sample.jpeg},
                                                            {kSampleLabelExtension, label},
                                                            {kSampleInfoExtension, json}};
  for (const auto& [extension, data] : parts) {
    TarMember m;
    m.extension = extension;
    m.name = sample.key + "." + extension;
    m.offset = shard_offset + static_cast<int64_t>(out->size() - start) + kTarBlockSize;
    m.size = static_cast<int64_t>(data.size());
    AppendMember(m.name, data, out);
    members->push_back(std::move(m));
  }
}

void AppendTarEnd(std::string* out) { out->append(2 * kTarBlockSize, '\0'); }

std::string WebDatasetIndexHeader(int64_t samples) {
  return std::string(kWebDatasetIndexVersion) + " " + std::to_string(samples) + "\n";
}

std::string WebDatasetIndexLine(const std::vector<TarMember>& members) {
  std::string line;
  for (const TarMember& m : members) {
    if (!line.empty()) line += ' ';
    line +=
        m.extension + " " + std::to_string(m.offset) + " " + std::to_string(m.size) + " " + m.name;
  }
  return line + "\n";
}

bool ParseWebDatasetIndexHeader(std::string_view line, int64_t* samples) {
  std::string_view version, count;
  if (!TakeToken(line, &version) || version != kWebDatasetIndexVersion) return false;
  if (!TakeToken(line, &count) || !ToNumber(count, samples)) return false;
  std::string_view rest;
  return !TakeToken(line, &rest);
}

bool ParseWebDatasetIndexLine(std::string_view line, std::vector<TarMember>* members) {
  std::vector<TarMember> parsed;
  std::string_view extension;
  while (TakeToken(line, &extension)) {
    std::string_view offset, size, name;
    TarMember m;
    if (!TakeToken(line, &offset) || !TakeToken(line, &size) || !TakeToken(line, &name) ||
        !ToNumber(offset, &m.offset) || !ToNumber(size, &m.size) || m.offset < kTarBlockSize ||
        m.offset % kTarBlockSize != 0) {
      return false;
    }
    // Members in archive order, each after the previous one's data.
    if (!parsed.empty() && m.offset < SampleEnd(parsed) + kTarBlockSize) return false;
    m.extension = std::string(extension);
    m.name = std::string(name);
    parsed.push_back(std::move(m));
  }
  if (parsed.empty()) return false;
  *members = std::move(parsed);
  return true;
}

int64_t SampleBegin(const std::vector<TarMember>& members) {
  return members.empty() ? 0 : members.front().offset - kTarBlockSize;
}

int64_t SampleEnd(const std::vector<TarMember>& members) {
  return members.empty() ? 0 : members.back().offset + members.back().size;
}

bool ParseTarHeader(std::string_view block, TarHeader* header, bool* end, std::string* error) {
  *end = false;
  if (block.size() != static_cast<size_t>(kTarBlockSize)) {
    *error = "truncated header";
    return false;
  }
  if (block.find_first_not_of('\0') == std::string_view::npos) {
    *end = true;
    return true;
  }
  const char* h = block.data();
  if (ReadOctal(h, kChecksum) != HeaderChecksum(reinterpret_cast<const unsigned char*>(h))) {
    *error = "header checksum mismatch";
    return false;
  }
  if (std::memcmp(h + kMagic.at, "ustar", 5) != 0) {
    *error = "not a ustar header";
    return false;
  }
  header->name = ReadName(h);
  if (h[kTypeFlag] != '0' && h[kTypeFlag] != '\0') {
    *error = header->name + ": not a regular file";
    return false;
  }
  header->size = ReadOctal(h, kSize);
  if (header->size < 0) {
    *error = header->name + ": the size is not an octal number";
    return false;
  }
  return true;
}

int64_t TarPadding(int64_t size) { return (kTarBlockSize - size % kTarBlockSize) % kTarBlockSize; }

std::string_view SampleKeyOf(std::string_view member_name) {
  return member_name.substr(0, member_name.find('.'));
}

std::string_view ExtensionOf(std::string_view member_name) {
  const size_t dot = member_name.find('.');
  return dot == std::string_view::npos ? std::string_view() : member_name.substr(dot + 1);
}

bool ParseSample(std::string_view bytes, int64_t at, SampleView* sample,
                 std::vector<TarMember>* members, std::string* error) {
  SampleView parsed;
  std::vector<TarMember> found;
  bool has_image = false, has_label = false;
  size_t pos = 0;
  while (pos < bytes.size()) {
    const int64_t header_at = at + static_cast<int64_t>(pos);
    const auto fail = [&](const std::string& what) {
      *error = "tar member at offset " + std::to_string(header_at) + ": " + what;
      return false;
    };
    TarHeader header;
    bool end = false;
    std::string why;
    if (!ParseTarHeader(bytes.substr(pos, std::min<size_t>(kTarBlockSize, bytes.size() - pos)),
                        &header, &end, &why)) {
      return fail(why);
    }
    if (end) return fail("the end of the archive inside a sample");
    const size_t data_at = pos + static_cast<size_t>(kTarBlockSize);
    if (static_cast<uint64_t>(header.size) > bytes.size() - data_at) {
      return fail(header.name + ": its size runs past the sample");
    }
    // The key as a view into `bytes`: the name field holds it.
    const std::string_view key =
        SampleKeyOf(std::string_view(bytes.data() + pos + kName.at, header.name.size()));
    if (found.empty()) parsed.key = key;
    if (key.empty() || key != parsed.key) return fail(header.name + ": not the sample's key");
    const std::string_view data = bytes.substr(data_at, static_cast<size_t>(header.size));
    const std::string_view extension = ExtensionOf(header.name);
    if (extension == kSampleImageExtension) {
      parsed.jpeg = data;
      has_image = true;
    } else if (extension == kSampleLabelExtension) {
      std::string_view text = data;
      while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
      if (!ToNumber(text, &parsed.label)) return fail(header.name + ": the label is not a number");
      has_label = true;
    }
    found.push_back(
        {std::string(extension), header_at + kTarBlockSize, header.size, std::move(header.name)});
    pos = data_at + static_cast<size_t>(found.back().size);
    if (pos < bytes.size()) pos += static_cast<size_t>(TarPadding(found.back().size));
  }
  if (!has_image || !has_label) {
    *error = "sample at offset " + std::to_string(at) + ": it has no ." +
             (has_image ? kSampleLabelExtension : kSampleImageExtension) + " member";
    return false;
  }
  *sample = parsed;
  if (members != nullptr) *members = std::move(found);
  return true;
}

}  // namespace retrain::dataset
