#include "dataset/manifest.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dataset/layout.h"

namespace retrain::dataset {
namespace {

using nlohmann::json;
constexpr const char* kRebuild = "rebuild the dataset with retrain build-dataset";

// --- writing ---

json SplitJson(const SplitInfo& split) {
  json shards = json::array();
  for (const auto& s : split.shards) {
    shards.push_back({{"file", s.file},
                      {"num_records", s.num_records},
                      {"num_bytes", s.num_bytes},
                      {"sha256", s.sha256},
                      {"index", s.index.empty() ? IndexFileFor(s.file) : s.index}});
  }
  json counts = json::array();
  for (const auto& c : split.class_counts) {
    counts.push_back({{"id", c.id}, {"name", c.name}, {"count", c.count}});
  }
  return {{"num_records", split.num_records},
          {"num_shards", split.shards.size()},
          {"num_converted", split.num_converted},
          {"shards", shards},
          {"class_counts", counts}};
}

// --- reading ---

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

// Field access that records the first failure, naming the manifest and the
// field; a failed access returns an empty value and the caller stops.
class Reader {
 public:
  explicit Reader(std::string manifest_path) : path_(std::move(manifest_path)) {}

  const json* Get(const json& object, const char* key, const std::string& where) {
    if (!object.is_object()) {
      Fail(where + " is not an object");
      return nullptr;
    }
    auto it = object.find(key);
    if (it == object.end()) {
      Fail(where + " has no \"" + key + "\"");
      return nullptr;
    }
    return &*it;
  }
  bool Int(const json& object, const char* key, const std::string& where, int64_t* out) {
    const json* v = Get(object, key, where);
    if (v == nullptr) return false;
    if (!v->is_number_integer()) return Fail(where + "." + key + " is not an integer");
    *out = v->get<int64_t>();
    if (*out < 0) return Fail(where + "." + key + " is negative");
    return true;
  }
  bool String(const json& object, const char* key, const std::string& where, std::string* out) {
    const json* v = Get(object, key, where);
    if (v == nullptr) return false;
    if (!v->is_string()) return Fail(where + "." + key + " is not a string");
    *out = v->get<std::string>();
    return true;
  }
  bool Bool(const json& object, const char* key, const std::string& where, bool* out) {
    const json* v = Get(object, key, where);
    if (v == nullptr) return false;
    if (!v->is_boolean()) return Fail(where + "." + key + " is not a boolean");
    *out = v->get<bool>();
    return true;
  }
  const json* Array(const json& object, const char* key, const std::string& where) {
    const json* v = Get(object, key, where);
    if (v != nullptr && !v->is_array()) {
      Fail(where + "." + key + " is not an array");
      return nullptr;
    }
    return v;
  }
  // The same accessors for fields older manifests may lack: absent is fine.
  template <typename T, typename Access>
  bool Optional(const json& object, const char* key, const std::string& where, T* out,
                Access access) {
    return !object.is_object() || !object.contains(key) || (this->*access)(object, key, where, out);
  }

