#!/usr/bin/python3
"""End-to-end test of the Python client, `retrain-client` (retrain.client)
as `pip install ./client/python` installs it.

Starts a real retrain-server (with client and worker tokens, port 0, in a
temporary directory) and one retrain-worker, writes a small labelled image
tree with one broken file, and runs the installed `retrain-client` as a
subprocess the way a user would: a build that succeeds, the same build
resubmitted with the same request id, and calls without or with a wrong
token. Then two servers on one PostgreSQL database (retrain-test-postgres):
the client given the standby first goes to the leader, and after the leader
is killed to its successor.

Usage: python_client_test.py --postgres PATH [unittest args], run by the
Python of the environment the package is installed in (tests/python/
install_package.sh makes one). The binaries come from RETRAIN_BIN_DIR.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

from cluster import CLIENT_TOKEN, STOP_TIMEOUT, Cluster, die_with_parent, environment, run_tests
from retrain import shards

# Set by main().
POSTGRES = None  # retrain-test-postgres
# The installed program, beside the interpreter.
CLIENT = os.path.join(os.path.dirname(sys.executable), "retrain-client")

LABELS = ("cat", "dog")
IMAGES_PER_LABEL = 3
# Seconds.
CLIENT_TIMEOUT = 120


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
        env = environment(**env)
        command = [
            CLIENT, "--train_directory", self.train_dir,
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
        shard_files = sorted(f for f in os.listdir(out) if f.startswith("train-"))
        self.assertEqual(shard_files, ["train-00000-of-00002", "train-00001-of-00002"])
        with open(os.path.join(out, "dataset.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["splits"]["train"]["num_records"], 6)
        self.assertEqual([s["reason"] for s in manifest["skipped"]], ["truncated"])

        # The shards hold tf.Example records.
        texts = []
        for shard in shard_files:
            self.assertTrue(os.path.isfile(os.path.join(out, "index", shard + ".idx")))
            for record in read_tfrecords(os.path.join(out, shard)):
                texts.append(shards.parse_example(record)["image/class/text"][0].decode())
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
            env=environment(), preexec_fn=die_with_parent,
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
    global POSTGRES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", required=True,
                        help="retrain-test-postgres (a PostgreSQL server for the failover test)")
    args, rest = parser.parse_known_args()
    POSTGRES = os.path.abspath(args.postgres)
    run_tests([sys.argv[0], *rest])


if __name__ == "__main__":
    main()
