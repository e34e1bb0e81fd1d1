"""The retrain coordinator's gRPC client: retrain.client.

`RetrainClient` wraps a channel; every call carries the client token as
`authorization: Bearer <token>` metadata, and every unary call has a
deadline. Errors are `grpc.RpcError`; `explain_error` turns one into a line a
user can act on.

As a program (`retrain-client`, or `python3 -m retrain.client`) it builds one
dataset and waits for it:

    export RETRAIN_SERVER=127.0.0.1:50051 RETRAIN_TOKEN=...
    # (coordinators that lead in turn: RETRAIN_SERVER=HOST:PORT,HOST:PORT)
    retrain-client --train_directory /data/flowers/train \\
        --output_directory /data/flowers/tfrecord --train_shards 4

It prints one line per progress update, then the result (shards, records per
class, skipped files). Exit codes are the `retrain` CLI's: 0 the job
SUCCEEDED, 1 the server refused a request, 2 usage error, 3 the server cannot
be reached, 4 the job ended FAILED, 5 it ended CANCELLED.
"""

import argparse
import json
import os
import socket
import sys
import time
import uuid

import grpc

from retrain.v1 import dataset_pb2, job_pb2, job_service_pb2, job_service_pb2_grpc

DEFAULT_SERVER = "127.0.0.1:50051"
# Seconds each unary call may take.
DEFAULT_TIMEOUT_S = 30.0

# The `retrain` CLI's exit codes, and one for giving up on --wait_timeout.
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_FAILED, EXIT_CANCELLED = range(6)
EXIT_WAIT_TIMEOUT = 6

_FINAL_STATES = (
    job_pb2.JOB_STATE_SUCCEEDED,
    job_pb2.JOB_STATE_FAILED,
    job_pb2.JOB_STATE_CANCELLED,
)


