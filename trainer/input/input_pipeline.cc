#include "trainer/input/input_pipeline.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/logging.h"
#include "dataset/webdataset.h"
#include "trainer/input/example_fields.h"
#include "trainer/input/preprocess.h"
#include "trainer/input/random.h"
#include "trainer/input/shuffle_buffer.h"
#include "trainer/trainer_error.h"

namespace retrain::trainer {
namespace {

constexpr int kVariants = 4;  // the reference's thread_id % 4 choices

[[noreturn]] void ConfigError(const std::string& message) {
  throw TrainerError(TrainerError::Kind::kConfig, message);
}

void CheckOptions(const InputPipeline::Options& o) {
  auto at_least = [](const char* flag, int64_t value, int64_t min) {
    if (value < min) {
      ConfigError(std::string("--") + flag + " must be at least " + std::to_string(min) + " (got " +
                  std::to_string(value) + ")");
    }
  };
  at_least("batch_size", o.batch_size, 1);
  at_least("image_size", o.image_size, 1);
  at_least("num_preprocess_threads", o.num_preprocess_threads, 1);
  at_least("num_readers", o.num_readers, 1);
  at_least("input_queue_memory_factor", o.input_queue_memory_factor, 0);
  at_least("prefetch_batches", o.prefetch_batches, 1);
  if (o.image_size > 8192) ConfigError("--image_size must be at most 8192");
  if (o.input_queue_memory_factor > 1024 * 1024) {
    ConfigError("--input_queue_memory_factor is far too large");
  }
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    ConfigError("rank " + std::to_string(o.rank) + " is outside [0, world_size " +
                std::to_string(o.world_size) + ")");
  }
  if (o.split != "train" && o.split != "validation") {
    ConfigError("split must be train or validation (got \"" + o.split + "\")");
  }
}

std::exception_ptr OutOfMemory() {
  return std::make_exception_ptr(
      TrainerError(TrainerError::Kind::kOutOfMemory,
                   "out of host memory in the input pipeline: lower --input_queue_memory_factor, "
                   "--batch_size or --num_preprocess_threads"));
}

bool UsesShuffleBuffer(const InputPipeline::Options& o) {
  return o.train && o.input_queue_memory_factor > 0;
}

// The two fields the trainer needs, from a tf.Example or a WebDataset
// sample, or a TrainerError(kData).
TrainingExampleFields ParseExample(const Record& record) {
  TrainingExampleFields fields;
  std::string error;
  bool parsed = false;
  if (record.format == dataset::ShardFormat::kWebDataset) {
    dataset::SampleView sample;
    parsed = dataset::ParseSample(record.data, record.offset, &sample, nullptr, &error);
    fields.encoded = sample.jpeg;
    fields.label = sample.label;
  } else {
    parsed = ParseTrainingExample(record.data, &fields, &error);
  }
  if (!parsed) {
    throw TrainerError(TrainerError::Kind::kData,
                       record.Where() + ": " + error + "; rebuild the dataset with retrain build-dataset");
  }
  return fields;
}

}  // namespace

// --- Position ------------------------------------------------------------------

std::string InputPipeline::Position::ToJson() const {
  nlohmann::json buffer = nlohmann::json::array();
  for (const auto& id : buffered) buffer.push_back({id.shard, id.index});
  nlohmann::json j = {{"epoch", source.epoch},
                      {"index", source.index},
                      {"sequence", sequence},
                      {"buffered", std::move(buffer)}};
  return j.dump();
}

