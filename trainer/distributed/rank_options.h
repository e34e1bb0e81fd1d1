// Where one process stands in a synchronous data-parallel job: its rank,
// the job's size and how the ranks meet. Plain data, no LibTorch.
#pragma once

#include <string>

namespace retrain::trainer {

struct RankOptions {
  int rank = 0;
  int world_size = 1;
  // This rank's number on its host (its GPU is cuda:<local_rank>) and the
  // ranks on this host (they share its memory).
  int local_rank = 0;
  int local_world_size = 1;
  // Rank 0 serves a c10d TCPStore here; the others connect to it.
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // A collective (or the rendezvous) that takes longer fails: a rank that
  // died or hangs stops the others within this time.
  int collective_timeout_secs = 300;
  // One GPU per rank and NCCL; otherwise CPU and Gloo.
  bool use_cuda = false;

  bool distributed() const { return world_size > 1; }
};

}  // namespace retrain::trainer
