#include "trainer/distributed/communicator.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <map>

#include "trainer/distributed/local_address.h"
#include "trainer/trainer_error.h"

#ifdef RETRAIN_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef RETRAIN_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace retrain::trainer {

namespace {

std::chrono::milliseconds Timeout(const RankOptions& o) {
  return std::chrono::milliseconds(int64_t{o.collective_timeout_secs} * 1000);
}

TrainerError CollectiveFailed(const char* what, const std::string& why, const RankOptions& o) {
  return TrainerError(TrainerError::Kind::kInternal,
                      std::string(what) + " failed on rank " + std::to_string(o.rank) + " of " +
                          std::to_string(o.world_size) +
                          " (another rank died, hung or cannot be reached; collectives time out "
                          "after --collective_timeout_secs=" +
                          std::to_string(o.collective_timeout_secs) + "): " + why);
}

#ifdef RETRAIN_WITH_GLOO
// The local address Gloo binds and tells the other ranks: GLOO_SOCKET_IFNAME's
// when set (as PyTorch), loopback for a job on loopback, else the address
// this host reaches the master from. Not this host's name, as PyTorch's
// default: it often resolves to a loopback address, which ranks on other
// hosts cannot connect to.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const RankOptions& o) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  }
  if (o.master_addr == "127.0.0.1" || o.master_addr == "localhost") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  return c10d::ProcessGroupGloo::createDeviceForHostname(LocalAddressToward(o.master_addr));
}
#endif

}  // namespace

// The process group, whatever its class is in this LibTorch version
// (c10d::ProcessGroup in 1.x, c10d::Backend in 2.x): both have these calls.
class Communicator::Group {
 public:
  virtual ~Group() = default;
  virtual const char* name() const = 0;
  virtual c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                                   const c10d::AllreduceOptions& options) = 0;
  virtual c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                                   const c10d::BroadcastOptions& options) = 0;
};

namespace {

template <typename ProcessGroup>
class GroupOf : public Communicator::Group {
 public:
  GroupOf(c10::intrusive_ptr<ProcessGroup> pg, const char* name)
      : pg_(std::move(pg)), name_(name) {}
  const char* name() const override { return name_; }
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& options) override {
    return pg_->allreduce(tensors, options);
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& options) override {
    return pg_->broadcast(tensors, options);
  }

 private:
  c10::intrusive_ptr<ProcessGroup> pg_;
  const char* name_;
};

}  // namespace

std::unique_ptr<Communicator> Communicator::Connect(const RankOptions& o) {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Group> group;
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = Timeout(o);
    store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    if (o.use_cuda) {
#ifdef RETRAIN_WITH_NCCL
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = Timeout(o);
      group = std::make_unique<GroupOf<c10d::ProcessGroupNCCL>>(
          c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, options),
          "nccl");
#else
      throw TrainerError(TrainerError::Kind::kConfig,
                         "this retrain-trainer was built without NCCL; GPU ranks need it "
                         "(rebuild against a LibTorch with CUDA and NCCL)");
#endif
    } else {
#ifdef RETRAIN_WITH_GLOO
      auto options = c10d::ProcessGroupGloo::Options::create(Timeout(o));
      options->devices.push_back(GlooDevice(o));
      group = std::make_unique<GroupOf<c10d::ProcessGroupGloo>>(
          c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, options),
          "gloo");
#else
      throw TrainerError(TrainerError::Kind::kConfig,
                         "this retrain-trainer was built without Gloo; CPU replicas need it "
                         "(install libgloo-dev and rebuild)");
#endif
    }
  } catch (const TrainerError&) {
    throw;
  } catch (const std::exception& e) {
    const auto* c10 = dynamic_cast<const c10::Error*>(&e);
    throw TrainerError(TrainerError::Kind::kInternal,
                       "rank " + std::to_string(o.rank) + " could not meet the other ranks at " +
                           o.master_addr + ":" + std::to_string(o.master_port) + ": " +
                           (c10 ? c10->what_without_backtrace() : e.what()));
  }
  return std::unique_ptr<Communicator>(new Communicator(o, std::move(store), std::move(group)));
}

Communicator::Communicator(RankOptions options, c10::intrusive_ptr<c10d::Store> store,
                           std::unique_ptr<Group> group)
    : options_(std::move(options)), store_(std::move(store)), group_(std::move(group)) {}

Communicator::~Communicator() = default;

const char* Communicator::backend() const { return group_->name(); }

c10::intrusive_ptr<c10d::Work> Communicator::AllReduceSumAsync(torch::Tensor tensor) {
  std::vector<at::Tensor> tensors{std::move(tensor)};
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  options.timeout = Timeout(options_);
  try {
    return group_->allreduce(tensors, options);
  } catch (const std::exception& e) {
    throw CollectiveFailed("an all-reduce", e.what(), options_);
  }
}

void Communicator::Wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait(Timeout(options_));
  } catch (const c10::Error& e) {
    throw CollectiveFailed(what, e.what_without_backtrace(), options_);
  } catch (const std::exception& e) {
    throw CollectiveFailed(what, e.what(), options_);
  }
}

void Communicator::AllReduceSum(torch::Tensor tensor, const char* what) {
  Wait(AllReduceSumAsync(std::move(tensor)), what);
}

void Communicator::BroadcastFromRankZero(std::vector<torch::Tensor> tensors, const char* what) {
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  options.timeout = Timeout(options_);
  torch::NoGradGuard no_grad;
  // One flat buffer per dtype: a few collectives instead of one per tensor.
  std::map<c10::ScalarType, std::vector<torch::Tensor>> by_type;
  for (auto& t : tensors) by_type[t.scalar_type()].push_back(t);
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : group) flat_parts.push_back(t.reshape({-1}));
    std::vector<at::Tensor> one{torch::cat(flat_parts)};
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = group_->broadcast(one, options);
    } catch (const std::exception& e) {
      throw CollectiveFailed(what, e.what(), options_);
    }
    Wait(work, what);
    int64_t offset = 0;
    for (auto& t : group) {
      t.copy_(one[0].narrow(0, offset, t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }
}

void Communicator::SetValue(const std::string& key, const std::string& value) {
  try {
    store_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    throw CollectiveFailed("writing to the rendezvous store", e.what(), options_);
  }
}

std::string Communicator::GetValue(const std::string& key) {
  try {
    const auto v = store_->get(key);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    throw CollectiveFailed("reading from the rendezvous store", e.what(), options_);
  }
}

void Communicator::DeleteValue(const std::string& key) {
  try {
    store_->deleteKey(key);
  } catch (const std::exception& e) {
    throw CollectiveFailed("writing to the rendezvous store", e.what(), options_);
  }
}

}  // namespace retrain::trainer