InputPipeline::Position InputPipeline::Position::FromJson(const std::string& text) {
  auto fail = [](const std::string& why) -> Position {
    throw TrainerError(TrainerError::Kind::kData,
                       "unreadable input position in the checkpoint (" + why +
                           "); resume from another checkpoint or start afresh");
  };
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("not a JSON object");
  Position p;
  try {
    p.source.epoch = j.at("epoch").get<int64_t>();
    p.source.index = j.at("index").get<int64_t>();
    p.sequence = j.at("sequence").get<int64_t>();
    for (const auto& e : j.at("buffered")) {
      p.buffered.push_back({e.at(0).get<int32_t>(), e.at(1).get<int32_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return fail(e.what());
  }
  if (p.source.epoch < 0 || p.source.index < 0 || p.sequence < 0) {
    return fail("negative counts");
  }
  return p;
}

// --- construction ----------------------------------------------------------------

InputPipeline::InputPipeline(const Options& options) : options_(options) {
  CheckOptions(options_);
  manifest_ = LoadDatasetManifest(options_.data_dir);
  Init();
}

InputPipeline::InputPipeline(const Options& options, DatasetManifest manifest)
    : options_(options), manifest_(std::move(manifest)) {
  CheckOptions(options_);
  Init();
}

void InputPipeline::Init() {
  split_ = &manifest_.split(options_.split);
  RecordSource::Options so;
  so.seed = options_.seed;
  so.shuffle_shards = options_.train;
  so.repeat = options_.train;
  so.num_readers = options_.num_readers;
  so.rank = options_.rank;
  so.world_size = options_.world_size;
  so.skip_corrupt = options_.skip_corrupt_records;
  so.shard_format = manifest_.shard_format;
  source_ = std::make_unique<RecordSource>(*split_, so);
  image_floats_ = 3 * static_cast<int64_t>(options_.image_size) * options_.image_size;
}

InputPipeline::~InputPipeline() { StopAndJoin(); }

// --- lifecycle -------------------------------------------------------------------

void InputPipeline::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_.clear();
    slots_.assign(static_cast<size_t>(options_.prefetch_batches), Slot());
    for (auto& slot : slots_) {
      if (options_.device_decode) {
        slot.encoded.resize(static_cast<size_t>(options_.batch_size));
      } else {
        slot.images.resize(static_cast<size_t>(options_.batch_size * image_floats_));
      }
      slot.labels.assign(static_cast<size_t>(options_.batch_size), 0);
      slot.ok.assign(static_cast<size_t>(options_.batch_size), 0);
      slot.expected = options_.batch_size;
    }
    start_ = position_;
    next_batch_ = start_.sequence / options_.batch_size;
    end_sequence_ = -1;
    reader_done_ = false;
    stopping_ = false;
    error_ = nullptr;
    error_sequence_ = 0;
  }
  stop_requested_ = false;
  reader_stop_ = false;
  running_ = true;
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  threads_.emplace_back(&InputPipeline::ReaderLoop, this);
  for (int i = 0; i < options_.num_preprocess_threads; ++i) {
    threads_.emplace_back(&InputPipeline::DecodeLoop, this);
  }
}

void InputPipeline::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_requested_ = true;
  work_cv_.notify_all();
  space_cv_.notify_all();
  ready_cv_.notify_all();
}

void InputPipeline::StopAndJoin() {
  Stop();
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void InputPipeline::Seek(const Position& position) {
  if (position.sequence % options_.batch_size != 0) {
    ConfigError("the input position (record " + std::to_string(position.sequence) +
                ") is not at a batch boundary of --batch_size " +
                std::to_string(options_.batch_size) +
                ": resume with the --batch_size the checkpoint was written with");
  }
  if (!UsesShuffleBuffer(options_) && !position.buffered.empty()) {
    ConfigError(
        "the input position holds a shuffle buffer but this pipeline has none: resume "
        "with the --input_queue_memory_factor the checkpoint was written with");
  }
  if (UsesShuffleBuffer(options_)) {
    const auto size =
        ReferenceShuffleBufferSize(options_.input_queue_memory_factor, options_.batch_size);
    if (static_cast<int64_t>(position.buffered.size()) > size.capacity) {
      ConfigError("the input position holds " + std::to_string(position.buffered.size()) +
                  " buffered records, more than this shuffle buffer's " +
                  std::to_string(size.capacity) +
                  ": resume with the --input_queue_memory_factor and --batch_size the "
                  "checkpoint was written with");
    }
  }
  StopAndJoin();
  source_->Seek(position.source);  // checks it against the split
  position_ = position;
  running_ = false;
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = false;
  error_ = nullptr;
}

void InputPipeline::Fail(std::exception_ptr error, int64_t sequence) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_ || sequence < error_sequence_) {
      error_ = error;
      error_sequence_ = sequence;
    }
    // The reader stops; decode threads finish the records already handed
    // out, so that every batch before the failing record still comes out.
    reader_stop_ = true;
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  ready_cv_.notify_all();
}

InputPipeline::Stats InputPipeline::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

// --- reader thread ---------------------------------------------------------------

