#!/usr/bin/python3
"""End-to-end test of the Python example client, client/python/retrain_client.py.

Starts a real retrain-server (with client and worker tokens, port 0, in a
temporary directory) and one retrain-worker, writes a small labelled image
tree with one broken file, and runs the client as a subprocess the way a
user would: a build that succeeds, the same build resubmitted with the same
request id, and calls without or with a wrong token. Then two servers on one
PostgreSQL database (retrain-test-postgres): the client given the standby
first goes to the leader, and after the leader is killed to its successor.

Usage: python_client_test.py --stubs_dir DIR --client PATH --postgres PATH
[unittest args].
The binaries come from RETRAIN_BIN_DIR. Every wait is bounded; the server and
worker are stopped at the end, also on failure, and die with this process.
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

# Set by main().
STUBS_DIR = None
CLIENT = None
POSTGRES = None  # retrain-test-postgres

CLIENT_TOKEN = "client-token-for-the-test"
WORKER_TOKEN = "worker-token-for-the-test"
LABELS = ("cat", "dog")
IMAGES_PER_LABEL = 3
# Seconds.
START_TIMEOUT = 30
CLIENT_TIMEOUT = 120
STOP_TIMEOUT = 10
# How long a standby waits for a silent leader (retrain-server --leader_lease_ms).
LEADER_LEASE_MS = 2000

# Log tails of the stopped clusters, printed when a test failed.
_logs = []
# Clusters started and not yet stopped.
_live_clusters = []


def _die_with_parent():
    """In a child before exec: SIGKILL it when this process dies, so that a
    test killed by ctest's timeout leaves no server or worker behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _environment(**overrides):
    """This process's environment without proxy settings (gRPC would honour
    them even on loopback), with `overrides`; a value of None removes it."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update({k: v for k, v in overrides.items() if v is not None})
    for k in [k for k, v in overrides.items() if v is None]:
        env.pop(k, None)
    return env


def _write_secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text + "\n")


def write_images(train_dir):
    """TRAIN_DIR/<label>/*.jpg for LABELS, IMAGES_PER_LABEL each, and
    dog/broken.jpg: the first bytes of a JPEG."""
    from PIL import Image

    for i, label in enumerate(LABELS):
        os.makedirs(os.path.join(train_dir, label))
        for n in range(IMAGES_PER_LABEL):
            image = Image.new("RGB", (40 + n, 30), (200 * i, 40 * n, 255 - 100 * i))
            image.save(os.path.join(train_dir, label, "%s-%d.jpg" % (label, n)), quality=90)
    with open(os.path.join(train_dir, "cat", "cat-0.jpg"), "rb") as f:
        head = f.read(300)
    with open(os.path.join(train_dir, "dog", "broken.jpg"), "wb") as f:
        f.write(head)


def read_tfrecords(path):
    """The records of a TFRecord file (length, masked CRCs not checked)."""
    records = []
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if not header:
                return records
            (length,) = struct.unpack("<Q", header[:8])
            records.append(f.read(length))
            f.read(4)


class Cluster:
    """retrain-servers with tokens and one retrain-worker, under `root`. The
    servers' data root is `root`/data. Their state is in `root`/state
    (SQLite), or with `state_db` ({"uri": ..., "password_file": ...}) in
    PostgreSQL, where one leads and the others stand by."""

    def __init__(self, root, state_db=None):
        self.root = root
        self.data_root = os.path.join(root, "data")
        self.client_token_file = os.path.join(root, "client.token")
        self.state_db = state_db
        self.address = None  # the first server's
        self.addresses = []
        self.http_ports = []
        self._bin_dir = os.environ.get("RETRAIN_BIN_DIR", "")
        self._processes = []  # (name, Popen, log path)

    def start(self, servers=1):
        _live_clusters.append(self)
        if not os.path.isfile(os.path.join(self._bin_dir, "retrain-server")):
            raise RuntimeError("RETRAIN_BIN_DIR=%r holds no retrain-server" % self._bin_dir)
        os.makedirs(self.data_root)
        _write_secret(self.client_token_file, CLIENT_TOKEN)
        worker_token_file = os.path.join(self.root, "worker.token")
        _write_secret(worker_token_file, WORKER_TOKEN)
        for i in range(servers):
            self._start_server(i, worker_token_file)
            if self.state_db is not None and i == 0:
                self.wait_for_leader()  # the first to start leads
        self.address = self.addresses[0]
        self._spawn("retrain-worker", "--server", ",".join(self.addresses),
                    "--token_file", worker_token_file, "--threads", "1")

    def _start_server(self, i, worker_token_file):
        port_file = os.path.join(self.root, "server-%d.port" % i)
        http_port_file = os.path.join(self.root, "server-%d.http-port" % i)
        if self.state_db is None:
            state = ["--state_dir", os.path.join(self.root, "state")]
        else:
            state = ["--state_db", self.state_db["uri"],
                     "--state_db_password_file", self.state_db["password_file"],
                     "--leader_lease_ms", str(LEADER_LEASE_MS)]
        server = self._spawn(
            "retrain-server",
            "--listen", "127.0.0.1:0", "--port_file", port_file,
            "--http_listen", "127.0.0.1:0", "--http_port_file", http_port_file,
            *state, "--data_root", self.data_root,
            "--client_token_file", self.client_token_file,
            "--worker_token_file", worker_token_file,
            "--lease_timeout_ms", "5000", "--heartbeat_interval_ms", "500",
            name="retrain-server-%d" % i,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not (os.path.exists(port_file) and os.path.exists(http_port_file)):
            if server.poll() is not None:
                raise RuntimeError("retrain-server exited with %d at start" % server.returncode)
            if time.monotonic() > deadline:
                raise RuntimeError("retrain-server wrote no port file in %d s" % START_TIMEOUT)
            time.sleep(0.05)
        with open(port_file) as f:
            self.addresses.append("127.0.0.1:%d" % int(f.read()))
        with open(http_port_file) as f:
            self.http_ports.append(int(f.read()))

    def leader(self):
        """The index of the server whose /readyz answers 200 (the one that
        leads), or None."""
        for i, port in enumerate(self.http_ports):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=2) as r:
                    if r.status == 200:
                        return i
            except (urllib.error.URLError, OSError):
                pass
        return None

    def wait_for_leader(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            i = self.leader()
            if i is not None:
                return i
            time.sleep(0.1)
        raise RuntimeError("no retrain-server leads after %d s" % timeout)

    def kill_server(self, i):
        """SIGKILLs server `i` (the way a machine is lost)."""
        servers = [p for name, p, _ in self._processes if name.startswith("retrain-server")]
        servers[i].kill()
        servers[i].wait(timeout=STOP_TIMEOUT)

    def stop(self):
        """Stops every process (SIGTERM, SIGKILL after STOP_TIMEOUT) and keeps
        the tails of their logs in _logs."""
        for name, process, log in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT)
            with open(log, errors="replace") as f:
                _logs.append((name, process.returncode, f.read()[-4000:]))
        self._processes = []
        if self in _live_clusters:
            _live_clusters.remove(self)

    def _spawn(self, binary, *args, name=None):
        name = name or binary
        log = os.path.join(self.root, name + ".log")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [os.path.join(self._bin_dir, binary), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.root, env=_environment(), preexec_fn=_die_with_parent,
            )
        self._processes.append((name, process, log))
        return process


class ClientTest(unittest.TestCase):
    """Runs the client against self.cluster on the tree at self.train_dir."""

    cluster = None
    train_dir = None

    def run_client(self, output_name, *args, **env):
        """Runs the client on the image tree into data/<output_name>; `env`
        overrides the environment (RETRAIN_TOKEN=CLIENT_TOKEN and
        RETRAIN_SERVER=the cluster by default)."""
        env.setdefault("RETRAIN_TOKEN", CLIENT_TOKEN)
        env.setdefault("RETRAIN_SERVER", self.cluster.address)
        env = _environment(PYTHONPATH=STUBS_DIR, **env)
        command = [
            sys.executable, CLIENT, "--train_directory", self.train_dir,
            "--output_directory", os.path.join(self.cluster.data_root, output_name),
            "--train_shards", "2", "--timeout", "10", "--wait_timeout", "90", *args,
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=CLIENT_TIMEOUT)

    def assertExit(self, run, code):
        message = "exit %d\nstdout:\n%s\nstderr:\n%s" % (run.returncode, run.stdout, run.stderr)
        self.assertEqual(run.returncode, code, message)


class PythonClientTest(ClientTest):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="retrain-python-client-")
        cls.addClassCleanup(cls._tmp.cleanup)
        # The server refuses symlinks out of its data roots: no symlinked /tmp.
        cls.cluster = Cluster(os.path.realpath(cls._tmp.name))
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.train_dir = os.path.join(cls.cluster.data_root, "images", "train")
        write_images(cls.train_dir)

    def test_build_succeeds_and_reports_the_result(self):
        run = self.run_client("out")
        self.assertExit(run, 0)
        lines = run.stdout.splitlines()
        self.assertRegex(lines[0], r"^submitted j-\d+ \(request_id py-[0-9a-f]+\)$")
        job_id = lines[0].split()[1]
        # Progress lines; the last one shows the final state.
        progress = [line for line in lines[1:] if line.startswith(job_id + " ")]
        self.assertTrue(progress, run.stdout)
        self.assertTrue(progress[-1].startswith(job_id + " SUCCEEDED"), run.stdout)
        for expected in (
            "job %s SUCCEEDED" % job_id,
            "train: 6 records in 2 shards (0 converted)",
            "  class 1 cat: 3",
            "  class 2 dog: 3",
            "skipped: 1 file(s)",
        ):
            self.assertIn(expected, lines, run.stdout)
        self.assertRegex(run.stdout, r"\n  train/dog/broken\.jpg: truncated \(")
        self.assertEqual(run.stderr, "")

        out = os.path.join(self.cluster.data_root, "out")
        shards = sorted(f for f in os.listdir(out) if f.startswith("train-"))
        self.assertEqual(shards, ["train-00000-of-00002", "train-00001-of-00002"])
        with open(os.path.join(out, "dataset.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["splits"]["train"]["num_records"], 6)
        self.assertEqual([s["reason"] for s in manifest["skipped"]], ["truncated"])

        # The shards hold tf.Example records, read with the generated stubs.
        from tensorflow.core.example import example_pb2

        texts = []
        for shard in shards:
            self.assertTrue(os.path.isfile(os.path.join(out, "index", shard + ".idx")))
            for record in read_tfrecords(os.path.join(out, shard)):
                feature = example_pb2.Example.FromString(record).features.feature
                texts.append(feature["image/class/text"].bytes_list.value[0].decode())
        self.assertEqual(sorted(texts), ["cat"] * 3 + ["dog"] * 3)

    def test_resubmit_with_token_file_and_request_id_returns_the_same_job(self):
        args = ("--token_file", self.cluster.client_token_file, "--request_id", "same-build")
        first = self.run_client("out-again", *args, RETRAIN_TOKEN=None)
        self.assertExit(first, 0)
        second = self.run_client("out-again", *args, RETRAIN_TOKEN=None)
        self.assertExit(second, 0)
        self.assertEqual(first.stdout.split()[1], second.stdout.split()[1])
        self.assertIn("submitted %s (request_id same-build)" % first.stdout.split()[1],
                      second.stdout)

    def test_without_token_names_retrain_token(self):
        run = self.run_client("out-no-token", RETRAIN_TOKEN=None)
        self.assertExit(run, 1)
        self.assertIn("RETRAIN_TOKEN", run.stderr)
        self.assertIn("no token was sent", run.stderr)
        self.assertNotIn("Traceback", run.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.cluster.data_root, "out-no-token")))

    def test_wrong_token_names_retrain_token(self):
        run = self.run_client("out-wrong-token", RETRAIN_TOKEN="not-the-token")
        self.assertExit(run, 1)
        self.assertIn("RETRAIN_TOKEN", run.stderr)
        self.assertIn("the token was not accepted", run.stderr)

    def test_several_servers_reach_the_one_that_serves(self):
        # A port nothing listens on, then the coordinator: the calls go to
        # the one whose health service says SERVING.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = "127.0.0.1:%d" % s.getsockname()[1]
        run = self.run_client("out-several", RETRAIN_SERVER=dead + "," + self.cluster.address)
        self.assertExit(run, 0)
        self.assertIn("SUCCEEDED", run.stdout)

    def test_a_server_list_that_is_not_host_port_is_a_usage_error(self):
        run = self.run_client("out-bad-server", RETRAIN_SERVER="127.0.0.1:1,nowhere")
        self.assertExit(run, 2)
        self.assertIn("RETRAIN_SERVER: '127.0.0.1:1,nowhere' is not HOST:PORT", run.stderr)

    def test_missing_token_file_is_a_usage_error(self):
        run = self.run_client("out-bad-file", "--token_file", "/nonexistent/token")
        self.assertExit(run, 2)
        self.assertIn("--token_file /nonexistent/token", run.stderr)


class FollowTheLeaderTest(ClientTest):
    """Two coordinators on one PostgreSQL database (retrain-test-postgres):
    the client, given both, goes to the one that leads, and to its successor
    once it is gone."""

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="retrain-python-failover-")
        cls.addClassCleanup(cls._tmp.cleanup)
        postgres = subprocess.Popen(
            [POSTGRES], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=_environment(), preexec_fn=_die_with_parent,
        )
        # Closing its standard input stops the server (cleanups run last first).
        cls.addClassCleanup(postgres.stdout.close)
        cls.addClassCleanup(postgres.wait, timeout=STOP_TIMEOUT)
        cls.addClassCleanup(postgres.stdin.close)
        line = postgres.stdout.readline()
        if not line:
            raise RuntimeError("retrain-test-postgres started no server (exit %s)" % postgres.wait())
        cls.cluster = Cluster(os.path.realpath(cls._tmp.name), state_db=json.loads(line))
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start(servers=2)
        cls.train_dir = os.path.join(cls.cluster.data_root, "images", "train")
        write_images(cls.train_dir)

    def test_the_client_follows_the_leader_and_its_successor(self):
        leader = self.cluster.wait_for_leader()
        standby = 1 - leader
        addresses = self.cluster.addresses
        # The standby named first: it answers, but not as the leader.
        run = self.run_client(
            "out-standby-first", RETRAIN_SERVER=addresses[standby] + "," + addresses[leader])
        self.assertExit(run, 0)
        self.assertIn("SUCCEEDED", run.stdout)
        # The leader lost: the standby takes over, and the client, given the
        # dead one first, follows it there.
        self.cluster.kill_server(leader)
        run = self.run_client(
            "out-after-failover", RETRAIN_SERVER=addresses[leader] + "," + addresses[standby])
        self.assertExit(run, 0)
        self.assertIn("SUCCEEDED", run.stdout)
        self.assertEqual(self.cluster.leader(), standby)


def main():
    global STUBS_DIR, CLIENT, POSTGRES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs_dir", required=True, help="the generated Python stubs")
    parser.add_argument("--client", required=True, help="retrain_client.py")
    parser.add_argument("--postgres", required=True,
                        help="retrain-test-postgres (a PostgreSQL server for the failover test)")
    args, rest = parser.parse_known_args()
    STUBS_DIR, CLIENT = os.path.abspath(args.stubs_dir), os.path.abspath(args.client)
    POSTGRES = os.path.abspath(args.postgres)
    if not os.path.isdir(os.path.join(STUBS_DIR, "retrain", "v1")):
        sys.exit("no stubs in %s: build the target retrain_python_stubs first" % STUBS_DIR)
    sys.path.insert(0, STUBS_DIR)
    # SIGTERM ends the run as ^C does; what is still running is stopped.
    def interrupt(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        program = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    finally:
        for cluster in list(_live_clusters):
            cluster.stop()
    if not program.result.wasSuccessful():
        for name, code, text in _logs:
            print("---- %s (exit %s), last lines:\n%s" % (name, code, text), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
