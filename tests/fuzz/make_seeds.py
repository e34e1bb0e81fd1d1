#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (corpus/<target>/), small
valid and nearly valid inputs from which the fuzzer mutates. Run with
Debian's python3 (python3-crcmod, python3-pil, python3-protobuf) and the
stubs the build generates:
  PYTHONPATH=build/client/python/stubs /usr/bin/python3 tests/fuzz/make_seeds.py
The corpora are checked in; this documents where they came from."""
import io
import json
import os
import struct

import crcmod.predefined
from PIL import Image

from retrain.v1 import job_service_pb2
from tensorflow.core.example import example_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
_crc = crcmod.predefined.mkCrcFun("crc-32c")


def masked_crc(data):
    crc = _crc(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data):
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def jpeg(w, h, **kwargs):
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 80, 30)).save(out, "JPEG", quality=80, **kwargs)
    return out.getvalue()


def png(w, h):
    out = io.BytesIO()
    Image.new("RGB", (w, h), (20, 80, 130)).save(out, "PNG")
    return out.getvalue()


def example(encoded, label, with_label=True):
    e = example_pb2.Example()
    f = e.features.feature
    f["image/encoded"].bytes_list.value.append(encoded)
    if with_label:
        f["image/class/label"].int64_list.value.append(label)
    f["image/class/text"].bytes_list.value.append(b"cat")
    f["image/height"].int64_list.value.append(6)
    f["image/width"].int64_list.value.append(8)
    return e.SerializeToString()


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def main():
    small = jpeg(8, 6)
    records = tfrecord(example(small, 1)) + tfrecord(example(small, 2))
    write("tfrecord_reader", "two_records", records)
    write("tfrecord_reader", "truncated", records[:-7])
    bad = bytearray(records)
    bad[20] ^= 0xFF
    write("tfrecord_reader", "corrupt_data", bytes(bad))
    write("tfrecord_reader", "empty", b"")

    write("example", "valid", example(small, 3))
    write("example", "no_label", example(small, 3, with_label=False))
    write("example", "not_an_example", b"\xff\xfe not a protobuf")

    write("image_check", "baseline.jpg", small)
    write("image_check", "progressive.jpg", jpeg(16, 16, progressive=True))
    write("image_check", "truncated.jpg", small[: len(small) // 2])
    write("image_check", "image.png", png(4, 4))
    write("image_check", "gif_magic", b"GIF89a\x01\x00\x01\x00")

    write("labels", "plain", "cat\ndog\nbird\n")
    write("labels", "messy", "  cat \n\n dog\r\ncat\na/b\n..\n\xc3\xa9t\xc3\xa9\n")

    manifest = {
        "num_classes": 3,
        "background_class": True,
        "labels": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "splits": {
            "train": {
                "num_records": 3,
                "num_converted": 0,
                "shards": [
                    {"file": "train-00000-of-00002", "num_records": 2, "num_bytes": 900,
                     "sha256": "00", "index": "index/train-00000-of-00002.idx"},
                    {"file": "train-00001-of-00002", "num_records": 1, "num_bytes": 450,
                     "sha256": "00", "index": "index/train-00001-of-00002.idx"},
                ],
                "class_counts": [{"id": 1, "name": "cat", "count": 2},
                                 {"id": 2, "name": "dog", "count": 1}],
            }
        },
        "skipped": [],
        "duplicates": [],
        "seed": 12345,
    }
    write("manifest", "valid.json", json.dumps(manifest, indent=1))
    manifest["splits"]["train"]["num_records"] = 7
    write("manifest", "counts_disagree.json", json.dumps(manifest))
    write("manifest", "not_json", "{\"num_classes\": ")

    def safetensors(file_size, header):
        return struct.pack("<Q", file_size) + json.dumps(header).encode()

    weights = {"__metadata__": {"retrain.model": "small"},
               "fc.weight": {"dtype": "F32", "shape": [3, 2], "data_offsets": [0, 24]},
               "fc.bias": {"dtype": "BF16", "shape": [3], "data_offsets": [24, 30]}}
    header_bytes = 8 + len(json.dumps(weights))
    write("safetensors_header", "valid", safetensors(header_bytes + 30, weights))
    weights["fc.bias"]["data_offsets"] = [20, 26]
    write("safetensors_header", "overlapping", safetensors(header_bytes + 30, weights))
    write("safetensors_header", "past_the_end", safetensors(16, weights))
    write("safetensors_header", "huge_shape", safetensors(
        1 << 62, {"x": {"dtype": "F64", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}))

    build = job_service_pb2.SubmitDatasetBuildRequest()
    build.spec.train_directory = "/tmp/retrain-fuzz-requests/data/train"
    build.spec.output_directory = "/tmp/retrain-fuzz-requests/data/out"
    build.spec.train_shards = 2
    write("request", "build", b"\x00" + build.SerializeToString())
    train = job_service_pb2.SubmitTrainingRequest()
    train.spec.data_dir = "/tmp/retrain-fuzz-requests/data/out"
    train.spec.train_dir = "/tmp/retrain-fuzz-requests/data/run"
    train.spec.model = "small"
    train.spec.batch_size = 64
    train.spec.num_replicas = 2
    train.spec.max_steps = 10
    write("request", "train", b"\x01" + train.SerializeToString())
    evaluation = job_service_pb2.SubmitEvaluationRequest()
    evaluation.spec.data_dir = "/tmp/retrain-fuzz-requests/data/out"
    evaluation.spec.checkpoint_dir = "/tmp/retrain-fuzz-requests/data/run"
    write("request", "eval", b"\x02" + evaluation.SerializeToString())
    outside = job_service_pb2.SubmitDatasetBuildRequest()
    outside.spec.train_directory = "/etc/../tmp/x"
    outside.spec.output_directory = "relative/out"
    write("request", "outside_roots", b"\x00" + outside.SerializeToString())


if __name__ == "__main__":
    main()