void InputPipeline::ReaderLoop() {
  int64_t sequence = start_.sequence;
  try {
    const int64_t batch = options_.batch_size;
    const int64_t prefetch = options_.prefetch_batches;
    std::unique_ptr<ShuffleBuffer> buffer;
    if (UsesShuffleBuffer(options_)) {
      buffer = std::make_unique<ShuffleBuffer>(
          ReferenceShuffleBufferSize(options_.input_queue_memory_factor, options_.batch_size),
          options_.seed, static_cast<uint64_t>(options_.rank));
      for (const RecordId& id : start_.buffered) {
        if (stop_requested_ || reader_stop_) return;
        Record record;
        source_->Read(id, &record);
        buffer->Push(std::move(record));
      }
      buffer->set_pops(sequence);
    }
    source_->Seek(start_.source);
    const int64_t skipped_before = source_->num_skipped();
    int64_t reads = 0;
    bool input_ended = false;

    for (;;) {
      Record record;
      if (buffer) {
        while (!buffer->full() && !input_ended) {
          if (stop_requested_ || reader_stop_) return;
          Record next;
          if (source_->Next(&next)) {
            buffer->Push(std::move(next));
            ++reads;
          } else {
            input_ended = true;
          }
        }
        if (!buffer->CanPop(input_ended)) break;
        record = buffer->Pop();
      } else {
        if (stop_requested_ || reader_stop_) return;
        if (!source_->Next(&record)) break;
        ++reads;
      }

      // Where the pipeline stands once this record is handed out: kept with
      // the batch that this record completes.
      const bool completes_batch = sequence % batch == batch - 1;
      Position after;
      if (completes_batch) {
        after.source = source_->position();
        after.sequence = sequence + 1;
        if (buffer) after.buffered = buffer->ids();
      }

      const int64_t b = sequence / batch;
      std::unique_lock<std::mutex> lock(mu_);
      space_cv_.wait(lock, [&] { return stopping_ || reader_stop_ || b < next_batch_ + prefetch; });
      if (stopping_ || reader_stop_) return;
      if (completes_batch) slots_[b % prefetch].end_position = std::move(after);
      work_.push_back({sequence, std::move(record)});
      stats_.records_read += reads;
      stats_.skipped_records = source_->num_skipped() - skipped_before;
      reads = 0;
      lock.unlock();
      work_cv_.notify_one();
      ++sequence;
    }

    // A finite input (evaluation) ended: the last batch may be short.
    Position end;
    end.source = source_->position();
    end.sequence = sequence;
    std::lock_guard<std::mutex> lock(mu_);
    stats_.records_read += reads;
    end_sequence_ = sequence;
    reader_done_ = true;
    if (sequence % batch != 0) {
      Slot& last = slots_[(sequence / batch) % prefetch];
      last.expected = static_cast<int>(sequence % batch);
      last.end_position = std::move(end);
    }
    work_cv_.notify_all();
    ready_cv_.notify_all();
  } catch (const std::bad_alloc&) {
    Fail(OutOfMemory(), sequence);
  } catch (...) {
    Fail(std::current_exception(), sequence);
  }
}

// --- decode threads --------------------------------------------------------------

void InputPipeline::DecodeLoop() {
  std::unique_ptr<ImagePreprocessor> preprocessor;
  try {
    ImagePreprocessor::Options po;
    po.image_size = options_.image_size;
    po.dct_scaling = options_.dct_scaling;
    if (options_.train && !options_.distort) po.eval_central_fraction = 1.0f;
    preprocessor = std::make_unique<ImagePreprocessor>(po);
  } catch (...) {
    Fail(std::current_exception(), -1);
    return;
  }
  const int64_t batch = options_.batch_size;
  const int64_t prefetch = options_.prefetch_batches;

  for (;;) {
    WorkItem item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock,
                    [&] { return stopping_ || !work_.empty() || reader_done_ || reader_stop_; });
      if (stopping_ || work_.empty()) return;
      item = std::move(work_.front());
      work_.pop_front();
    }
    const int64_t b = item.sequence / batch;
    const auto i = static_cast<size_t>(item.sequence % batch);
    Slot& slot = slots_[b % prefetch];
    // This record's place in the slot is written by this thread only; the
    // slot's buffers are not resized while the batch is in flight.
    float* image = options_.device_decode
                       ? nullptr
                       : slot.images.data() + i * static_cast<size_t>(image_floats_);
    bool ok = true;
    int64_t label = 0;
    try {
      const TrainingExampleFields fields = ParseExample(item.record);
      label = fields.label;
      if (label < 0 || label >= manifest_.num_classes) {
        throw TrainerError(TrainerError::Kind::kData,
                           item.record.Where() + ": image/class/label " + std::to_string(label) +
                               " is outside [0, " + std::to_string(manifest_.num_classes) +
                               ") of the dataset's num_classes; rebuild the dataset with "
                               "retrain build-dataset");
      }
      const auto* data = reinterpret_cast<const uint8_t*>(fields.encoded.data());
      const bool distort = options_.train && options_.distort;
      const uint64_t seed =
          StreamSeed(options_.seed, RandomPurpose::kAugmentation,
                     static_cast<uint64_t>(options_.rank), static_cast<uint64_t>(item.sequence));
      const int variant = static_cast<int>(item.sequence % kVariants);
      if (options_.device_decode) {
        EncodedImage& e = slot.encoded[i];
        e.where = item.record.Where();
        e.plan = distort ? preprocessor->PlanTrain(data, fields.encoded.size(), seed, variant, e.where)
                         : preprocessor->PlanEval(data, fields.encoded.size(), e.where);
        e.jpeg.assign(fields.encoded.data(), fields.encoded.size());
      } else if (distort) {
        preprocessor->Train(data, fields.encoded.size(), seed, variant, image, item.record.Where());
      } else {
        preprocessor->Eval(data, fields.encoded.size(), image, item.record.Where());
      }
    } catch (const TrainerError& e) {
      if (e.kind() == TrainerError::Kind::kData && options_.skip_corrupt_records) {
        Logger("input")->warn("skipping a bad {} record: {}", options_.split, e.what());
        ok = false;
      } else {
        Fail(std::current_exception(), item.sequence);
        continue;
      }
    } catch (const std::bad_alloc&) {
      Fail(OutOfMemory(), item.sequence);
      continue;
    } catch (...) {
      Fail(std::current_exception(), item.sequence);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    slot.labels[i] = label;
    slot.ok[i] = ok ? 1 : 0;
    if (!ok) ++stats_.skipped_images;
    if (++slot.done == slot.expected) ready_cv_.notify_all();
  }
}