# With several coordinators (a leader and its standbys), calls go to the one
# whose health service says SERVING: the leader (common/coordinator_channel.cc).
_FOLLOW_THE_LEADER = json.dumps(
    {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
)


def split_servers(servers):
    """["HOST:PORT", ...] from "HOST:PORT[,HOST:PORT...]"; ValueError naming
    the text when a part is not HOST:PORT."""
    parts = [part.strip() for part in servers.split(",")]
    for part in parts:
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port:
            raise ValueError(
                "'%s' is not HOST:PORT or a comma-separated list of them" % servers
            )
    return parts


def _resolved(address):
    """("1.2.3.4:5" or "[::1]:5", is_ipv6) for HOST:PORT; OSError when the
    host does not resolve."""
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise OSError("cannot resolve %s: %s" % (host, error.strerror)) from error
    if family == socket.AF_INET6:
        return "[%s]:%s" % (sockaddr[0], port), True
    return "%s:%s" % (sockaddr[0], port), False


def channel_target(servers):
    """The gRPC target and channel options for `servers` (split_servers):
    one address as it is; several resolved into one channel that follows
    the leader among them. ValueError when they mix IPv4 and IPv6."""
    addresses = split_servers(servers)
    if len(addresses) == 1:
        return addresses[0], []
    resolved = [_resolved(a) for a in addresses]
    v6 = sum(1 for _, is_v6 in resolved if is_v6)
    if v6 not in (0, len(resolved)):
        raise ValueError("'%s' mixes IPv4 and IPv6 coordinators; give addresses of one kind"
                         % servers)
    target = ("ipv6:" if v6 else "ipv4:") + ",".join(a for a, _ in resolved)
    host = addresses[0].rpartition(":")[0].strip("[]")
    # TLS checks the certificate against the first host's name.
    return target, [("grpc.service_config", _FOLLOW_THE_LEADER),
                    ("grpc.ssl_target_name_override", host)]


# The codes of a call no coordinator answered, worth making again:
# UNAVAILABLE, or CANCELLED from a coordinator that stopped serving while the
# call was on its way (one that steps down, or a standby that takes over).
# This client cancels none of its own calls.
COORDINATOR_WENT_AWAY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


class TokenError(Exception):
    """A token file that cannot be used; the message names it."""


class WaitTimeout(Exception):
    """The job did not end within the time given to RetrainClient.wait. The
    job itself goes on."""


def load_token(token_file=None, env_var="RETRAIN_TOKEN"):
    """The client token: the contents of `token_file` when given, else the
    environment variable `env_var`, else "" (a server without tokens).
    Surrounding whitespace is dropped. Raises TokenError for a file that
    cannot be read or holds only whitespace."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as error:
            raise TokenError("--token_file %s: %s" % (token_file, error.strerror)) from error
        if not token:
            raise TokenError("--token_file %s: the file is empty" % token_file)
        return token
    return os.environ.get(env_var, "").strip()


def is_final(state):
    """Whether a JobState is one a job never leaves."""
    return state in _FINAL_STATES


def state_name(state):
    """"SUCCEEDED" for JOB_STATE_SUCCEEDED, and so on."""
    return job_pb2.JobState.Name(state).replace("JOB_STATE_", "")


def skip_reason_name(reason):
    """"truncated" for SKIP_REASON_TRUNCATED, as dataset.json writes it."""
    return dataset_pb2.SkipReason.Name(reason).replace("SKIP_REASON_", "").lower()


class RetrainClient:
    """A connection to a coordinator. Thread-safe: its fields are constant
    after construction and gRPC channels may be shared between threads.

    `target` is HOST:PORT, or several separated by commas (a leader and its
    standbys: calls go to whichever leads, and wait for one while none does,
    within their deadline); `token` the client token ("" for none);
    `timeout_s` the deadline of each unary call, in seconds; `tls_ca`: the
    PEM bytes of the CA that signed the server's certificate (TLS), or None
    for a plaintext channel."""

    def __init__(self, target, token="", timeout_s=DEFAULT_TIMEOUT_S, tls_ca=None):
        self.target = target
        self.has_token = bool(token)
        self._timeout_s = timeout_s
        self._metadata = (("authorization", "Bearer " + token),) if token else ()
        channel_address, options = channel_target(target)
        # Between a leader's death and its successor's start no coordinator
        # serves: calls wait (within their deadline) rather than fail at once.
        self._wait_for_ready = len(options) > 0
        if tls_ca is None:
            self._channel = grpc.insecure_channel(channel_address, options=options)
        else:
            self._channel = grpc.secure_channel(
                channel_address, grpc.ssl_channel_credentials(root_certificates=tls_ca),
                options=options,
            )
        self._stub = job_service_pb2_grpc.JobServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def submit_dataset_build(self, spec, request_id, attempts=3):
        """Submits a DatasetBuildSpec and returns the new Job. `request_id`
        makes the submit idempotent, so it is retried (up to `attempts`
        times) when the server cannot be reached or does not answer in time:
        a retry never creates a second job."""
        request = job_service_pb2.SubmitDatasetBuildRequest(request_id=request_id, spec=spec)
        return self._retrying(self._stub.SubmitDatasetBuild, request, attempts)

    def get_job(self, job_id, attempts=3):
        """The job's current snapshot, retried like submit_dataset_build."""
        request = job_service_pb2.GetJobRequest(job_id=job_id)
        return self._retrying(self._stub.GetJob, request, attempts)

    def watch_job(self, job_id, timeout_s=None):
        """Yields the job's snapshots (Job): the current one at once, then
        one per change, the last in a final state. The stream has no
        deadline unless `timeout_s` is given. Raises grpc.RpcError when the
        stream breaks; watching again is safe."""
        request = job_service_pb2.WatchJobRequest(job_id=job_id)
        for update in self._stub.WatchJob(request, metadata=self._metadata, timeout=timeout_s,
                                          wait_for_ready=self._wait_for_ready):
            yield update.job

    def wait(self, job_id, on_update=None, timeout_s=None, reconnects=30):
        """Follows a job until it ends and returns its final snapshot,
        calling `on_update(job)` for each snapshot. A stream that breaks
        because the server went away (a restart) is opened again, up to
        `reconnects` times, 1.5 s apart. `timeout_s` bounds the
        whole wait: past it, WaitTimeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                for job in self.watch_job(job_id, timeout_s=left):
                    if on_update:
                        on_update(job)
                    if is_final(job.state):
                        return job
            except grpc.RpcError as error:
                expired = deadline is not None and time.monotonic() >= deadline
                if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and expired:
                    raise WaitTimeout("job %s did not end within %g s" % (job_id, timeout_s))
                if error.code() not in COORDINATOR_WENT_AWAY or reconnects <= 0:
                    raise
                reconnects -= 1
                time.sleep(1.5)
                continue
            # The stream ended without a final state: ask, then watch again.
            job = self.get_job(job_id)
            if is_final(job.state):
                return job

    def _retrying(self, method, request, attempts):
        """Calls a unary `method` that is safe to repeat, with the deadline and
        the token, up to `attempts` times while the server is unreachable
        or late (0.5 s, then 1 s, ... between tries)."""
        for attempt in range(attempts):
            try:
                return method(request, metadata=self._metadata, timeout=self._timeout_s,
                              wait_for_ready=self._wait_for_ready)
            except grpc.RpcError as error:
                retryable = (error.code() in COORDINATOR_WENT_AWAY or
                             error.code() == grpc.StatusCode.DEADLINE_EXCEEDED)
                if not retryable or attempt + 1 == attempts:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


def explain_error(error, client):
    """One line saying what went wrong with an RPC and what to do, and the
    exit code that goes with it."""
    code, details = error.code(), error.details()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        what = "the token was not accepted" if client.has_token else "no token was sent"
        return (
            "the server at %s needs its client token (%s): set RETRAIN_TOKEN or pass "
            "--token_file (server said: %s)" % (client.target, what, details),
            EXIT_REFUSED,
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return (
            "cannot reach the server at %s: %s (start retrain-server, or set RETRAIN_SERVER)"
            % (client.target, details),
            EXIT_UNREACHABLE,
        )
    return "error: %s [%s]" % (details, code.name), EXIT_REFUSED


def progress_line(job):
    """One line about a snapshot, e.g.
    "j-000003 RUNNING writing shards 12/20 (tasks 1/2, skipped 1)"."""
    p = job.progress
    line = "%s %s" % (job.id, state_name(job.state))
    if p.phase:
        line += " %s %d/%d" % (p.phase, p.done, p.total)
        if p.tasks_total:
            line += " (tasks %d/%d, skipped %d)" % (p.tasks_done, p.tasks_total, p.skipped)
    return line


def result_lines(job):
    """The result of a finished dataset build as lines: the state, each
    split's shards and records per class, and the skipped files."""
    lines = ["job %s %s" % (job.id, state_name(job.state))]
    if job.error:
        lines.append("error: " + job.error)
    if not job.HasField("dataset_build_result"):
        return lines
    result = job.dataset_build_result
    lines.append("output: %s (manifest %s)" % (result.output_directory, result.manifest))
    for name in ("train", "validation"):
        split = getattr(result, name)
        if not split.shards:
            continue
        lines.append(
            "%s: %d records in %d shards (%d converted)"
            % (name, split.num_records, len(split.shards), split.num_converted)
        )
        for shard in split.shards:
            lines.append(
                "  shard %s: %d records, %d bytes"
                % (shard.file, shard.num_records, shard.num_bytes)
            )
        for count in split.class_counts:
            lines.append("  class %d %s: %d" % (count.label, count.name, count.count))
    skipped_count = max(result.num_skipped, len(result.skipped))
    lines.append("skipped: %d file(s)" % skipped_count)
    for skipped in result.skipped:
        reason = skip_reason_name(skipped.reason)
        lines.append("  %s/%s: %s (%s)" % (skipped.split, skipped.path, reason, skipped.detail))
    if skipped_count > len(result.skipped):
        lines.append(
            "  ... %d more in %s/%s"
            % (skipped_count - len(result.skipped), result.output_directory, result.skipped_file)
        )
    return lines


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="retrain-client",
        description="Build a dataset on a retrain coordinator and wait for it. "
        "The server comes from RETRAIN_SERVER (default %s; a leader and its standbys as "
        "HOST:PORT,HOST:PORT,...), the client token from "
        "RETRAIN_TOKEN or --token_file." % DEFAULT_SERVER,
        epilog="Example: retrain-client --train_directory /data/flowers/train "
        "--output_directory /data/flowers/tfrecord --train_shards 4",
    )
    parser.add_argument("--train_directory", default="", help="TRAIN_DIR/<label>/* (absolute)")
    parser.add_argument("--validation_directory", default="", help="VALIDATION_DIR/<label>/*")
    parser.add_argument("--output_directory", required=True, help="where the shards go")
    parser.add_argument(
        "--labels_file", default="", help="one label per line (default: the subdirectories)"
    )
    parser.add_argument("--train_shards", type=int, help="default 2")
    parser.add_argument("--validation_shards", type=int, help="default 2")
    parser.add_argument("--format", default="", help="tfrecord (default) or webdataset")
    parser.add_argument("--verify", default="",
                        help="full (default: every JPEG scan decoded) or structure (input you "
                        "trust: markers and EOI only)")
    parser.add_argument("--request_id", default="", help="idempotency key (default: a random one)")
    parser.add_argument("--token_file", help="file holding the client token (else RETRAIN_TOKEN)")
    parser.add_argument(
        "--tls_ca_file", default=os.environ.get("RETRAIN_TLS_CA_FILE"),
        help="PEM CA of the server's certificate: connect over TLS (else RETRAIN_TLS_CA_FILE)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S,
        help="seconds per unary call (default 30)",
    )
    parser.add_argument(
        "--wait_timeout", type=float, help="seconds to wait for the job (default: no limit)"
    )
    args = parser.parse_args(argv)
    if not args.train_directory and not args.validation_directory:
        parser.error("give --train_directory, --validation_directory or both")
    return args


