#include "worker/trainer_task.h"

#include <fcntl.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/time_util.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "trainer/spec/exit_codes.h"

namespace retrain::worker {

namespace v1 = retrain::v1;
using Clock = std::chrono::steady_clock;

namespace {

// What the trainer said while it ran.
struct TrainerOutcome {
  int exit_code = 0;  // 128 + signal when killed
  bool cancelled = false;
  std::string last_error_line;  // its last "retrain-trainer: ..." line
  // The first error a rank gave ("retrain-trainer: rank 1: <why>"), when a
  // launcher ran the ranks: the launcher's own last line only says which
  // rank ended how.
  std::string first_rank_error;
  v1::JobProgress progress;
  nlohmann::json done_event;  // {"event":"done",...}
  std::string last_checkpoint;
};

// "rank 1: <why>", as a rank started by a launcher prefixes its errors
// (the launcher's "rank 1 of 2 (pid ...) ..." is not one).
bool IsRankError(const std::string& line) {
  if (line.rfind("rank ", 0) != 0) return false;
  const size_t digits_end = line.find_first_not_of("0123456789", 5);
  return digits_end != std::string::npos && digits_end > 5 &&
         line.compare(digits_end, 2, ": ") == 0;
}

// The point a step, eval or checkpoint event makes (KIND_UNSPECIFIED for
// other events), read now.
v1::TrainingPoint PointOf(const nlohmann::json& e, const std::string& kind) {
  v1::TrainingPoint point;
  if (kind == "step") {
    point.set_kind(v1::TrainingPoint::KIND_STEP);
    point.set_max_steps(e.value("max_steps", int64_t{0}));
    point.set_epoch(e.value("epoch", 0.0));
    point.set_loss(e.value("loss", 0.0));
    point.set_learning_rate(e.value("learning_rate", 0.0));
    point.set_examples_per_sec(e.value("examples_per_sec", 0.0));
  } else if (kind == "eval") {
    point.set_kind(v1::TrainingPoint::KIND_EVAL);
    point.set_precision_at_1(e.value("precision_at_1", 0.0));
    point.set_precision_at_5(e.value("precision_at_5", 0.0));
    point.set_num_examples(e.value("num_examples", int64_t{0}));
    point.set_checkpoint(e.value("checkpoint", ""));
  } else if (kind == "checkpoint") {
    point.set_kind(v1::TrainingPoint::KIND_CHECKPOINT);
    point.set_checkpoint(e.value("path", ""));
  } else {
    return point;
  }
  point.set_step(e.value("step", int64_t{0}));
  *point.mutable_time() = google::protobuf::util::TimeUtil::GetCurrentTime();
  return point;
}

// Applies one event to the outcome; a step, eval or checkpoint also joins
// `points`.
void ApplyEvent(const nlohmann::json& e, TrainerOutcome* out,
                std::vector<v1::TrainingPoint>* points) {
  const std::string kind = e.value("event", "");
  if (v1::TrainingPoint point = PointOf(e, kind);
      point.kind() != v1::TrainingPoint::KIND_UNSPECIFIED) {
    points->push_back(std::move(point));
  }
  v1::JobProgress& p = out->progress;
  if (kind == "step") {
    const v1::TrainingPoint& step = points->back();
    p.set_phase("training");
    p.set_step(step.step());
    p.set_max_steps(step.max_steps());
    p.set_epoch(step.epoch());
    p.set_loss(step.loss());
    p.set_learning_rate(step.learning_rate());
    p.set_examples_per_sec(step.examples_per_sec());
    p.set_done(p.step());
    p.set_total(p.max_steps());
    p.set_rate(p.examples_per_sec());
    const double sec_per_batch = e.value("sec_per_batch", 0.0);
    p.set_eta_seconds(sec_per_batch * static_cast<double>(p.max_steps() - p.step()));
  } else if (kind == "eval") {
    p.set_precision_at_1(e.value("precision_at_1", 0.0));
    p.set_precision_at_5(e.value("precision_at_5", 0.0));
    out->done_event = e;
  } else if (kind == "checkpoint") {
    out->last_checkpoint = e.value("path", "");
  } else if (kind == "done") {
    out->done_event = e;
  }
}

// Runs `argv` to its end, relaying as TrainerContext says.
TrainerOutcome RunTrainer(const std::vector<std::string>& argv, const TrainerContext& context) {
  TrainerOutcome out;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    out.exit_code = 1;
    out.last_error_line = absl::StrCat("cannot create pipes: ", std::strerror(errno));
    return out;
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // The trainer dies with its worker: a lost worker's job restarts
    // elsewhere from the checkpoint, never twice at once.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    // The worker blocks SIGTERM and SIGINT for its signal thread; the
    // trainer must get them (SIGTERM: checkpoint and exit).
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execv(cargv[0], cargv.data());
    std::fprintf(stderr, "retrain-trainer: cannot run %s: %s\n", cargv[0], std::strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  std::string out_buf, err_buf;
  TrainerReport report;  // what the next report carries, but the progress
  auto last_report = Clock::now();
  bool out_open = true, err_open = true, term_sent = false;
  Clock::time_point kill_at;
  auto take_lines = [&](std::string& buf, bool is_stdout) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (is_stdout) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_object()) ApplyEvent(j, &out, &report.points);
      } else {
        if (line.rfind("retrain-trainer: ", 0) == 0) {
          out.last_error_line = line.substr(17);
          if (out.first_rank_error.empty() && IsRankError(out.last_error_line)) {
            out.first_rank_error = out.last_error_line.substr(out.last_error_line.find(": ") + 2);
          }
        }
        report.lines.push_back(std::move(line));
      }
    }
  };
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    poll(fds, 2, 200);
    char chunk[65536];
    for (int k = 0; k < 2; ++k) {
      if (fds[k].revents == 0) continue;
      const ssize_t n = read(fds[k].fd, chunk, sizeof chunk);
      if (n > 0) {
        (k == 0 ? out_buf : err_buf).append(chunk, static_cast<size_t>(n));
        take_lines(k == 0 ? out_buf : err_buf, k == 0);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        (k == 0 ? out_open : err_open) = false;
      }
    }
    if (context.cancelled != nullptr && *context.cancelled && !term_sent) {
      kill(pid, SIGTERM);
      term_sent = true;
      out.cancelled = true;
      kill_at = Clock::now() + std::chrono::seconds(context.stop_grace_secs);
    }
    if (term_sent && Clock::now() > kill_at) kill(pid, SIGKILL);
    if (context.lease_lost != nullptr && *context.lease_lost) {
      kill(pid, SIGKILL);
      out.cancelled = true;
    }
    if (context.report && Clock::now() - last_report > std::chrono::seconds(1)) {
      report.progress = out.progress;
      if (context.report(report)) report = TrainerReport();
      last_report = Clock::now();
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (context.report) {
    report.progress = out.progress;
    auto stopped = [&] {
      return (context.cancelled != nullptr && *context.cancelled) ||
             (context.lease_lost != nullptr && *context.lease_lost);
    };
    while (!context.report(report) && !stopped()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  return out;
}

absl::Status StatusOf(const TrainerOutcome& o) {
  if (o.cancelled) return absl::CancelledError("stopped on request");
  if (o.exit_code == 0) return absl::OkStatus();
  std::string why = o.last_error_line.empty()
                        ? absl::StrCat("retrain-trainer exited with code ", o.exit_code)
                        : o.last_error_line;
  if (!o.first_rank_error.empty() && why.find(o.first_rank_error) == std::string::npos) {
    absl::StrAppend(&why, ": ", o.first_rank_error);
  }
  if (trainer::spec::RetryCannotHelp(o.exit_code)) return absl::FailedPreconditionError(why);
  if (o.exit_code > 128) {
    return absl::InternalError(absl::StrCat("retrain-trainer was killed by signal ",
                                            o.exit_code - 128, " (", strsignal(o.exit_code - 128),
                                            ")"));
  }
  return absl::InternalError(why);
}

// TrainingSpec fields that only the coordinator reads: no trainer flag.
bool IsCoordinatorField(const std::string& name) { return name == "num_workers"; }

template <typename T>
void Flag(std::vector<std::string>* args, const char* name, const T& value) {
  args->push_back(absl::StrCat("--", name));
  args->push_back(absl::StrCat(value));
}

}  // namespace

std::vector<std::string> TrainArguments(const v1::TrainingSpec& s) {
  using google::protobuf::FieldDescriptor;
  std::vector<std::string> a{"train"};
  const auto* reflection = s.GetReflection();
  const auto* descriptor = s.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* f = descriptor->field(i);
    const char* name = f->name().c_str();
    // Set fields only: optional ones when given, strings and flags when not
    // empty or false (HasField for fields without presence).
    if (IsCoordinatorField(f->name()) || !reflection->HasField(s, f)) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        const int32_t v = reflection->GetInt32(s, f);
        // No GPUs and one CPU rank are the trainer's own defaults.
        if ((f->name() == "num_gpus" && v <= 0) || (f->name() == "num_replicas" && v <= 1)) break;
        Flag(&a, name, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64:
        Flag(&a, name, reflection->GetInt64(s, f));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        Flag(&a, name, reflection->GetUInt64(s, f));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        Flag(&a, name, reflection->GetDouble(s, f));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        a.push_back(absl::StrCat("--", name));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        Flag(&a, name, reflection->GetString(s, f));
        break;
      default:
        // A field of a type this loop does not know yet must not be dropped
        // silently: the trainer refuses the flag and names it.
        Flag(&a, name, "unsupported-field-type");
    }
  }
  return a;
}

