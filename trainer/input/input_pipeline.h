// The trainer's input pipeline (REFERENCE.md section 2, image_processing.py):
// shards -> shuffle buffer of encoded records -> decode + augment on N
// threads -> batches of CHW floats, deterministic and resumable.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "trainer/input/dataset_manifest.h"
#include "trainer/input/preprocess.h"
#include "trainer/input/record_source.h"
#include "trainer/spec/memory_plan.h"
#include "trainer/spec/training_knobs.h"

namespace retrain::trainer {

// One image of a batch left encoded (Options::device_decode): the JPEG, what
// to do with it, and where it came from for errors ("<shard>: record at
// offset N").
struct EncodedImage {
  std::string jpeg;
  PreprocessPlan plan;
  std::string where;
};

// One batch, ready for torch::from_blob({size, 3, height, width}).
struct Batch {
  std::vector<float> images;    // size x 3 x height x width (NCHW), values in [-1, 1];
                                // empty under Options::device_decode
  std::vector<EncodedImage> encoded;  // Options::device_decode: size entries
  std::vector<int64_t> labels;  // size entries: image/class/label
  int size = 0;                 // images in this batch (batch_size but for the
                                // last batch of an evaluation pass or skipped images)
  int height = 0;
  int width = 0;
  int64_t first_sequence = 0;  // stream sequence number of the batch's first record
};

// Produces batches from a split of a dataset built by `retrain build-dataset`.
//
// Training (Options::train): the shard order is shuffled every epoch,
// `num_readers` shards are read interleaved, records pass through a shuffle
// buffer of the reference's size (input_queue_memory_factor), each image is
// decoded (only its random crop, at a reduced DCT scale where possible) and
// distorted as distort_image() does, and the input repeats forever.
// Evaluation: shards in manifest order, no shuffle buffer, central crop, one
// pass; the last batch may be short.
//
// Determinism: every record handed out gets a sequence number; its
// augmentation draws come from (seed, rank, sequence number), the reference's
// per-thread choices (resize method thread_id % 4, colour order
// thread_id % 2) from sequence number % 4, and batches are assembled in
// sequence order. So the same options and seed give the same batches, bit for
// bit, whatever num_preprocess_threads is and however the threads are
// scheduled. (The reference's thread_id ran over num_preprocess_threads, a
// multiple of 4; sequence % 4 gives the same mix of methods and orders.)
//
// Resume: position() is where the pipeline stands after the last batch
// Next() returned: the record source's place, the sequence number and the
// ids of the records in the shuffle buffer. A new pipeline with the same
// options that Seek()s to it produces exactly the batches the old one would
// have produced next (the buffered records are re-read by id).
//
// Memory is bounded: the shuffle buffer (capacity records), at most
// prefetch_batches batches being decoded or waiting, their records, and one
// decode buffer per thread. See PlanInputMemory().
//
// Threads: one reader thread (reads records, runs the shuffle buffer) and
// num_preprocess_threads decode threads, started by the first Next() after
// construction or Seek(). Next(), Seek(), position() and records_per_epoch()
// are for one consumer thread; Stop() and stats() may be called from any
// thread. The destructor stops and joins every thread.
class InputPipeline {
 public:
  // Flags map onto these one to one (the reference's names where it has them).
  // The settings that decide the pipeline's memory, with their defaults,
  // are InputMemoryOptions' (trainer/spec/memory_plan.h: split, batch_size,
  // image_size, num_preprocess_threads, input_queue_memory_factor, train,
  // world_size, prefetch_batches, device_decode); the coordinator plans a
  // job's memory from them without this pipeline.
  struct Options : InputMemoryOptions {
    // A finished build's --output_directory (dataset.json, shards, index/).
    std::string data_dir;
    // --num_readers: shards read interleaved. Part of the record order.
    int num_readers = spec::kDefaultNumReaders;
    // Training only: false skips the reference's distortions (crop, flip,
    // colour) and resizes the whole image, for data such as digits whose
    // label a crop or a flip can change.
    bool distort = true;
    uint64_t seed = 0;
    // This process's rank among world_size (see RecordSource).
    int rank = 0;
    // Decode crops at 1/2, 1/4 or 1/8 scale when they stay at least
    // image_size (false: always full scale, as TensorFlow does).
    bool dct_scaling = true;
    // Skip and count bad records (framing) and images (example, JPEG, label)
    // instead of failing; a batch that had a bad image comes out shorter.
    bool skip_corrupt_records = false;
    // device_decode (InputMemoryOptions) leaves the decoding to the consumer
    // (a GPU, nn/device_preprocess.h): the threads parse each example, read
    // its JPEG header and draw its distortion with the same draws as on the
    // CPU, and batches carry `encoded` instead of `images`. Same records,
    // order and positions.
  };

