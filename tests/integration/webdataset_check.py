#!/usr/bin/python3
"""Reads a retrain dataset of WebDataset shards with Python's tarfile and
Pillow alone (none of retrain's code) and checks it the way a PyTorch user's
tools would see it.

    webdataset_check.py DATA_DIR

Checks every shard the manifest lists: its size and SHA-256; that tarfile
reads it as POSIX ustar members of regular files with owner 0:0, mode 0644
and time 0; that its samples are adjacent .jpg, .cls and .json members of
one key each, keys unique in the dataset; that each .jpg is an RGB JPEG of
the size its .json gives and each .cls its label; and that the shard's
index is, byte for byte, what DALI's tools/wds2idx.py makes of it. Prints a
JSON object: {"records": N, "samples": [{"split", "shard", "key", "label",
"label_name", "filename", "height", "width", "jpeg_sha256"}, ...]} in shard
order. Exits 1 with the problems on stderr if any.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

from PIL import Image

EXTENSIONS = ["jpg", "cls", "json"]


def split_name(name):
    """DALI's split: the key before the first dot of the base name, the rest."""
    dot = name.find(".", name.rfind("/") + 1)
    return name[:dot], name[dot + 1:]


def dali_index(samples):
    """The index DALI's wds2idx.py writes for these samples."""
    lines = ["v1.2 %d" % len(samples)]
    for members in samples:
        lines.append(" ".join("%s %d %d %s" % (split_name(m.name)[1], m.offset_data, m.size,
                                               m.name) for m in members))
    return "\n".join(lines) + "\n"


def check_shard(data_dir, split, shard, problems, keys, out):
    path = os.path.join(data_dir, shard["file"])
    raw = open(path, "rb").read()
    where = shard["file"]
    if len(raw) != shard["num_bytes"]:
        problems.append("%s: %d bytes, the manifest says %d" % (where, len(raw), shard["num_bytes"]))
    if hashlib.sha256(raw).hexdigest() != shard["sha256"]:
        problems.append("%s: SHA-256 differs from the manifest's" % where)
    samples = []
    with tarfile.open(path, "r:") as archive:
        for m in archive:
            header = raw[m.offset:m.offset + 512]
            if header[257:265] != b"ustar\x0000":
                problems.append("%s: %s is not a POSIX ustar member" % (where, m.name))
            if (m.type != tarfile.REGTYPE or m.uid or m.gid or m.mtime or m.mode != 0o644
                    or m.uname or m.gname):
                problems.append("%s: %s is not a 0644 file of 0:0 at time 0" % (where, m.name))
            if samples and split_name(samples[-1][0].name)[0] == split_name(m.name)[0]:
                samples[-1].append(m)
            else:
                samples.append([m])
        for members in samples:
            key = split_name(members[0].name)[0]
            if [split_name(m.name)[1] for m in members] != EXTENSIONS:
                problems.append("%s: sample %s has members %s" % (where, key,
                                                                   [m.name for m in members]))
                continue
            if key in keys:
                problems.append("%s: key %s is used twice" % (where, key))
            keys.add(key)
            jpeg, cls, info = (archive.extractfile(m).read() for m in members)
            info = json.loads(info)
            image = Image.open(io.BytesIO(jpeg))
            if image.format != "JPEG" or image.mode != "RGB":
                problems.append("%s: %s.jpg is %s %s" % (where, key, image.format, image.mode))
            if image.size != (info["width"], info["height"]):
                problems.append("%s: %s.jpg is %dx%d, its .json says %dx%d" %
                                (where, key, image.size[0], image.size[1], info["width"],
                                 info["height"]))
            if int(cls) != info["label"]:
                problems.append("%s: %s.cls says %s, its .json %d" % (where, key, cls,
                                                                       info["label"]))
            out.append({"split": split, "shard": shard["file"], "key": key,
                        "label": info["label"], "label_name": info["label_name"],
                        "filename": info["filename"], "height": info["height"],
                        "width": info["width"],
                        "jpeg_sha256": hashlib.sha256(jpeg).hexdigest()})
    if raw[-1024:] != bytes(1024):
        problems.append("%s: does not end with two zero blocks" % where)
    if len(samples) != shard["num_records"]:
        problems.append("%s: %d samples, the manifest says %d" % (where, len(samples),
                                                                  shard["num_records"]))
    index = open(os.path.join(data_dir, shard["index"])).read()
    if index != dali_index(samples):
        problems.append("%s: is not what wds2idx.py writes:\n%s---\n%s" %
                        (shard["index"], index[:300], dali_index(samples)[:300]))


def main():
    data_dir = sys.argv[1]
    manifest = json.load(open(os.path.join(data_dir, "dataset.json")))
    problems = []
    if manifest.get("shard_format") != "webdataset":
        problems.append("the manifest's shard_format is %r" % manifest.get("shard_format"))
    keys, samples = set(), []
    for split in ("train", "validation"):
        for shard in manifest["splits"].get(split, {}).get("shards", []):
            check_shard(data_dir, split, shard, problems, keys, samples)
    json.dump({"records": len(samples), "samples": samples}, sys.stdout)
    if problems:
        sys.stderr.write("\n".join(problems) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