  // Always false, so that callers can `return Fail(...)`.
  bool Fail(const std::string& what) {
    if (error_.empty()) error_ = path_ + ": corrupt dataset manifest: " + what + "; " + kRebuild;
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  std::string path_;
  std::string error_;
};

bool ParseShard(Reader& r, const json& j, const std::string& where, const std::string& data_dir,
                ShardInfo* shard) {
  if (!r.String(j, "file", where, &shard->file)) return false;
  if (!IsSafeRelativePath(shard->file) || shard->file.find('/') != std::string::npos) {
    return r.Fail(where + ".file \"" + shard->file + "\" is not a file name");
  }
  if (!r.String(j, "index", where, &shard->index)) return false;
  if (!IsSafeRelativePath(shard->index)) {
    return r.Fail(where + ".index \"" + shard->index + "\" leaves the directory");
  }
  if (!r.Int(j, "num_records", where, &shard->num_records) ||
      !r.Int(j, "num_bytes", where, &shard->num_bytes) ||
      !r.Optional(j, "sha256", where, &shard->sha256, &Reader::String)) {
    return false;
  }
  shard->path = JoinPath(data_dir, shard->file);
  shard->index_path = JoinPath(data_dir, shard->index);
  return true;
}

bool ParseSplit(Reader& r, const json& j, const std::string& name, const std::string& data_dir,
                SplitInfo* split) {
  const std::string where = "splits." + name;
  split->name = name;
  if (!r.Int(j, "num_records", where, &split->num_records)) return false;
  const json* shards = r.Array(j, "shards", where);
  if (shards == nullptr) return false;
  int64_t total = 0;
  for (size_t i = 0; i < shards->size(); ++i) {
    ShardInfo& shard = split->shards.emplace_back();
    if (!ParseShard(r, (*shards)[i], where + ".shards[" + std::to_string(i) + "]", data_dir,
                    &shard)) {
      return false;
    }
    total += shard.num_records;
  }
  if (total != split->num_records) {
    return r.Fail(where + ".num_records is " + std::to_string(split->num_records) +
                  " but its shards hold " + std::to_string(total));
  }
  if (!r.Optional(j, "num_converted", where, &split->num_converted, &Reader::Int)) return false;
  if (j.contains("class_counts")) {
    const json* counts = r.Array(j, "class_counts", where);
    if (counts == nullptr) return false;
    for (size_t i = 0; i < counts->size(); ++i) {
      const std::string cw = where + ".class_counts[" + std::to_string(i) + "]";
      ClassCount& c = split->class_counts.emplace_back();
      if (!r.Int((*counts)[i], "id", cw, &c.id) || !r.String((*counts)[i], "name", cw, &c.name) ||
          !r.Int((*counts)[i], "count", cw, &c.count)) {
        return false;
      }
    }
  }
  return true;
}

// The count and list file of skipped files or duplicates: the count
// defaults to the entries in the manifest, the file must be a bare name in
// the data directory.
bool ParseListFile(Reader& r, const json& j, const char* count_key, const char* file_key,
                   int64_t listed, int64_t* count, std::string* file) {
  *count = listed;
  if (!r.Optional(j, count_key, "manifest", count, &Reader::Int) ||
      !r.Optional(j, file_key, "manifest", file, &Reader::String)) {
    return false;
  }
  if (*count < listed) {
    return r.Fail(std::string(count_key) + " is " + std::to_string(*count) + " but " +
                  std::to_string(listed) + " are listed");
  }
  if (file->find('/') != std::string::npos || *file == "." || *file == "..") {
    return r.Fail(std::string(file_key) + " '" + *file + "' is not a file name");
  }
  return true;
}

bool ParseSkipped(Reader& r, const json& j, Manifest* m) {
  if (!j.contains("skipped")) return true;
  const json* skipped = r.Array(j, "skipped", "manifest");
  if (skipped == nullptr) return false;
  for (size_t i = 0; i < skipped->size(); ++i) {
    const std::string sw = "skipped[" + std::to_string(i) + "]";
    const json& e = (*skipped)[i];
    SkippedFile& s = m->skipped.emplace_back();
    if (!r.String(e, "path", sw, &s.path) ||
        !r.Optional(e, "split", sw, &s.split, &Reader::String) ||
        !r.Optional(e, "reason", sw, &s.reason, &Reader::String) ||
        !r.Optional(e, "detail", sw, &s.detail, &Reader::String)) {
      return false;
    }
  }
  return ParseListFile(r, j, "num_skipped", "skipped_file",
                       static_cast<int64_t>(m->skipped.size()), &m->num_skipped, &m->skipped_file);
}

bool ParseDuplicates(Reader& r, const json& j, Manifest* m) {
  if (!j.contains("duplicates")) return true;
  const json* groups = r.Array(j, "duplicates", "manifest");
  if (groups == nullptr) return false;
  for (size_t i = 0; i < groups->size(); ++i) {
    const json& g = (*groups)[i];
    auto& paths = m->duplicates.emplace_back();
    if (!g.is_array()) return r.Fail("duplicates[" + std::to_string(i) + "] is not an array");
    for (const json& p : g) {
      if (!p.is_string()) return r.Fail("duplicates[" + std::to_string(i) + "] holds a non-string");
      paths.push_back(p.get<std::string>());
    }
  }
  return ParseListFile(r, j, "num_duplicate_groups", "duplicates_file",
                       static_cast<int64_t>(m->duplicates.size()), &m->num_duplicate_groups,
                       &m->duplicates_file);
}

bool ParseOptions(Reader& r, const json& j, Manifest* m) {
  if (j.contains("seed")) {
    const json& seed = j["seed"];
    if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0)) {
      return r.Fail("seed is not a non-negative integer");
    }
    m->seed = seed.get<uint64_t>();
  }
  if (!j.contains("options")) return true;
  const json* o = r.Get(j, "options", "manifest");
  BuildOptions& b = m->options;
  const std::string w = "options";
  using R = Reader;
  return o != nullptr && r.Optional(*o, "train_directory", w, &b.train_directory, &R::String) &&
         r.Optional(*o, "validation_directory", w, &b.validation_directory, &R::String) &&
         r.Optional(*o, "output_directory", w, &b.output_directory, &R::String) &&
         r.Optional(*o, "labels_file", w, &b.labels_file, &R::String) &&
         r.Optional(*o, "train_shards", w, &b.train_shards, &R::Int) &&
         r.Optional(*o, "validation_shards", w, &b.validation_shards, &R::Int) &&
         r.Optional(*o, "jpeg_quality", w, &b.jpeg_quality, &R::Int) &&
         r.Optional(*o, "max_pixels", w, &b.max_pixels, &R::Int) &&
         r.Optional(*o, "background_class", w, &b.background_class, &R::Bool) &&
         r.Optional(*o, "verify", w, &b.verify, &R::String);
}

bool ParseLabels(Reader& r, const json& j, Manifest* m) {
  const json* labels = r.Array(j, "labels", "manifest");
  if (labels == nullptr) return false;
  for (size_t i = 0; i < labels->size(); ++i) {
    const std::string lw = "labels[" + std::to_string(i) + "]";
    LabelInfo& l = m->labels.emplace_back();
    if (!r.Int((*labels)[i], "id", lw, &l.id) || !r.String((*labels)[i], "name", lw, &l.name)) {
      return false;
    }
    if (l.id >= m->num_classes) {
      return r.Fail(lw + ".id " + std::to_string(l.id) + " is not below num_classes " +
                    std::to_string(m->num_classes));
    }
  }
  return true;
}

// shard_format: absent in manifests written before WebDataset shards
// (TFRecord), and "webdataset" exactly when the format is version 2.
bool ParseShardFormatField(Reader& r, const json& j, Manifest* m) {
  std::string name = ShardFormatName(ShardFormat::kTfRecord);
  if (!r.Optional(j, "shard_format", "manifest", &name, &Reader::String)) return false;
  if (!ParseShardFormat(name, &m->shard_format)) {
    return r.Fail("shard_format \"" + name + "\" is none of " + ShardFormatNames());
  }
  if (m->format != ManifestFormatFor(m->shard_format)) {
    return r.Fail("shard_format \"" + name + "\" does not go with format \"" + m->format + "\"");
  }
  return true;
}

bool StatFile(const std::string& path, int64_t* size) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  *size = static_cast<int64_t>(st.st_size);
  return true;
}

