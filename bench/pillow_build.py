#!/usr/bin/python3
"""The peer: TensorFlow's build_image_data.py redone with Python + Pillow.

Run with the system interpreter, which has Pillow and crcmod:

  /usr/bin/python3 bench/pillow_build.py \
      --train_directory T --validation_directory V --output_directory O \
      --labels_file L [--train_shards 2] [--validation_shards 2] [--num_threads 2]
  /usr/bin/python3 bench/pillow_build.py --verify O   # check the shards in O

It does what tensorflow/models research/inception/inception/data/
build_image_data.py does, step for step, with Pillow in place of the
TensorFlow session that decodes and re-encodes images:
  - labels file: one directory name per line (stripped); line 1 is label 1;
  - files: sorted glob of <dir>/<label>/*, no extension filter;
  - all (file, label) pairs shuffled with random.seed(12345);
  - num_threads Python threads, each writing a contiguous run of shards
    (num_threads must divide both shard counts); validation first, as the
    reference does;
  - every image is read and fully decoded; a PNG is decoded, re-encoded as
    JPEG quality 100 and that JPEG decoded again (as the reference's
    png_to_jpeg + decode_jpeg); other data is stored byte for byte;
  - one tf.train.Example per image with the reference's nine features,
    serialized by hand (protobuf wire format), in TFRecord framing with
    masked CRC-32C (crcmod's C extension).
One deliberate difference: PNGs are recognised by their content (the PNG
signature), not by a lowercase ".png" name. On data whose names match their
content (as retrain-make-images writes) the two rules agree.

Progress goes to stderr. The last line on stdout is one JSON object:
  {"images": N, "skipped": K, "bytes": input bytes, "output_bytes": ...,
   "seconds": S, "images_per_s": ..., "mb_per_s": ...}   (MB = bytes / 1e6)
"""

import argparse
import glob
import io
import json
import os
import random
import re
import struct
import sys
import threading
import time

import crcmod.predefined
from PIL import Image

from protowire import fields, len_field, read_varint, varint

# crcmod silently falls back to pure Python (~100x slower); the peer should
# not be handicapped by that, so insist on the C extension.
if not getattr(sys.modules.get('crcmod.crcmod'), '_usingExtension', False):
  sys.exit('pillow_build.py: crcmod has no C extension (crcmod._crcfunext); '
           'install python3-crcmod and run with /usr/bin/python3')
_crc32c = crcmod.predefined.mkPredefinedCrcFun('crc-32c')
assert _crc32c(b'123456789') == 0xE3069283

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


# --------------------------------------------------------------------------
# TFRecord framing.

def masked_crc(data):
  crc = _crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class TFRecordWriter(object):
  """TensorFlow's record_writer.cc framing, uncompressed."""

  def __init__(self, path):
    self._f = open(path, 'wb')
    self.bytes = 0

  def write(self, record):
    header = struct.pack('<Q', len(record))
    self._f.write(header)
    self._f.write(struct.pack('<I', masked_crc(header)))
    self._f.write(record)
    self._f.write(struct.pack('<I', masked_crc(record)))
    self.bytes += 16 + len(record)

  def close(self):
    self._f.close()


# --------------------------------------------------------------------------
# tf.train.Example in the protobuf wire format (bench/protowire.py), from
# feature.proto/example.proto:
#   Example  { Features features = 1; }
#   Features { map<string, Feature> feature = 1; }  (entries: key = 1, value = 2)
#   Feature  { BytesList bytes_list = 1; FloatList float_list = 2;
#              Int64List int64_list = 3; }
#   BytesList { repeated bytes value = 1; }
#   Int64List { repeated int64 value = 1 [packed = true]; }

def _int64_feature(value):
  int64_list = len_field(1, varint(value))  # packed: one varint
  return len_field(3, int64_list)


def _bytes_feature(value):
  return len_field(1, len_field(1, value))


def serialize_example(features):
  """features: dict str -> serialized Feature. Entries sorted by key."""
  entries = b''.join(
      len_field(1, len_field(1, k.encode('utf-8')) + len_field(2, v))
      for k, v in sorted(features.items()))
  return len_field(1, entries)


