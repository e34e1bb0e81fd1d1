"""A PyTorch dataset over a dataset retrain built: retrain.data.

    import torch
    from retrain.data import RetrainDataset

    train = RetrainDataset("/data/digits", split="train", shuffle=True)
    loader = torch.utils.data.DataLoader(train, batch_size=64, num_workers=2)
    for epoch in range(4):
        train.set_epoch(epoch)
        for images, labels in loader:  # uint8 [64, 3, H, W], int64 [64]
            ...

Either shard format (TFRecord or WebDataset). Each reader, one per
DataLoader worker of each distributed rank, reads whole shards: with R ranks
of W workers, reader r * W + w reads the shards whose position in the
epoch's order is r * W + w modulo R * W, so that one epoch over all of them
reads every record exactly once. The ranks must agree on `seed` and the
epoch. A reader with no shard yields nothing: give the build at least
R * W shards, and a multiple of it for ranks of equal length (what
DistributedDataParallel needs). The rank and world size come from the
arguments, else from torch.distributed once initialized, else 0 and 1.

Needs torch, and torchvision to decode (Debian's python3-torch and
python3-torchvision).
"""

import random

import torch
import torch.distributed
import torch.utils.data

from retrain import shards as shard_readers


def decode_jpeg(jpeg):
    """A JPEG's pixels as a uint8 tensor [3, height, width] (RGB)."""
    from torchvision.io import ImageReadMode, decode_jpeg as torchvision_decode

    data = torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)
    return torchvision_decode(data, mode=ImageReadMode.RGB)


class RetrainDataset(torch.utils.data.IterableDataset):
    """Yields (image, label) for each record of one split of a retrain
    dataset.

    directory: the build's output directory (it holds dataset.json).
    split: "train" or "validation".
    decode: True for the image as a uint8 tensor [3, H, W], False for the
        record's JPEG bytes as stored.
    transform: called on each image (decoded or not) before it is yielded.
    shuffle: a new order of shards every epoch and records shuffled through
        a buffer of `shuffle_buffer` records; the same `seed` and epoch
        give the same order. False: the manifest's order.
    rank, world_size: this process's place among the distributed ranks.
    check_crc: check each TFRecord record's CRCs (a damaged record raises
        retrain.shards.ShardError naming the shard and offset).
    """

    def __init__(self, directory, split="train", decode=True, transform=None, shuffle=False,
                 shuffle_buffer=1024, seed=0, rank=None, world_size=None, check_crc=True):
        super().__init__()
        self.dataset = shard_readers.Dataset(directory)
        self.split = split
        self.shards = self.dataset.shards(split)
        self.decode = decode
        self.transform = transform
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, shuffle_buffer)
        self.seed = seed
        self.epoch = 0
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise ValueError("rank %d is not in [0, world_size %d)" % (rank, world_size))
        self._rank, self._world_size = rank, world_size
        self.check_crc = check_crc

    @property
    def num_classes(self):
        """The classes of the dataset, the background class 0 included."""
        return self.dataset.num_classes

    @property
    def num_records(self):
        """The records of this split, over all ranks and workers."""
        return self.dataset.num_records(self.split)

    def set_epoch(self, epoch):
        """Orders the next iteration's shards and records for `epoch` (with
        shuffle). DataLoader workers made anew each epoch see it; with
        persistent_workers they do not."""
        self.epoch = epoch

    def world(self):
        """(rank, world_size) of this process."""
        if self._world_size is not None:
            return self._rank, self._world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def shards_of(self, reader, readers):
        """The shards reader `reader` of `readers` reads this epoch, in order."""
        order = list(self.shards)
        if self.shuffle:
            random.Random(self._epoch_seed()).shuffle(order)
        return order[reader::readers]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world_size = self.world()
        records = self._records(self.shards_of(rank * num_workers + worker,
                                               world_size * num_workers))
        if self.shuffle:
            records = self._shuffled(records, random.Random(self._epoch_seed() * 1009 + rank
                                                            * num_workers + worker))
        for record in records:
            image = decode_jpeg(record.jpeg) if self.decode else record.jpeg
            if self.transform is not None:
                image = self.transform(image)
            yield image, record.label

    def _epoch_seed(self):
        return self.seed * 100003 + self.epoch

    def _records(self, shards):
        for shard in shards:
            yield from self.dataset.read(shard, check_crc=self.check_crc)

    def _shuffled(self, records, rng):
        """`records` through a buffer of self.shuffle_buffer: each one out is
        drawn at random from those in."""
        buffer = []
        for record in records:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(record)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], record = record, buffer[i]
            yield record
        rng.shuffle(buffer)
        yield from buffer