// --- consumer --------------------------------------------------------------------

bool InputPipeline::Next(Batch* out) {
  if (!running_) {
    if (stop_requested_) {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
    }
    Start();
  }
  const int64_t batch = options_.batch_size;
  std::unique_lock<std::mutex> lock(mu_);
  Slot& slot = slots_[next_batch_ % options_.prefetch_batches];
  auto ended = [&] { return end_sequence_ >= 0 && next_batch_ * batch >= end_sequence_; };
  auto ready = [&] { return slot.done == slot.expected; };
  // An error surfaces at the batch of the record that failed (-1: at once):
  // the batches before it are returned first, whatever the timing.
  auto failed = [&] { return error_ && error_sequence_ < (next_batch_ + 1) * batch; };
  auto wake = [&] { return failed() || stopping_ || ended() || ready(); };
  if (!wake()) {
    ++stats_.consumer_waits;
    ready_cv_.wait(lock, wake);
  }
  if (failed()) std::rethrow_exception(error_);
  if (stopping_ || ended()) return false;

  const int n = slot.expected;
  out->height = out->width = options_.image_size;
  out->first_sequence = next_batch_ * batch;
  const bool encoded = options_.device_decode;
  out->images.swap(slot.images);
  out->encoded.swap(slot.encoded);
  out->labels.assign(slot.labels.begin(), slot.labels.begin() + n);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    if (!slot.ok[i]) continue;
    if (kept != i) {
      if (encoded) {
        std::swap(out->encoded[kept], out->encoded[i]);
      } else {
        std::memmove(out->images.data() + kept * image_floats_,
                     out->images.data() + i * image_floats_, sizeof(float) * image_floats_);
      }
      out->labels[kept] = out->labels[i];
    }
    ++kept;
  }
  out->size = kept;
  out->labels.resize(static_cast<size_t>(kept));
  if (encoded) {
    out->images.clear();
    out->encoded.resize(static_cast<size_t>(kept));
    // The caller's previous entries (and their strings' buffers) serve the
    // batch that takes this slot.
    slot.encoded.resize(static_cast<size_t>(batch));
  } else {
    out->encoded.clear();
    out->images.resize(static_cast<size_t>(kept * image_floats_));
  }
  position_ = std::move(slot.end_position);

  // Recycle the caller's previous buffer for the batch that takes this slot.
  if (!encoded) slot.images.resize(static_cast<size_t>(batch * image_floats_));
  slot.end_position = Position();
  slot.done = 0;
  slot.expected = options_.batch_size;
  std::fill(slot.ok.begin(), slot.ok.end(), 0);
  ++next_batch_;
  ++stats_.batches;
  lock.unlock();
  space_cv_.notify_all();
  return true;
}

}  // namespace retrain::trainer
