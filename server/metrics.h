// The coordinator's Prometheus metrics (text exposition format 0.0.4), on
// prometheus-cpp's registry and serializer.
//
// Two kinds of families: RPC and HTTP request counts and latencies, which
// the front-ends observe as requests end; and the coordinator's own figures
// (jobs by type and state, the queue, workers and their free resources,
// tasks leased, retried and failed, images written, converted and skipped,
// each running training job's examples/s and loss), read from
// Coordinator::Stats() at every scrape. Label values stay few: job type and
// state, task kind, worker state, RPC method and code, HTTP route; running
// training jobs by id.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "server/coordinator.h"

namespace retrain::server {

class Metrics {
 public:
  explicit Metrics(const Coordinator& coordinator);

  // One finished RPC: its full method name ("/retrain.v1.JobService/GetJob"),
  // status code name ("OK", "NOT_FOUND") and duration.
  void ObserveRpc(const std::string& method, const std::string& code, double seconds);
  // One finished HTTP request: its route ("/v1/jobs/{id}"), status, duration.
  void ObserveHttp(const std::string& route, int status, double seconds);

  // Every family, in the text format.
  std::string Render() const;

 private:
  const Coordinator& coordinator_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& rpc_requests_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_seconds_;
};

}  // namespace retrain::server