def main(argv=None):
    args = _parse_args(argv)
    try:
        token = load_token(args.token_file)
    except TokenError as error:
        print("retrain-client: %s" % error, file=sys.stderr)
        return EXIT_USAGE
    tls_ca = None
    if args.tls_ca_file:
        try:
            with open(args.tls_ca_file, "rb") as f:
                tls_ca = f.read()
        except OSError as error:
            print("retrain-client: --tls_ca_file %s: %s" % (args.tls_ca_file, error.strerror),
                  file=sys.stderr)
            return EXIT_USAGE
    spec = dataset_pb2.DatasetBuildSpec(
        train_directory=args.train_directory,
        validation_directory=args.validation_directory,
        output_directory=args.output_directory,
        labels_file=args.labels_file,
        format=args.format,
        verify=args.verify,
    )
    if args.train_shards is not None:
        spec.train_shards = args.train_shards
    if args.validation_shards is not None:
        spec.validation_shards = args.validation_shards
    request_id = args.request_id or "py-" + uuid.uuid4().hex
    target = os.environ.get("RETRAIN_SERVER") or DEFAULT_SERVER
    try:
        client = RetrainClient(target, token, timeout_s=args.timeout, tls_ca=tls_ca)
    except (ValueError, OSError) as error:
        print("retrain-client: RETRAIN_SERVER: %s" % error, file=sys.stderr)
        return EXIT_USAGE

    with client:
        try:
            job = client.submit_dataset_build(spec, request_id)
            print("submitted %s (request_id %s)" % (job.id, request_id), flush=True)
            last = [None]

            def show(snapshot):
                line = progress_line(snapshot)
                if line != last[0]:
                    print(line, flush=True)
                    last[0] = line

            client.wait(job.id, on_update=show, timeout_s=args.wait_timeout)
            job = client.get_job(job.id)
        except grpc.RpcError as error:
            message, code = explain_error(error, client)
            print("retrain-client: %s" % message, file=sys.stderr)
            return code
        except WaitTimeout as error:
            print("retrain-client: %s; it goes on (see `retrain status %s`)" % (error, job.id),
                  file=sys.stderr)
            return EXIT_WAIT_TIMEOUT
    print("\n".join(result_lines(job)), flush=True)
    if job.state == job_pb2.JOB_STATE_SUCCEEDED:
        return EXIT_OK
    return EXIT_CANCELLED if job.state == job_pb2.JOB_STATE_CANCELLED else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
