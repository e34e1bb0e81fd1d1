// WebDataset shards: POSIX tar (ustar) files in which each record is a
// sample, a run of adjacent members with one key:
//   <key>.jpg   the record's JPEG (the bytes a TFRecord shard's
//               image/encoded holds)
//   <key>.cls   the label id as decimal text
//   <key>.json  {"filename", "height", "label", "label_name", "width"}
// Members have mode 0644, owner 0:0, empty owner names and time 0, so a
// shard's bytes depend only on its records; two zero blocks end it.
//
// Each shard has an index in DALI's WebDataset format (what its
// tools/wds2idx.py writes): "v1.2 <samples>\n", then one line per sample of
// "<ext> <data offset> <size> <member name>" for each member, space
// separated. Readers (the trainer, verify-dataset) find samples by it.
//
// Exception-free; no abseil, gRPC, libvips or LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace retrain::dataset {

inline constexpr int64_t kTarBlockSize = 512;
// The member extensions of a sample.
inline constexpr char kSampleImageExtension[] = "jpg";
inline constexpr char kSampleLabelExtension[] = "cls";
inline constexpr char kSampleInfoExtension[] = "json";
// The first line of a WebDataset index names its version.
inline constexpr char kWebDatasetIndexVersion[] = "v1.2";

// One record as a sample.
struct Sample {
  std::string key;        // unique in the dataset; no '.' or '/'
  std::string_view jpeg;  // the record's JPEG
  int64_t label = 0;
  std::string label_name;
  std::string filename;  // the source file's base name
  int64_t height = 0;
  int64_t width = 0;
};

// A member of a shard as the index lists it.
struct TarMember {
  std::string extension;  // "jpg"
  int64_t offset = 0;     // of its data, just after its header
  int64_t size = 0;       // of its data
  std::string name;       // "<key>.jpg"
};

// "train-000003-000042": the key of record `position` (from 0) of the shard
// whose file is `shard_file` ("train-000003.tar").
std::string SampleKey(const std::string& shard_file, int64_t position);

// Appends `sample`'s three members to `out`; `shard_offset` is where the
// sample's first byte lies in the shard. `members` receives their entries.
void AppendSample(const Sample& sample, int64_t shard_offset, std::string* out,
                  std::vector<TarMember>* members);
// Appends the end of a tar file (two zero blocks).
void AppendTarEnd(std::string* out);

// The index's first line, and the line of one sample, each with its newline.
std::string WebDatasetIndexHeader(int64_t samples);
std::string WebDatasetIndexLine(const std::vector<TarMember>& members);
// Parse them (without the newline); false when malformed.
bool ParseWebDatasetIndexHeader(std::string_view line, int64_t* samples);
bool ParseWebDatasetIndexLine(std::string_view line, std::vector<TarMember>* members);

// A tar header's member, once the header is checked.
struct TarHeader {
  std::string name;
  int64_t size = 0;  // of its data
};
// Reads a 512-byte header block: checks its checksum, the ustar magic and
// that it is a regular file's. True with *end set when the block is all
// zeros (the end of the archive); false with *error saying what is wrong.
bool ParseTarHeader(std::string_view block, TarHeader* header, bool* end, std::string* error);
// The zero bytes that follow `size` bytes of data to the end of their block.
int64_t TarPadding(int64_t size);
// "train-000003-000042" of "train-000003-000042.jpg"; the extension, "jpg".
std::string_view SampleKeyOf(std::string_view member_name);
std::string_view ExtensionOf(std::string_view member_name);

// A sample read back from a shard: views into the bytes it was read from.
struct SampleView {
  std::string_view key;
  std::string_view jpeg;
  int64_t label = 0;
};

// Reads the sample whose members are `bytes`: from the first member's
// header to the end of the last member's data, as the index's entry for it
// spans (SampleBegin, SampleEnd), found at shard offset `at`. Checks every
// header (checksum, ustar magic, a regular file, a size inside the sample,
// one key for all) and the .cls text, and needs a .jpg and a .cls member.
// `members` (may be null) receives the members as the index lists them.
// False with *error saying what is wrong and at which shard offset.
bool ParseSample(std::string_view bytes, int64_t at, SampleView* sample,
                 std::vector<TarMember>* members, std::string* error);

// The byte range of a sample in its shard: [begin, end).
int64_t SampleBegin(const std::vector<TarMember>& members);
int64_t SampleEnd(const std::vector<TarMember>& members);

}  // namespace retrain::dataset
