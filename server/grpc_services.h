// gRPC front-ends of the coordinator: each method checks the caller's token
// (AccessPolicy) and then only translates between the wire and Coordinator
// calls.
#pragma once

#include <atomic>

#include "retrain/v1/job_service.grpc.pb.h"
#include "retrain/v1/worker_service.grpc.pb.h"
#include "server/access_policy.h"
#include "server/coordinator.h"

namespace retrain::server {

class JobServiceImpl final : public retrain::v1::JobService::Service {
 public:
  // `max_watch_streams`: WatchJob streams open at once; more are refused
  // with RESOURCE_EXHAUSTED (each holds a server thread).
  JobServiceImpl(Coordinator& coordinator, const AccessPolicy& access, int max_watch_streams = 256)
      : coordinator_(coordinator), access_(access), max_watch_streams_(max_watch_streams) {}

  grpc::Status SubmitDatasetBuild(grpc::ServerContext*,
                                  const retrain::v1::SubmitDatasetBuildRequest* req,
                                  retrain::v1::Job* resp) override;
  grpc::Status SubmitTraining(grpc::ServerContext*, const retrain::v1::SubmitTrainingRequest*,
                              retrain::v1::Job*) override;
  grpc::Status SubmitEvaluation(grpc::ServerContext*, const retrain::v1::SubmitEvaluationRequest*,
                                retrain::v1::Job*) override;
  grpc::Status SubmitDatasetVerify(grpc::ServerContext*,
                                   const retrain::v1::SubmitDatasetVerifyRequest*,
                                   retrain::v1::Job*) override;
  grpc::Status GetJob(grpc::ServerContext*, const retrain::v1::GetJobRequest* req,
                      retrain::v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext*, const retrain::v1::ListJobsRequest* req,
                        retrain::v1::ListJobsResponse* resp) override;
  grpc::Status CancelJob(grpc::ServerContext*, const retrain::v1::CancelJobRequest* req,
                         retrain::v1::Job* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const retrain::v1::WatchJobRequest* req,
                        grpc::ServerWriter<retrain::v1::JobUpdate>* writer) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const retrain::v1::ListWorkersRequest*,
                           retrain::v1::ListWorkersResponse* resp) override;
  grpc::Status GetJobLogs(grpc::ServerContext*, const retrain::v1::GetJobLogsRequest* req,
                          retrain::v1::GetJobLogsResponse* resp) override;
  grpc::Status GetJobMetrics(grpc::ServerContext*, const retrain::v1::GetJobMetricsRequest* req,
                             retrain::v1::GetJobMetricsResponse* resp) override;

 private:
  Coordinator& coordinator_;
  const AccessPolicy& access_;
  const int max_watch_streams_;
  std::atomic<int> watch_streams_{0};
};

class WorkerServiceImpl final : public retrain::v1::WorkerService::Service {
 public:
  WorkerServiceImpl(Coordinator& coordinator, const AccessPolicy& access)
      : coordinator_(coordinator), access_(access) {}

  grpc::Status RegisterWorker(grpc::ServerContext*, const retrain::v1::RegisterWorkerRequest* req,
                              retrain::v1::RegisterWorkerResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const retrain::v1::HeartbeatRequest* req,
                         retrain::v1::HeartbeatResponse* resp) override;
  grpc::Status LeaseTask(grpc::ServerContext*, const retrain::v1::LeaseTaskRequest* req,
                         retrain::v1::LeaseTaskResponse* resp) override;
  grpc::Status ReportProgress(grpc::ServerContext*, const retrain::v1::ReportProgressRequest* req,
                              retrain::v1::ReportProgressResponse* resp) override;
  grpc::Status CompleteTask(grpc::ServerContext*, const retrain::v1::CompleteTaskRequest* req,
                            retrain::v1::CompleteTaskResponse*) override;
  grpc::Status FailTask(grpc::ServerContext*, const retrain::v1::FailTaskRequest* req,
                        retrain::v1::FailTaskResponse*) override;

 private:
  Coordinator& coordinator_;
  const AccessPolicy& access_;
};

}  // namespace retrain::server
