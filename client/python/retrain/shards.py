"""Readers of a retrain dataset's manifest and shards: retrain.shards.

    dataset = Dataset("/data/digits")          # reads dataset.json
    for shard in dataset.shards("train"):
        for record in dataset.read(shard):
            record.jpeg, record.label, record.key, ...

Either shard format (docs/dataset-format.md): TFRecord files of tf.Example
records, each record's length and data checked against their masked
CRC-32C; or WebDataset tar files of <key>.jpg, <key>.cls and <key>.json
samples. Both give the same Records for the same build. A shard that does
not read as its format, or holds another number of records than the
manifest says, raises ShardError naming the file, the place and what was
found. Needs crcmod (Debian's python3-crcmod, with its C extension) and
protobuf; not torch.
"""

import dataclasses
import importlib.resources
import json
import os
import struct
import tarfile

import crcmod.predefined

MANIFEST = "dataset.json"
# What each manifest version holds: version 1 is TFRecord shards only,
# version 2 names its shard format.
MANIFEST_FORMATS = ("retrain-dataset/1", "retrain-dataset/2")
SHARD_FORMATS = ("tfrecord", "webdataset")
SPLITS = ("train", "validation")
# A WebDataset sample's members, in order.
SAMPLE_EXTENSIONS = ("jpg", "cls", "json")

_crc32c = crcmod.predefined.mkCrcFun("crc-32c")


class ManifestError(Exception):
    """A dataset.json that cannot be read as a retrain dataset's; the
    message names the file and the field."""


class ShardError(Exception):
    """A shard that does not read as its format says; the message names the
    file, the byte offset or record, and what was found."""


@dataclasses.dataclass(frozen=True)
class Shard:
    split: str
    file: str  # relative to the dataset's directory, e.g. "train-00000-of-00008"
    path: str
    num_records: int


@dataclasses.dataclass(frozen=True)
class Record:
    jpeg: bytes  # a baseline RGB JPEG of height x width
    label: int
    label_name: str
    filename: str  # the source file's base name
    height: int
    width: int
    key: str  # unique in the dataset: "<shard file>/<position>" or the sample's key


class Dataset:
    """A retrain dataset's manifest: its shard format, labels and shards."""

    def __init__(self, directory):
        self.directory = os.path.abspath(directory)
        path = os.path.join(self.directory, MANIFEST)
        try:
            with open(path, encoding="utf-8") as f:
                self.manifest = json.load(f)
        except OSError as error:
            raise ManifestError("%s: %s (is %s a dataset retrain built?)"
                                % (path, error.strerror, directory)) from error
        except ValueError as error:
            raise ManifestError("%s: not JSON: %s" % (path, error)) from error
        version = self.manifest.get("format")
        if version not in MANIFEST_FORMATS:
            raise ManifestError("%s: format %r is not one this reader knows (%s); a newer "
                                "retrain wrote it?" % (path, version, ", ".join(MANIFEST_FORMATS)))
        self.shard_format = self.manifest.get("shard_format", "tfrecord")
        if self.shard_format not in SHARD_FORMATS:
            raise ManifestError("%s: shard_format %r is not one of %s"
                                % (path, self.shard_format, ", ".join(SHARD_FORMATS)))
        self.num_classes = int(self.manifest["num_classes"])
        self.labels = {int(label["id"]): label["name"] for label in self.manifest["labels"]}

    def shards(self, split):
        """The shards of `split` ("train" or "validation"), in the manifest's
        order; ValueError naming the split when it is not one."""
        if split not in SPLITS:
            raise ValueError("split %r is not one of %s" % (split, ", ".join(SPLITS)))
        entries = self.manifest.get("splits", {}).get(split, {}).get("shards", [])
        return [Shard(split, e["file"], os.path.join(self.directory, e["file"]),
                      int(e["num_records"])) for e in entries]

    def num_records(self, split):
        return sum(shard.num_records for shard in self.shards(split))

    def read(self, shard, check_crc=True):
        """Yields the Records of `shard` in order. `check_crc`: check each
        TFRecord record's CRCs (WebDataset shards keep none)."""
        if self.shard_format == "webdataset":
            records = read_webdataset(shard.path)
        else:
            records = (_record_of_example(data, "%s/%d" % (shard.file, n), shard.path, offset)
                       for n, (offset, data) in enumerate(read_tfrecord(shard.path, check_crc)))
        count = 0
        for record in records:
            count += 1
            yield record
        if count != shard.num_records:
            raise ShardError("%s: %d records, the manifest says %d"
                             % (shard.path, count, shard.num_records))


