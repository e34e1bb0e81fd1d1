"""retrain's binaries as a running cluster for the Python tests: servers
with client and worker tokens on loopback ports, in a temporary directory,
and workers; stopped at the end, also on failure, and killed with the test.

The binaries come from RETRAIN_BIN_DIR. Every wait is bounded. `run_tests`
runs a test module's unittest main with that guaranteed.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

CLIENT_TOKEN = "client-token-for-the-test"
WORKER_TOKEN = "worker-token-for-the-test"
# Seconds.
START_TIMEOUT = 30
STOP_TIMEOUT = 10
# How long a standby waits for a silent leader (retrain-server --leader_lease_ms).
LEADER_LEASE_MS = 2000

# Log tails of the stopped clusters, printed when a test failed.
_logs = []
# Clusters started and not yet stopped.
_live_clusters = []


def die_with_parent():
    """In a child before exec: SIGKILL it when this process dies, so that a
    test killed by ctest's timeout leaves no server or worker behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def environment(**overrides):
    """This process's environment without proxy settings (gRPC would honour
    them even on loopback), with `overrides`; a value of None removes it."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update({k: v for k, v in overrides.items() if v is not None})
    for k in [k for k, v in overrides.items() if v is None]:
        env.pop(k, None)
    return env


def write_secret(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text + "\n")


class Cluster:
    """retrain-servers with tokens and retrain-workers, under `root`. The
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

    def start(self, servers=1, workers=1):
        _live_clusters.append(self)
        if not os.path.isfile(os.path.join(self._bin_dir, "retrain-server")):
            raise RuntimeError("RETRAIN_BIN_DIR=%r holds no retrain-server" % self._bin_dir)
        os.makedirs(self.data_root)
        write_secret(self.client_token_file, CLIENT_TOKEN)
        worker_token_file = os.path.join(self.root, "worker.token")
        write_secret(worker_token_file, WORKER_TOKEN)
        for i in range(servers):
            self._start_server(i, worker_token_file)
            if self.state_db is not None and i == 0:
                self.wait_for_leader()  # the first to start leads
        self.address = self.addresses[0]
        for i in range(workers):
            self._spawn("retrain-worker", "--server", ",".join(self.addresses),
                        "--token_file", worker_token_file, "--threads", "1",
                        name="retrain-worker-%d" % i)

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
                cwd=self.root, env=environment(), preexec_fn=die_with_parent,
            )
        self._processes.append((name, process, log))
        return process


def run_tests(argv):
    """unittest's main on `argv` (the program name first); what is still
    running is stopped at the end, also on SIGTERM (ctest's timeout), and
    the logs of every stopped process are printed when a test failed.
    Exits 1 then."""
    def interrupt(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        program = unittest.main(argv=argv, exit=False, verbosity=2)
    finally:
        for cluster in list(_live_clusters):
            cluster.stop()
    if not program.result.wasSuccessful():
        for name, code, text in _logs:
            print("---- %s (exit %s), last lines:\n%s" % (name, code, text), file=sys.stderr)
        sys.exit(1)
