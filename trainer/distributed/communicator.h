// The collectives of a synchronous data-parallel job, on LibTorch's c10d:
// rank 0 serves a TCPStore at master_addr:master_port, every rank joins a
// process group on it (Gloo for CPU ranks, NCCL for GPU ranks). Nothing
// here is home-made transport: it is the engine PyTorch's DDP runs on.
//
// Every collective is issued by every rank in the same order (the caller's
// contract, as in any c10d program). A collective that fails (a peer died)
// or outlasts collective_timeout_secs throws TrainerError(kInternal)
// naming the operation: the ranks never wait forever on a dead peer.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "trainer/distributed/rank_options.h"

namespace retrain::trainer {

class Communicator {
 public:
  // Meets the other ranks (blocks until all have joined or the timeout
  // passes). Throws TrainerError: kConfig when this build lacks the backend
  // (Gloo or NCCL), kInternal when the rendezvous fails.
  static std::unique_ptr<Communicator> Connect(const RankOptions& options);
  ~Communicator();

  int rank() const { return options_.rank; }
  int size() const { return options_.world_size; }
  const char* backend() const;

  // Starts a sum all-reduce of `tensor` in place (dense, contiguous);
  // Wait() finishes it.
  c10::intrusive_ptr<c10d::Work> AllReduceSumAsync(torch::Tensor tensor);
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);
  void AllReduceSum(torch::Tensor tensor, const char* what);
  // Overwrites `tensors` on every rank with rank 0's.
  void BroadcastFromRankZero(std::vector<torch::Tensor> tensors, const char* what);

  // The store the ranks met at, for small messages (input positions).
  // Get() waits up to the collective timeout for the key to appear.
  void SetValue(const std::string& key, const std::string& value);
  std::string GetValue(const std::string& key);
  void DeleteValue(const std::string& key);

  // The process group behind it (defined in communicator.cc).
  class Group;

 private:
  Communicator(RankOptions options, c10::intrusive_ptr<c10d::Store> store,
               std::unique_ptr<Group> group);

  const RankOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  std::unique_ptr<Group> group_;
};

}  // namespace retrain::trainer