bool Failed(std::string* error, std::string message) {
  *error = std::move(message);
  return false;
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

const SplitInfo* Manifest::FindSplit(const std::string& name) const {
  auto it = splits.find(name);
  return it == splits.end() ? nullptr : &it->second;
}

std::string NoSplitError(const std::string& data_dir, const std::string& split) {
  return "the dataset in " + data_dir + " has no " + split + " split (it was built without --" +
         split + "_directory); build it with that directory or pick another split";
}

namespace {

json SkippedJson(const SkippedFile& s) {
  return {{"path", s.path}, {"split", s.split}, {"reason", s.reason}, {"detail", s.detail}};
}

}  // namespace

std::string SkippedLine(const SkippedFile& file) {
  return SkippedJson(file).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string DuplicatesLine(const std::vector<std::string>& group) {
  return json(group).dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

const char* ManifestFormatFor(ShardFormat shard_format) {
  return shard_format == ShardFormat::kWebDataset ? kWebDatasetFormat : kFormat;
}

std::string ManifestJson(const Manifest& m) {
  json labels = json::array();
  for (const auto& l : m.labels) labels.push_back({{"id", l.id}, {"name", l.name}});
  json splits = json::object();
  for (const auto& [name, split] : m.splits) splits[name] = SplitJson(split);
  json skipped = json::array();
  for (const auto& s : m.skipped) skipped.push_back(SkippedJson(s));
  json duplicates = json::array();
  for (const auto& group : m.duplicates) duplicates.push_back(json(group));
  const BuildOptions& o = m.options;
  json manifest = {
      {"format", ManifestFormatFor(m.shard_format)},
      {"shard_format", ShardFormatName(m.shard_format)},
      {"job_id", m.job_id},
      {"created", m.created},
      {"num_classes", m.num_classes},
      {"background_class", m.background_class},
      {"labels", labels},
      {"splits", splits},
      {"skipped", skipped},
      {"duplicates", duplicates},
      {"num_skipped", std::max<int64_t>(m.num_skipped, static_cast<int64_t>(m.skipped.size()))},
      {"num_duplicate_groups",
       std::max<int64_t>(m.num_duplicate_groups, static_cast<int64_t>(m.duplicates.size()))},
      {"skipped_file", m.skipped_file},
      {"duplicates_file", m.duplicates_file},
      {"seed", m.seed},
      {"options",
       {{"train_directory", o.train_directory},
        {"validation_directory", o.validation_directory},
        {"output_directory", o.output_directory},
        {"labels_file", o.labels_file},
        {"train_shards", o.train_shards},
        {"validation_shards", o.validation_shards},
        {"jpeg_quality", o.jpeg_quality},
        {"max_pixels", o.max_pixels},
        {"background_class", o.background_class},
        {"verify", o.verify}}},
  };
  return manifest.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

bool ParseManifest(std::string_view json_text, const std::string& data_dir, Manifest* out,
                   std::string* error) {
  const std::string path = JoinPath(data_dir, kManifestFile);
  Reader r(path);
  Manifest m;
  m.data_dir = data_dir;
  const json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  int64_t num_classes = 0;
  bool ok = false;
  if (j.is_discarded()) {
    r.Fail("not valid JSON");
  } else if (!j.is_object()) {
    r.Fail("not a JSON object");
  } else if (!r.String(j, "format", "manifest", &m.format)) {
  } else if (m.format.rfind(kFormatPrefix, 0) != 0) {
    r.Fail("format \"" + m.format + "\" is not a retrain dataset");
  } else if (m.format != kFormat && m.format != kWebDatasetFormat) {
    return Failed(error, path + ": dataset format \"" + m.format +
                             "\" is newer than this reader reads (" + kWebDatasetFormat +
                             "); use a newer retrain or " + kRebuild);
  } else if (ParseShardFormatField(r, j, &m) && r.Int(j, "num_classes", "manifest", &num_classes) &&
             r.Bool(j, "background_class", "manifest", &m.background_class)) {
    m.num_classes = static_cast<int>(num_classes);
    ok = ParseLabels(r, j, &m);
  }
  if (ok && m.num_classes < 1) ok = r.Fail("num_classes is " + std::to_string(m.num_classes));
  const json* splits = ok ? r.Get(j, "splits", "manifest") : nullptr;
  if (ok && splits != nullptr && !splits->is_object()) ok = r.Fail("splits is not an object");
  ok = ok && splits != nullptr;
  for (const char* name : {"train", "validation"}) {
    if (!ok || !splits->contains(name)) continue;
    ok = ParseSplit(r, (*splits)[name], name, data_dir, &m.splits[name]);
  }
  ok = ok && r.Optional(j, "job_id", "manifest", &m.job_id, &Reader::String) &&
       r.Optional(j, "created", "manifest", &m.created, &Reader::String) &&
       ParseSkipped(r, j, &m) && ParseDuplicates(r, j, &m) && ParseOptions(r, j, &m);
  if (!ok) return Failed(error, r.error());
  *out = std::move(m);
  return true;
}

bool ReadManifest(const std::string& data_dir, Manifest* manifest, std::string* error) {
  const std::string path = JoinPath(data_dir, kManifestFile);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    struct stat st;
    if (::stat(data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Failed(error, "dataset directory " + data_dir +
                               " does not exist; pass the --output_directory of a finished "
                               "retrain build-dataset run");
    }
    return Failed(error, path + " is missing: " + data_dir +
                             " holds no finished dataset; run retrain build-dataset first (the "
                             "manifest is written last, so a build that did not finish leaves "
                             "none)");
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Failed(error, path + ": cannot read the dataset manifest");
  return ParseManifest(text.str(), data_dir, manifest, error);
}

bool LoadManifest(const std::string& data_dir, Manifest* manifest, std::string* error) {
  Manifest m;
  if (!ReadManifest(data_dir, &m, error)) return false;
  const std::string path = JoinPath(data_dir, kManifestFile);
  for (const auto& [name, split] : m.splits) {
    for (const auto& shard : split.shards) {
      int64_t size = 0;
      if (!StatFile(shard.path, &size)) {
        return Failed(error, shard.path + " is missing (listed in " + path + "); restore it or " +
                                 kRebuild);
      }
      if (size != shard.num_bytes) {
        return Failed(error, shard.path + " is " + std::to_string(size) + " bytes but " + path +
                                 " says " + std::to_string(shard.num_bytes) +
                                 ": the shard changed after the build; restore it or " + kRebuild);
      }
      if (!StatFile(shard.index_path, &size)) {
        return Failed(error, shard.index_path + " is missing (the index of " + shard.file +
                                 "); " + kRebuild + " (or regenerate it with DALI's tfrecord2idx)");
      }
    }
  }
  *manifest = std::move(m);
  return true;
}

}  // namespace retrain::dataset
