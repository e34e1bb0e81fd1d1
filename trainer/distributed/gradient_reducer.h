// Averages gradients across the ranks of a job during backward, as PyTorch's
// DDP does: parameters are grouped into buckets of about `bucket_bytes`
// (in reverse order, the order backward produces their gradients); a hook
// on each parameter copies its gradient into its bucket, and a full bucket
// starts its all-reduce while backward goes on, so communication overlaps
// computation. Buckets are started strictly in bucket order, so every rank
// issues the same collectives in the same order.
//
// Use, every step: ClearGradients(); Prepare(); loss.backward(); Finish().
// After Finish() every parameter that had a gradient holds the average of
// the ranks' gradients. Parameters without a gradient on this step (unused
// in the forward pass) contribute zeros and stay without one. Not
// thread-safe; one step at a time.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "trainer/distributed/communicator.h"

namespace retrain::trainer {

class GradientReducer {
 public:
  // `params` must all be dense and of one dtype and device, and outlive
  // this object.
  GradientReducer(std::vector<torch::Tensor> params, Communicator& comm,
                  int64_t bucket_bytes = 25 << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void Prepare();
  // Starts the buckets backward left unfinished, waits for every
  // all-reduce, and writes the averages into the parameters' gradients.
  // Throws TrainerError when a collective fails.
  void Finish();

  int num_buckets() const { return static_cast<int>(buckets_.size()); }
  // Seconds Finish() spent waiting for communication (what overlap did
  // not hide), summed since the last call; resets it.
  double TakeWaitSeconds();

 private:
  struct Bucket {
    torch::Tensor flat;           // the bucket's gradients, one after another
    std::vector<size_t> params;   // indices into params_
    int pending = 0;              // gradients still to arrive this step
    c10::intrusive_ptr<c10d::Work> work;
  };
  void OnGradient(size_t param, const torch::Tensor& grad);
  void LaunchReadyBuckets();

  std::vector<torch::Tensor> params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;    // per parameter
  std::vector<int64_t> offset_of_;   // per parameter, into its bucket
  std::vector<char> arrived_;        // per parameter, this step
  std::vector<unsigned> hooks_;      // per parameter
  size_t next_to_launch_ = 0;
  double wait_seconds_ = 0;
};

}  // namespace retrain::trainer
