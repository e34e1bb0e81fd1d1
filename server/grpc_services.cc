#include "server/grpc_services.h"

#include <chrono>
#include <optional>

#include "common/grpc_status.h"
#include "common/job_states.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

// A WatchJob stream sends the job at least this often, changed or not,
constexpr std::chrono::milliseconds kWatchKeepAlive(1000);
// and at most once in this time while it runs (progress coalesced).
constexpr std::chrono::milliseconds kWatchCoalesce(200);

// Copies a StatusOr's value into the response, or returns its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* resp) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *resp = *std::move(result);
  return grpc::Status::OK;
}

// OK, or the refusal of a call whose "authorization" metadata does not let
// it act as `needed`.
grpc::Status Authorize(const grpc::ServerContext* ctx, const AccessPolicy& access,
                       Caller needed) {
  const auto& metadata = ctx->client_metadata();
  const auto it = metadata.find("authorization");
  const std::string_view value =
      it == metadata.end() ? std::string_view() : std::string_view(it->second.data(), it->second.size());
  const auto auth = ctx->auth_context();
  const bool verified = auth != nullptr && auth->IsPeerAuthenticated();
  return ToGrpcStatus(access.Check(needed, value, verified));
}

// The client's host as gRPC names its peer ("ipv4:10.0.0.7:52114" ->
// "ipv4:10.0.0.7"): who submitted a job.
std::string Submitter(const grpc::ServerContext* ctx) {
  const std::string peer = ctx->peer();
  const size_t scheme = peer.find(':'), port = peer.rfind(':');
  return port != std::string::npos && port > scheme ? peer.substr(0, port) : peer;
}

#define RETRAIN_AUTHORIZE(ctx, caller)                                       \
  do {                                                                       \
    grpc::Status denied = Authorize(ctx, access_, caller);                   \
    if (!denied.ok()) return denied;                                         \
  } while (0)

}  // namespace

grpc::Status JobServiceImpl::SubmitDatasetBuild(grpc::ServerContext* ctx,
                                                const v1::SubmitDatasetBuildRequest* req,
                                                v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.SubmitDatasetBuild(*req, Submitter(ctx)), resp);
}

grpc::Status JobServiceImpl::SubmitTraining(grpc::ServerContext* ctx,
                                            const v1::SubmitTrainingRequest* req, v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.SubmitTraining(*req, Submitter(ctx)), resp);
}

grpc::Status JobServiceImpl::SubmitEvaluation(grpc::ServerContext* ctx,
                                              const v1::SubmitEvaluationRequest* req,
                                              v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.SubmitEvaluation(*req, Submitter(ctx)), resp);
}

grpc::Status JobServiceImpl::SubmitDatasetVerify(grpc::ServerContext* ctx,
                                                 const v1::SubmitDatasetVerifyRequest* req,
                                                 v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.SubmitDatasetVerify(*req, Submitter(ctx)), resp);
}

grpc::Status JobServiceImpl::GetJobLogs(grpc::ServerContext* ctx, const v1::GetJobLogsRequest* req,
                                        v1::GetJobLogsResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.GetJobLogs(*req), resp);
}

grpc::Status JobServiceImpl::GetJobMetrics(grpc::ServerContext* ctx,
                                           const v1::GetJobMetricsRequest* req,
                                           v1::GetJobMetricsResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.GetJobMetrics(*req), resp);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                    v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.GetJob(req->job_id()), resp);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                      v1::ListJobsResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.ListJobs(*req), resp);
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                                       v1::Job* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  return Reply(coordinator_.CancelJob(req->job_id(), req->reason()), resp);
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                      grpc::ServerWriter<v1::JobUpdate>* writer) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  if (watch_streams_.fetch_add(1) >= max_watch_streams_) {
    watch_streams_.fetch_sub(1);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "too many jobs are watched at once (--max_watch_streams " +
                            std::to_string(max_watch_streams_) + "): retry later, or poll GetJob");
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{watch_streams_};
  // Sends `job`; the stream's end when it has ended.
  auto send = [&](v1::Job job) -> std::optional<grpc::Status> {
    v1::JobUpdate update;
    *update.mutable_job() = std::move(job);
    if (!writer->Write(update)) return grpc::Status::CANCELLED;
    if (IsFinalState(update.job().state())) return grpc::Status::OK;
    return std::nullopt;
  };
  using Clock = std::chrono::steady_clock;
  uint64_t version = 0;
  while (!ctx->IsCancelled()) {
    auto job = coordinator_.WaitForJobChange(req->job_id(), &version, kWatchKeepAlive);
    if (!job.ok()) return ToGrpcStatus(job.status());
    if (auto end = send(*std::move(job))) return *end;
    // Coalesce progress: the changes of the next kWatchCoalesce go out
    // together after it (the next wait returns at once), the job's end as
    // soon as it happens.
    const Clock::time_point hold_until = Clock::now() + kWatchCoalesce;
    uint64_t seen = version;
    for (Clock::time_point now = Clock::now(); now < hold_until && !ctx->IsCancelled();
         now = Clock::now()) {
      auto next = coordinator_.WaitForJobChange(
          req->job_id(), &seen, std::chrono::ceil<std::chrono::milliseconds>(hold_until - now));
      if (!next.ok()) return ToGrpcStatus(next.status());
      if (IsFinalState(next->state())) return *send(*std::move(next));
    }
  }
  return grpc::Status::CANCELLED;
}

grpc::Status JobServiceImpl::ListWorkers(grpc::ServerContext* ctx, const v1::ListWorkersRequest*,
                                         v1::ListWorkersResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kClient);
  for (auto& w : coordinator_.ListWorkers()) *resp->add_workers() = std::move(w);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* ctx,
                                               const v1::RegisterWorkerRequest* req,
                                               v1::RegisterWorkerResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return Reply(coordinator_.RegisterWorker(*req), resp);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return Reply(coordinator_.Heartbeat(*req), resp);
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext* ctx, const v1::LeaseTaskRequest* req,
                                          v1::LeaseTaskResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return Reply(coordinator_.LeaseTask(*req), resp);
}

grpc::Status WorkerServiceImpl::ReportProgress(grpc::ServerContext* ctx,
                                               const v1::ReportProgressRequest* req,
                                               v1::ReportProgressResponse* resp) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return Reply(coordinator_.ReportProgress(*req), resp);
}

grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext* ctx,
                                             const v1::CompleteTaskRequest* req,
                                             v1::CompleteTaskResponse*) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return ToGrpcStatus(coordinator_.CompleteTask(*req));
}

grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext* ctx, const v1::FailTaskRequest* req,
                                         v1::FailTaskResponse*) {
  RETRAIN_AUTHORIZE(ctx, Caller::kWorker);
  return ToGrpcStatus(coordinator_.FailTask(*req));
}

}  // namespace retrain::server