def masked_crc32c(data):
    """TFRecord's checksum: CRC-32C, rotated right by 15 bits plus a constant."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord(path, check_crc=True):
    """Yields (offset, data) for each record of a TFRecord file: a
    little-endian u64 length, its masked CRC (u32), the data, its masked
    CRC (u32)."""
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ShardError("%s: at byte %d: the file ends inside a record's header"
                                 % (path, offset))
            length, length_crc = struct.unpack("<QI", header)
            if check_crc and masked_crc32c(header[:8]) != length_crc:
                raise ShardError("%s: at byte %d: the record's length fails its CRC"
                                 % (path, offset))
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise ShardError("%s: at byte %d: the file ends inside a record of %d bytes"
                                 % (path, offset, length))
            if check_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise ShardError("%s: at byte %d: the record's data fails its CRC"
                                 % (path, offset))
            yield offset, data
            offset += 16 + length


def _example_class():
    """tf.Example's message class, from descriptors in a pool of this
    module's own: no tensorflow module is needed, and a TensorFlow imported
    beside it keeps its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    data = importlib.resources.files("retrain").joinpath("tf_example.binpb").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.Example")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


_Example = None


def parse_example(data):
    """The features of a serialized tf.Example: {name: list of values}
    (bytes, floats or ints)."""
    global _Example
    if _Example is None:
        _Example = _example_class()
    example = _Example.FromString(data)
    features = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        features[name] = list(getattr(feature, kind).value) if kind else []
    return features


def _record_of_example(data, key, path, offset):
    try:
        f = parse_example(data)
        return Record(jpeg=f["image/encoded"][0], label=int(f["image/class/label"][0]),
                      label_name=f["image/class/text"][0].decode("utf-8"),
                      filename=f["image/filename"][0].decode("utf-8"),
                      height=int(f["image/height"][0]), width=int(f["image/width"][0]), key=key)
    except (KeyError, IndexError) as error:
        raise ShardError("%s: record at byte %d has no feature %s" % (path, offset, error))
    except Exception as error:  # protobuf's DecodeError, a bad UTF-8 name
        raise ShardError("%s: record at byte %d is not a tf.Example: %s"
                         % (path, offset, error)) from error


def _split_member_name(name):
    """(key, extension): the key before the first dot of the base name, as
    WebDataset readers split it."""
    dot = name.find(".", name.rfind("/") + 1)
    return (name, "") if dot < 0 else (name[:dot], name[dot + 1:])


def _record_of_sample(key, members, path):
    extensions = tuple(ext for ext, _ in members)
    if extensions != SAMPLE_EXTENSIONS:
        raise ShardError("%s: sample %s has members %s, not %s"
                         % (path, key, ", ".join(extensions), ", ".join(SAMPLE_EXTENSIONS)))
    jpeg, cls, info = (data for _, data in members)
    try:
        info = json.loads(info)
        label = int(cls.decode("ascii").strip())
        record = Record(jpeg=jpeg, label=label, label_name=info["label_name"],
                        filename=info["filename"], height=int(info["height"]),
                        width=int(info["width"]), key=key)
    except (ValueError, KeyError, TypeError) as error:
        raise ShardError("%s: sample %s: unreadable .cls or .json: %s" % (path, key, error))
    if label != info.get("label"):
        raise ShardError("%s: sample %s: .cls says %d, .json %r" % (path, key, label,
                                                                     info.get("label")))
    return record


def read_webdataset(path):
    """Yields a Record for each sample of a WebDataset tar file, read as a
    stream (one pass, one sample in memory)."""
    key, members = None, []
    try:
        with tarfile.open(path, "r|") as archive:
            for member in archive:
                if not member.isfile():
                    raise ShardError("%s: %s is not a regular file" % (path, member.name))
                member_key, extension = _split_member_name(member.name)
                if member_key != key and members:
                    yield _record_of_sample(key, members, path)
                    members = []
                key = member_key
                members.append((extension, archive.extractfile(member).read()))
    except tarfile.TarError as error:
        raise ShardError("%s: not a readable tar file: %s" % (path, error)) from error
    if members:
        yield _record_of_sample(key, members, path)