absl::StatusOr<v1::TrainTaskResult> RunTrainTask(const v1::TrainTask& task,
                                                 const TrainerContext& context) {
  std::vector<std::string> argv{context.trainer_path};
  for (auto& a : TrainArguments(task.spec())) argv.push_back(std::move(a));
  if (task.stop_grace_secs() > 0) Flag(&argv, "stop_grace_secs", task.stop_grace_secs());
  if (task.nnodes() > 1) {
    // This worker's part of a job over several: the trainer's multi-host mode.
    Flag(&argv, "nnodes", task.nnodes());
    Flag(&argv, "node_rank", task.node_rank());
    Flag(&argv, "master_addr", task.master_addr());
    Flag(&argv, "master_port", task.master_port());
  }
  const TrainerOutcome o = RunTrainer(argv, context);
  if (absl::Status s = StatusOf(o); !s.ok()) return s;
  // Only rank 0 reports "done" (and writes checkpoints): another worker's
  // part of the job ends with an empty result.
  v1::TrainTaskResult r;
  if (o.done_event.is_object()) {
    r.set_steps(o.done_event.value("step", int64_t{0}));
    r.set_final_loss(o.done_event.value("loss", 0.0));
  }
  r.set_final_checkpoint(o.last_checkpoint);
  return r;
}

absl::StatusOr<v1::EvalTaskResult> RunEvalTask(const v1::EvalTask& task,
                                               const TrainerContext& context) {
  std::vector<std::string> argv{context.trainer_path,   "eval",
                                "--data_dir",           task.spec().data_dir(),
                                "--checkpoint_dir",     task.spec().checkpoint_dir(),
                                "--run_once"};
  if (!task.spec().subset().empty()) Flag(&argv, "subset", task.spec().subset());
  const TrainerOutcome o = RunTrainer(argv, context);
  if (absl::Status s = StatusOf(o); !s.ok()) return s;
  if (!o.done_event.is_object()) {
    return absl::InternalError("retrain-trainer eval ended without reporting precision");
  }
  v1::EvalTaskResult r;
  auto* e = r.mutable_evaluation();
  e->set_num_examples(o.done_event.value("num_examples", int64_t{0}));
  e->set_precision_at_1(o.done_event.value("precision_at_1", 0.0));
  e->set_precision_at_5(o.done_event.value("precision_at_5", 0.0));
  e->set_checkpoint(o.done_event.value("checkpoint", ""));
  return r;
}

}  // namespace retrain::worker