def _convert_to_example(filename, image_buffer, label, text, height, width):
  colorspace = b'RGB'
  channels = 3
  image_format = b'JPEG'
  return serialize_example({
      'image/height': _int64_feature(height),
      'image/width': _int64_feature(width),
      'image/colorspace': _bytes_feature(colorspace),
      'image/channels': _int64_feature(channels),
      'image/class/label': _int64_feature(label),
      'image/class/text': _bytes_feature(text.encode('utf-8')),
      'image/format': _bytes_feature(image_format),
      'image/filename': _bytes_feature(os.path.basename(filename).encode('utf-8')),
      'image/encoded': _bytes_feature(image_buffer),
  })


# --------------------------------------------------------------------------
# Images: Pillow in place of the reference's ImageCoder (a TF session).

def _decode_rgb(data):
  im = Image.open(io.BytesIO(data))
  im.load()
  if im.mode != 'RGB':
    im = im.convert('RGB')
  return im


def _png_to_jpeg(data):
  im = _decode_rgb(data)
  out = io.BytesIO()
  im.save(out, format='JPEG', quality=100)
  return out.getvalue()


def _process_image(filename):
  """Returns (image bytes to store, height, width, input size)."""
  with open(filename, 'rb') as f:
    image_data = f.read()
  size = len(image_data)
  if image_data[:8] == PNG_SIGNATURE:
    image_data = _png_to_jpeg(image_data)
  image = _decode_rgb(image_data)  # decode_jpeg(channels=3) in the reference
  width, height = image.size
  return image_data, height, width, size


# --------------------------------------------------------------------------
# The reference's structure.

class Stats(object):
  def __init__(self):
    self.lock = threading.Lock()
    self.images = 0
    self.skipped = 0
    self.bytes = 0
    self.output_bytes = 0


def _linspace_int(start, stop, num):
  """np.linspace(start, stop, num).astype(int), without numpy."""
  if num == 1:
    return [int(start)]
  step = (stop - start) / float(num - 1)
  return [int(start + i * step) if i < num - 1 else int(stop) for i in range(num)]


def _process_image_files_batch(thread_index, ranges, name, filenames, texts, labels,
                               num_shards, output_directory, stats):
  num_threads = len(ranges)
  assert not num_shards % num_threads
  num_shards_per_batch = int(num_shards / num_threads)
  shard_ranges = _linspace_int(ranges[thread_index][0], ranges[thread_index][1],
                               num_shards_per_batch + 1)
  num_files_in_thread = ranges[thread_index][1] - ranges[thread_index][0]
  counter = 0
  for s in range(num_shards_per_batch):
    shard = thread_index * num_shards_per_batch + s
    output_filename = '%s-%.5d-of-%.5d' % (name, shard, num_shards)
    writer = TFRecordWriter(os.path.join(output_directory, output_filename))
    shard_counter = 0
    images = skipped = in_bytes = 0
    for i in range(shard_ranges[s], shard_ranges[s + 1]):
      filename, label, text = filenames[i], labels[i], texts[i]
      try:
        image_buffer, height, width, size = _process_image(filename)
      except Exception as e:  # the reference prints SKIPPED and goes on
        sys.stderr.write('SKIPPED: %s: %s\n' % (filename, e))
        skipped += 1
        continue
      writer.write(_convert_to_example(filename, image_buffer, label, text, height, width))
      shard_counter += 1
      counter += 1
      images += 1
      in_bytes += size
      if not counter % 1000:
        sys.stderr.write('[thread %d]: Processed %d of %d images in thread batch.\n' %
                         (thread_index, counter, num_files_in_thread))
    writer.close()
    with stats.lock:
      stats.images += images
      stats.skipped += skipped
      stats.bytes += in_bytes
      stats.output_bytes += writer.bytes
    sys.stderr.write('[thread %d]: Wrote %d images to %s\n' %
                     (thread_index, shard_counter, output_filename))