  struct Position {
    RecordSource::Position source;   // the next record the reader takes
    int64_t sequence = 0;            // records handed to decoding so far
    std::vector<RecordId> buffered;  // the shuffle buffer's records, in buffer order

    bool operator==(const Position& o) const {
      return source == o.source && sequence == o.sequence && buffered == o.buffered;
    }
    // A compact JSON text for checkpoints; FromJson throws
    // TrainerError(kData) for text it cannot read.
    std::string ToJson() const;
    static Position FromJson(const std::string& text);
  };

  struct Stats {
    int64_t records_read = 0;     // from the shards, shuffle-buffer refills included
    int64_t skipped_records = 0;  // bad TFRecord framing (skip_corrupt_records)
    int64_t skipped_images = 0;   // bad examples or images (skip_corrupt_records)
    int64_t batches = 0;          // returned by Next()
    int64_t consumer_waits = 0;   // Next() calls that found no batch ready
  };

  // Loads the dataset manifest of options.data_dir and the split's index
  // files, and checks the options. Starts no thread. Throws TrainerError
  // (kData for the dataset, kConfig for options).
  explicit InputPipeline(const Options& options);
  InputPipeline(const Options& options, DatasetManifest manifest);
  ~InputPipeline();
  InputPipeline(const InputPipeline&) = delete;
  InputPipeline& operator=(const InputPipeline&) = delete;

  // The next batch; false at the end of an evaluation pass or after Stop().
  // Rethrows the TrainerError of a failed reader or decode thread (the
  // pipeline is then stopped; Seek() restarts it).
  bool Next(Batch* out);

  Position position() const { return position_; }
  // Continues from `position` (a position() of a pipeline with the same
  // options and dataset). Throws TrainerError(kConfig) for a position that
  // cannot belong to these options (e.g. more buffered records than the
  // shuffle buffer holds).
  void Seek(const Position& position);

  // Stops the threads; Next() then returns false. Idempotent; any thread.
  void Stop();

  const DatasetManifest& manifest() const { return manifest_; }
  const Options& options() const { return options_; }
  // Records this rank sees per epoch (the split's records / world_size).
  int64_t records_per_epoch() const { return source_->records_per_epoch(); }
  Stats stats() const;

 private:
  struct WorkItem {
    int64_t sequence;
    Record record;
  };
  // The batch `b` while in flight lives in slots_[b % prefetch_batches].
  struct Slot {
    std::vector<float> images;
    std::vector<EncodedImage> encoded;
    std::vector<int64_t> labels;
    std::vector<char> ok;
    int expected = 0;       // records in this batch (batch_size unless the last)
    int done = 0;           // records decoded (or failed and skipped)
    Position end_position;  // where the pipeline stands after this batch
  };

  void Init();
  void Start();
  void StopAndJoin();
  void ReaderLoop();
  void DecodeLoop();
  // Records the error of the record with `sequence` (-1: not tied to a
  // record) and stops the reader.
  void Fail(std::exception_ptr error, int64_t sequence);

  // Constant after construction.
  const Options options_;
  DatasetManifest manifest_;
  const SplitInfo* split_ = nullptr;
  std::unique_ptr<RecordSource> source_;  // used by the reader thread while running
  int64_t image_floats_ = 0;              // 3 * image_size^2

  // Consumer-thread state.
  Position position_;  // after the last batch returned (the start while not running)
  Position start_;     // where the running threads started; read-only while running
  bool running_ = false;
  std::vector<std::thread> threads_;
  std::mutex lifecycle_mu_;  // serialises Stop() and joining

  std::atomic<bool> stop_requested_{false};  // Stop(): every thread ends
  std::atomic<bool> reader_stop_{false};     // an error: the reader ends

  // Protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // decode threads: work_ non-empty or the end
  std::condition_variable space_cv_;  // reader: a slot came free
  std::condition_variable ready_cv_;  // consumer: a batch completed, the end, an error
  std::deque<WorkItem> work_;
  std::vector<Slot> slots_;
  int64_t next_batch_ = 0;     // the batch Next() returns next
  int64_t end_sequence_ = -1;  // records in the stream, once the reader has ended
  bool reader_done_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;    // the failure of the earliest record that failed
  int64_t error_sequence_ = 0;  // its sequence number
  Stats stats_;
};

}  // namespace retrain::trainer
