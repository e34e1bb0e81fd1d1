#include "server/grpc_services.h"

#include "common/grpc_status.h"
#include "common/job_states.h"

namespace retrain::server {

namespace v1 = retrain::v1;

namespace {

// Copies a StatusOr's value into the response, or returns its error.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* resp) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *resp = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status JobServiceImpl::SubmitDatasetBuild(grpc::ServerContext*,
                                                const v1::SubmitDatasetBuildRequest* req,
                                                v1::Job* resp) {
  return Reply(coordinator_.SubmitDatasetBuild(*req), resp);
}

grpc::Status JobServiceImpl::SubmitTraining(grpc::ServerContext*,
                                            const v1::SubmitTrainingRequest* req, v1::Job* resp) {
  return Reply(coordinator_.SubmitTraining(*req), resp);
}

grpc::Status JobServiceImpl::SubmitEvaluation(grpc::ServerContext*,
                                              const v1::SubmitEvaluationRequest* req,
                                              v1::Job* resp) {
  return Reply(coordinator_.SubmitEvaluation(*req), resp);
}

grpc::Status JobServiceImpl::GetJobLogs(grpc::ServerContext*, const v1::GetJobLogsRequest* req,
                                        v1::GetJobLogsResponse* resp) {
  return Reply(coordinator_.GetJobLogs(*req), resp);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* req,
                                    v1::Job* resp) {
  return Reply(coordinator_.GetJob(req->job_id()), resp);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                                      v1::ListJobsResponse* resp) {
  return Reply(coordinator_.ListJobs(*req), resp);
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                                       v1::Job* resp) {
  return Reply(coordinator_.CancelJob(req->job_id(), req->reason()), resp);
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                      grpc::ServerWriter<v1::JobUpdate>* writer) {
  uint64_t version = 0;
  while (!ctx->IsCancelled()) {
    auto job = coordinator_.WaitForJobChange(req->job_id(), &version,
                                             std::chrono::milliseconds(1000));
    if (!job.ok()) return ToGrpcStatus(job.status());
    v1::JobUpdate update;
    *update.mutable_job() = *job;
    if (!writer->Write(update)) return grpc::Status::CANCELLED;
    if (IsFinalState(job->state())) return grpc::Status::OK;
    // Coalesce progress: at most a few updates a second.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return grpc::Status::CANCELLED;
}

grpc::Status JobServiceImpl::ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*,
                                         v1::ListWorkersResponse* resp) {
  for (auto& w : coordinator_.ListWorkers()) *resp->add_workers() = std::move(w);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext*,
                                               const v1::RegisterWorkerRequest* req,
                                               v1::RegisterWorkerResponse* resp) {
  return Reply(coordinator_.RegisterWorker(*req), resp);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  return Reply(coordinator_.Heartbeat(*req), resp);
}

grpc::Status WorkerServiceImpl::LeaseTask(grpc::ServerContext*, const v1::LeaseTaskRequest* req,
                                          v1::LeaseTaskResponse* resp) {
  return Reply(coordinator_.LeaseTask(*req), resp);
}

grpc::Status WorkerServiceImpl::ReportProgress(grpc::ServerContext*,
                                               const v1::ReportProgressRequest* req,
                                               v1::ReportProgressResponse* resp) {
  return Reply(coordinator_.ReportProgress(*req), resp);
}

grpc::Status WorkerServiceImpl::CompleteTask(grpc::ServerContext*,
                                             const v1::CompleteTaskRequest* req,
                                             v1::CompleteTaskResponse*) {
  return ToGrpcStatus(coordinator_.CompleteTask(*req));
}

grpc::Status WorkerServiceImpl::FailTask(grpc::ServerContext*, const v1::FailTaskRequest* req,
                                         v1::FailTaskResponse*) {
  return ToGrpcStatus(coordinator_.FailTask(*req));
}

}  // namespace retrain::server