def _process_image_files(name, filenames, texts, labels, num_shards, num_threads,
                         output_directory, stats):
  assert len(filenames) == len(texts) == len(labels)
  spacing = _linspace_int(0, len(filenames), num_threads + 1)
  ranges = [[spacing[i], spacing[i + 1]] for i in range(len(spacing) - 1)]
  sys.stderr.write('Launching %d threads for spacings: %s\n' % (num_threads, ranges))
  threads = []
  for thread_index in range(len(ranges)):
    t = threading.Thread(target=_process_image_files_batch,
                         args=(thread_index, ranges, name, filenames, texts, labels,
                               num_shards, output_directory, stats))
    t.start()
    threads.append(t)
  for t in threads:
    t.join()
  sys.stderr.write('Finished writing all %d images in data set.\n' % len(filenames))


def _find_image_files(data_dir, labels_file):
  with open(labels_file, 'r') as f:
    unique_labels = [l.strip() for l in f.readlines()]
  labels, filenames, texts = [], [], []
  label_index = 1  # label 0 is the background class
  for text in unique_labels:
    matching_files = sorted(glob.glob('%s/%s/*' % (data_dir, text)))
    labels.extend([label_index] * len(matching_files))
    texts.extend([text] * len(matching_files))
    filenames.extend(matching_files)
    label_index += 1
  shuffled_index = list(range(len(filenames)))
  random.seed(12345)
  random.shuffle(shuffled_index)
  filenames = [filenames[i] for i in shuffled_index]
  texts = [texts[i] for i in shuffled_index]
  labels = [labels[i] for i in shuffled_index]
  sys.stderr.write('Found %d JPEG files across %d labels inside %s.\n' %
                   (len(filenames), len(unique_labels), data_dir))
  return filenames, texts, labels


def _process_dataset(name, directory, num_shards, labels_file, num_threads,
                     output_directory, stats):
  filenames, texts, labels = _find_image_files(directory, labels_file)
  _process_image_files(name, filenames, texts, labels, num_shards, num_threads,
                       output_directory, stats)


# --------------------------------------------------------------------------
# --verify: read shards back, checking framing, CRCs and the Example features.

def parse_example(record):
  """Returns dict key -> list of int (int64_list) or list of bytes (bytes_list)."""
  out = {}
  for f, _, features in fields(record):
    if f != 1:
      continue
    for f2, _, entry in fields(features):
      if f2 != 1:
        continue
      key, value = None, b''
      for f3, _, v in fields(entry):
        if f3 == 1:
          key = bytes(v).decode('utf-8')
        elif f3 == 2:
          value = v
      values = []
      for kind, _, lst in fields(value):
        for _, wire, v in fields(lst):
          if kind == 3 and wire == 2:  # packed int64
            p = 0
            while p < len(v):
              x, p = read_varint(v, p)
              values.append(x - (1 << 64) if x >> 63 else x)
          elif kind == 3:
            values.append(v - (1 << 64) if v >> 63 else v)
          else:
            values.append(bytes(v))
      out[key] = values
  return out


EXPECTED_KEYS = {'image/height', 'image/width', 'image/colorspace', 'image/channels',
                 'image/class/label', 'image/class/text', 'image/format',
                 'image/filename', 'image/encoded'}


