#include "worker/trainer/input/dataset_manifest.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "worker/trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

using nlohmann::json;
constexpr const char* kManifestName = "dataset.json";
constexpr const char* kRebuild = "rebuild the dataset with retrain build-dataset";

[[noreturn]] void DataError(const std::string& message) {
  throw TrainerError(TrainerError::Kind::kData, message);
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A relative path that stays inside the data directory.
bool IsSafeRelativePath(const std::string& path) {
  if (path.empty() || path.front() == '/') return false;
  std::stringstream parts(path);
  std::string part;
  while (std::getline(parts, part, '/')) {
    if (part.empty() || part == "." || part == "..") return false;
  }
  return true;
}

// Field access with messages that name the manifest and the field.
class Reader {
 public:
  explicit Reader(const std::string& manifest_path) : path_(manifest_path) {}

  const json& Get(const json& object, const char* key, const std::string& where) const {
    if (!object.is_object()) Fail(where + " is not an object");
    auto it = object.find(key);
    if (it == object.end()) Fail(where + " has no \"" + key + "\"");
    return *it;
  }
  int64_t Int(const json& object, const char* key, const std::string& where) const {
    const json& v = Get(object, key, where);
    if (!v.is_number_integer()) Fail(where + "." + key + " is not an integer");
    const int64_t n = v.get<int64_t>();
    if (n < 0) Fail(where + "." + key + " is negative");
    return n;
  }
  std::string String(const json& object, const char* key, const std::string& where) const {
    const json& v = Get(object, key, where);
    if (!v.is_string()) Fail(where + "." + key + " is not a string");
    return v.get<std::string>();
  }
  bool Bool(const json& object, const char* key, const std::string& where) const {
    const json& v = Get(object, key, where);
    if (!v.is_boolean()) Fail(where + "." + key + " is not a boolean");
    return v.get<bool>();
  }
  [[noreturn]] void Fail(const std::string& what) const {
    DataError(path_ + ": corrupt dataset manifest: " + what + "; " + kRebuild);
  }

 private:
  std::string path_;
};

SplitInfo ParseSplit(const Reader& r, const json& j, const std::string& name,
                     const std::string& data_dir) {
  const std::string where = "splits." + name;
  SplitInfo split;
  split.name = name;
  split.num_records = r.Int(j, "num_records", where);
  const json& shards = r.Get(j, "shards", where);
  if (!shards.is_array()) r.Fail(where + ".shards is not an array");
  int64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string sw = where + ".shards[" + std::to_string(i) + "]";
    ShardInfo shard;
    shard.file = r.String(shards[i], "file", sw);
    if (!IsSafeRelativePath(shard.file) || shard.file.find('/') != std::string::npos) {
      r.Fail(sw + ".file \"" + shard.file + "\" is not a file name");
    }
    const std::string index = r.String(shards[i], "index", sw);
    if (!IsSafeRelativePath(index)) r.Fail(sw + ".index \"" + index + "\" leaves the directory");
    shard.num_records = r.Int(shards[i], "num_records", sw);
    shard.num_bytes = r.Int(shards[i], "num_bytes", sw);
    shard.path = JoinPath(data_dir, shard.file);
    shard.index_path = JoinPath(data_dir, index);
    total += shard.num_records;
    split.shards.push_back(std::move(shard));
  }
  if (total != split.num_records) {
    r.Fail(where + ".num_records is " + std::to_string(split.num_records) +
           " but its shards hold " + std::to_string(total));
  }
  return split;
}

bool StatFile(const std::string& path, int64_t* size) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  *size = static_cast<int64_t>(st.st_size);
  return true;
}

}  // namespace

int64_t SplitInfo::num_bytes() const {
  int64_t n = 0;
  for (const auto& s : shards) n += s.num_bytes;
  return n;
}

double SplitInfo::mean_record_bytes() const {
  return num_records > 0 ? static_cast<double>(num_bytes()) / static_cast<double>(num_records)
                         : 0.0;
}

const SplitInfo& DatasetManifest::split(const std::string& name) const {
  auto it = splits.find(name);
  if (it == splits.end()) {
    DataError("the dataset in " + data_dir + " has no " + name + " split (it was built without --" +
              name + "_directory); build it with that directory or pick another split");
  }
  return it->second;
}

DatasetManifest ParseDatasetManifest(const std::string& json_text, const std::string& data_dir) {
  const std::string path = JoinPath(data_dir, kManifestName);
  const Reader r(path);
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) r.Fail("not valid JSON");
  if (!j.is_object()) r.Fail("not a JSON object");

  DatasetManifest m;
  m.data_dir = data_dir;
  m.format = r.String(j, "format", "manifest");
  if (m.format.rfind("retrain-dataset/", 0) != 0) {
    r.Fail("format \"" + m.format + "\" is not a retrain dataset");
  }
  if (m.format != "retrain-dataset/1") {
    DataError(path + ": dataset format \"" + m.format +
              "\" is newer than this trainer reads (retrain-dataset/1); use a newer trainer or " +
              kRebuild);
  }
  m.num_classes = static_cast<int>(r.Int(j, "num_classes", "manifest"));
  m.background_class = r.Bool(j, "background_class", "manifest");
  const json& labels = r.Get(j, "labels", "manifest");
  if (!labels.is_array()) r.Fail("labels is not an array");
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string lw = "labels[" + std::to_string(i) + "]";
    m.labels.push_back({r.Int(labels[i], "id", lw), r.String(labels[i], "name", lw)});
    if (m.labels.back().id >= m.num_classes) {
      r.Fail(lw + ".id " + std::to_string(m.labels.back().id) + " is not below num_classes " +
             std::to_string(m.num_classes));
    }
  }
  if (m.num_classes < 1) r.Fail("num_classes is " + std::to_string(m.num_classes));
  const json& splits = r.Get(j, "splits", "manifest");
  if (!splits.is_object()) r.Fail("splits is not an object");
  for (const char* name : {"train", "validation"}) {
    auto it = splits.find(name);
    if (it != splits.end()) m.splits[name] = ParseSplit(r, *it, name, data_dir);
  }
  return m;
}

DatasetManifest LoadDatasetManifest(const std::string& data_dir) {
  const std::string path = JoinPath(data_dir, kManifestName);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    struct stat st;
    if (::stat(data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      DataError("dataset directory " + data_dir +
                " does not exist; pass the --output_directory of a finished retrain "
                "build-dataset run");
    }
    DataError(path + " is missing: " + data_dir +
              " holds no finished dataset; run retrain build-dataset first (the manifest is "
              "written last, so a build that did not finish leaves none)");
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) DataError(path + ": cannot read the dataset manifest");
  DatasetManifest m = ParseDatasetManifest(text.str(), data_dir);

  for (const auto& [name, split] : m.splits) {
    for (const auto& shard : split.shards) {
      int64_t size = 0;
      if (!StatFile(shard.path, &size)) {
        DataError(shard.path + " is missing (listed in " + path + "); restore it or " + kRebuild);
      }
      if (size != shard.num_bytes) {
        DataError(shard.path + " is " + std::to_string(size) + " bytes but " + path + " says " +
                  std::to_string(shard.num_bytes) +
                  ": the shard changed after the build; restore it or " + kRebuild);
      }
      if (!StatFile(shard.index_path, &size)) {
        DataError(shard.index_path + " is missing (the index of " + shard.file + "); " + kRebuild +
                  " (or regenerate it with DALI's tfrecord2idx)");
      }
    }
  }
  return m;
}

}  // namespace retrain::trainer
