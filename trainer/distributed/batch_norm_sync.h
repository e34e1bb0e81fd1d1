// Synchronised batch norm (nn/batch_norm.h) over a job's communicator.
#pragma once

#include "trainer/distributed/communicator.h"
#include "trainer/nn/batch_norm.h"

namespace retrain::trainer {

// Sums batch-norm statistics over the communicator's ranks. `comm` must
// outlive the layers it is set on while they train.
class CommunicatorBatchNormSync : public BatchNormSync {
 public:
  explicit CommunicatorBatchNormSync(Communicator& comm) : comm_(comm) {}
  void AllReduceSum(torch::Tensor& tensor) override {
    comm_.AllReduceSum(tensor, "the batch-norm statistics");
  }
  int world_size() const override { return comm_.size(); }

 private:
  Communicator& comm_;
};

}  // namespace retrain::trainer