def verify_shard(path, extra):
  """Returns the number of records; raises ValueError naming file and offset.

  Adds the names of features beyond the reference's nine to the set `extra`.
  """
  with open(path, 'rb') as f:
    data = f.read()
  pos = records = 0
  while pos < len(data):
    if pos + 12 > len(data):
      raise ValueError('%s: truncated record header at offset %d' % (path, pos))
    header = data[pos:pos + 8]
    (length,) = struct.unpack('<Q', header)
    (crc,) = struct.unpack('<I', data[pos + 8:pos + 12])
    if crc != masked_crc(header):
      raise ValueError('%s: corrupted record length at offset %d' % (path, pos))
    end = pos + 12 + length + 4
    if end > len(data):
      raise ValueError('%s: truncated record at offset %d' % (path, pos))
    record = data[pos + 12:pos + 12 + length]
    (crc,) = struct.unpack('<I', data[end - 4:end])
    if crc != masked_crc(record):
      raise ValueError('%s: corrupted record data at offset %d' % (path, pos))
    ex = parse_example(record)
    if not EXPECTED_KEYS <= set(ex):
      raise ValueError('%s: record at offset %d lacks features %s' %
                       (path, pos, sorted(EXPECTED_KEYS - set(ex))))
    extra.update(set(ex) - EXPECTED_KEYS)
    enc = ex['image/encoded'][0]
    if (ex['image/colorspace'] != [b'RGB'] or ex['image/format'] != [b'JPEG'] or
        ex['image/channels'] != [3] or ex['image/class/label'][0] < 1 or
        not enc.startswith(b'\xff\xd8\xff') and not enc.startswith(PNG_SIGNATURE[:4]) and
        not enc.startswith(b'GIF')):
      raise ValueError('%s: record at offset %d has unexpected values' % (path, pos))
    records += 1
    pos = end
  return records


SHARD_NAME = re.compile(r'^(.+)-(\d{5})-of-(\d{5})$')


def verify(directory):
  """Checks every <name>-NNNNN-of-NNNNN file in `directory` (other files, such
  as index files, are ignored) and prints one JSON line."""
  shards = sorted(p for p in glob.glob(os.path.join(directory, '*'))
                  if os.path.isfile(p) and SHARD_NAME.match(os.path.basename(p)))
  if not shards:
    sys.exit('pillow_build.py: no <name>-NNNNN-of-NNNNN shards in %s' % directory)
  total = 0
  per_split = {}
  extra = set()
  for path in shards:
    n = verify_shard(path, extra)
    split = SHARD_NAME.match(os.path.basename(path)).group(1)
    per_split[split] = per_split.get(split, 0) + n
    total += n
  print(json.dumps({'shards': len(shards), 'records': total, 'per_split': per_split,
                    'extra_features': sorted(extra), 'ok': True}))


# --------------------------------------------------------------------------

def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--train_directory', default='/tmp/', help='Training data directory')
  p.add_argument('--validation_directory', default='/tmp/', help='Validation data directory')
  p.add_argument('--output_directory', default='/tmp/', help='Output data directory')
  p.add_argument('--train_shards', type=int, default=2,
                 help='Number of shards in training TFRecord files.')
  p.add_argument('--validation_shards', type=int, default=2,
                 help='Number of shards in validation TFRecord files.')
  p.add_argument('--num_threads', type=int, default=2,
                 help='Number of threads to preprocess the images.')
  p.add_argument('--labels_file', default='', help='Labels file')
  p.add_argument('--verify', metavar='DIR',
                 help='only check the TFRecord shards in DIR (CRCs, features) and count records')
  args = p.parse_args()

  if args.verify:
    try:
      verify(args.verify)
    except (ValueError, IndexError) as e:
      sys.exit('pillow_build.py: verify failed: %s' % e)
    return

  assert not args.train_shards % args.num_threads, (
      'Please make the args.num_threads commensurate with args.train_shards')
  assert not args.validation_shards % args.num_threads, (
      'Please make the args.num_threads commensurate with args.validation_shards')
  sys.stderr.write('Saving results to %s\n' % args.output_directory)

  stats = Stats()
  start = time.monotonic()
  _process_dataset('validation', args.validation_directory, args.validation_shards,
                   args.labels_file, args.num_threads, args.output_directory, stats)
  _process_dataset('train', args.train_directory, args.train_shards,
                   args.labels_file, args.num_threads, args.output_directory, stats)
  secs = time.monotonic() - start
  print(json.dumps({
      'images': stats.images, 'skipped': stats.skipped, 'bytes': stats.bytes,
      'output_bytes': stats.output_bytes, 'seconds': round(secs, 3),
      'images_per_s': round(stats.images / secs, 1),
      'mb_per_s': round(stats.bytes / 1e6 / secs, 2)}))


if __name__ == '__main__':
  main()
