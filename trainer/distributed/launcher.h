// The trainer's own launcher (as torchrun): starts this host's ranks of a
// data-parallel job as child processes, watches them, and stops them all
// when one fails. No LibTorch.
//
// Children run the same program with the same arguments; their rank comes
// through the environment (RETRAIN_RANK, RETRAIN_WORLD_SIZE,
// RETRAIN_LOCAL_RANK, RETRAIN_LOCAL_WORLD_SIZE, RETRAIN_MASTER_ADDR,
// RETRAIN_MASTER_PORT, ...), which
// RankFromEnvironment() reads. Children die with the launcher
// (PR_SET_PDEATHSIG), so no rank outlives a killed launcher.
#pragma once

#include <string>

#include "trainer/distributed/rank_options.h"

namespace retrain::trainer {

struct LaunchOptions {
  int ranks_per_node = 1;  // --num_replicas / --num_gpus
  int nnodes = 1;          // hosts in the job
  int node_rank = 0;       // this host's number; node 0 runs rank 0
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: a free port of this host (one host only)
  int collective_timeout_secs = 300;
  bool use_cuda = false;
  // After one rank fails (or on SIGTERM/SIGINT), the others get SIGTERM
  // (they checkpoint if they can and stop) and SIGKILL this much later.
  int stop_grace_secs = 30;
};

// Runs this host's ranks node_rank * ranks_per_node ... + ranks_per_node - 1
// of a job of nnodes * ranks_per_node ranks, executing /proc/self/exe with
// `argv`, and waits for them. Returns the launcher's exit code: 0 when every
// rank succeeded; otherwise the failed rank's exit code, or 128 + signal
// when it was killed, after printing which rank failed and why (also on
// stderr) and stopping the others. Throws TrainerError(kConfig) for bad
// options or a port it cannot find.
int LaunchRanks(char** argv, const LaunchOptions& options);

// True in a process started by LaunchRanks(): fills *rank from the
// environment (keeping its other fields).
bool RankFromEnvironment(RankOptions* rank);

}  // namespace retrain::trainer
