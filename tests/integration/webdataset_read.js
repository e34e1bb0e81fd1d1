#!/usr/bin/env node
// Reads a retrain dataset of WebDataset shards with node-tar (npm's "tar",
// Debian's node-tar; none of retrain's code), the way JavaScript tools see it.
//
//     NODE_PATH=/usr/share/nodejs node webdataset_read.js DATA_DIR
//
// For every shard the manifest lists, in its order: node-tar parses it
// strictly (a bad header checksum or a member cut short is an error); every
// member is a regular file of mode 0644, owner 0:0 and time 0; its members
// come three to a sample, <key>.jpg, <key>.cls and <key>.json; each .cls is
// its .json's label. Prints the JSON object webdataset_check.py prints for
// the same dataset ({"records", "samples": [{"split", "shard", "key",
// "label", "label_name", "filename", "height", "width", "jpeg_sha256"}]}),
// so that a test can require the two readers to agree. Exits 1 with the
// problems on stderr if any.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const tar = require('tar');

const EXTENSIONS = ['jpg', 'cls', 'json'];

// The members of a tar file, in order: {name, type, mode, uid, gid, mtime, data}.
function readMembers(file) {
  return new Promise((resolve, reject) => {
    const members = [];
    const parser = new tar.Parse({strict: true});
    parser.on('entry', (entry) => {
      const member = {
        name: entry.path,
        type: entry.type,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        mtime: entry.mtime ? entry.mtime.getTime() : null,
        data: null,
      };
      members.push(member);
      const chunks = [];
      entry.on('data', (chunk) => chunks.push(chunk));
      entry.on('end', () => {
        member.data = Buffer.concat(chunks);
      });
    });
    parser.on('error', reject);
    parser.on('end', () => resolve(members));
    fs.createReadStream(file).on('error', reject).pipe(parser);
  });
}

// DALI's split of a member name: the key before the first dot of the base
// name, and the extension after it.
function splitName(name) {
  const dot = name.indexOf('.', name.lastIndexOf('/') + 1);
  return [name.slice(0, dot), name.slice(dot + 1)];
}

async function readShard(dataDir, split, shard, problems, keys, out) {
  const where = shard.file;
  const members = await readMembers(path.join(dataDir, shard.file));
  for (const m of members) {
    if (m.type !== 'File' || m.mode !== 0o644 || m.uid !== 0 || m.gid !== 0 || m.mtime !== 0) {
      problems.push(`${where}: ${m.name} is not a 0644 file of 0:0 at time 0`);
    }
    if (m.data === null) problems.push(`${where}: ${m.name} has no end`);
  }
  if (members.length % EXTENSIONS.length !== 0) {
    problems.push(`${where}: ${members.length} members, not samples of ${EXTENSIONS.length}`);
  }
  let samples = 0;
  for (let i = 0; i + EXTENSIONS.length <= members.length; i += EXTENSIONS.length) {
    const group = members.slice(i, i + EXTENSIONS.length);
    const key = splitName(group[0].name)[0];
    const names = group.map((m) => splitName(m.name));
    if (names.some(([k, ext], j) => k !== key || ext !== EXTENSIONS[j])) {
      problems.push(`${where}: sample ${key} has members ${group.map((m) => m.name)}`);
      continue;
    }
    if (keys.has(key)) problems.push(`${where}: key ${key} is used twice`);
    keys.add(key);
    const [jpeg, cls, json] = group.map((m) => m.data);
    const info = JSON.parse(json.toString('utf8'));
    if (Number(cls.toString('utf8')) !== info.label) {
      problems.push(`${where}: ${key}.cls says ${cls}, its .json ${info.label}`);
    }
    out.push({
      split,
      shard: shard.file,
      key,
      label: info.label,
      label_name: info.label_name,
      filename: info.filename,
      height: info.height,
      width: info.width,
      jpeg_sha256: crypto.createHash('sha256').update(jpeg).digest('hex'),
    });
    ++samples;
  }
  if (samples !== shard.num_records) {
    problems.push(`${where}: ${samples} samples, the manifest says ${shard.num_records}`);
  }
}

async function main() {
  const dataDir = process.argv[2];
  const manifest = JSON.parse(fs.readFileSync(path.join(dataDir, 'dataset.json'), 'utf8'));
  const problems = [];
  const keys = new Set();
  const samples = [];
  for (const split of ['train', 'validation']) {
    for (const shard of (manifest.splits[split] || {}).shards || []) {
      try {
        await readShard(dataDir, split, shard, problems, keys, samples);
      } catch (error) {
        problems.push(`${shard.file}: ${error.message}`);
      }
    }
  }
  process.stdout.write(JSON.stringify({records: samples.length, samples}));
  if (problems.length) {
    process.stderr.write(problems.join('\n') + '\n');
    process.exitCode = 1;
  }
}

main();
