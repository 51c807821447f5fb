#!/usr/bin/env node
'use strict';
// End-to-end run of the Node client against running services (the test suite runs it):
// creates a dataset, subscribes to its created events, uploads a generated file in chunks,
// lists the dataset, waits for the item's created event, and prints a JSON summary.
//
//   node clients/node/bin/corral-node.js [--catalog HOST:PORT] [--upload HOST:PORT]
//        [--size BYTES] [--chunk-size BYTES] [--dataset NAME] [--timeout SECONDS]
//
// Addresses default to CORRAL_CATALOG_ADDR / CORRAL_UPLOAD_ADDR, then 127.0.0.1:50051/50052.
// Exits 0 on success, 1 on an error, 2 when the whole run exceeds --timeout.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');

const { CorralClient } = require('../corral');

function options() {
  const { values } = parseArgs({
    options: {
      catalog: { type: 'string', default: process.env.CORRAL_CATALOG_ADDR || '127.0.0.1:50051' },
      upload: { type: 'string', default: process.env.CORRAL_UPLOAD_ADDR || '127.0.0.1:50052' },
      size: { type: 'string', default: String(300 * 1024) },
      'chunk-size': { type: 'string', default: String(64 * 1024) },
      dataset: { type: 'string', default: `node-${crypto.randomBytes(4).toString('hex')}` },
      timeout: { type: 'string', default: '60' },
    },
  });
  return {
    catalogAddr: values.catalog, uploadAddr: values.upload, size: Number(values.size),
    chunkSize: Number(values['chunk-size']), dataset: values.dataset,
    timeout: Number(values.timeout),
  };
}

async function run(opts) {
  const client = new CorralClient({ catalogAddr: opts.catalogAddr, uploadAddr: opts.uploadAddr,
                                    timeout: 15, uploadTimeout: opts.timeout });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-node-'));
  try {
    const dataset = await client.createDataset(opts.dataset, 'made by clients/node');
    const name = 'random.bin';
    const remoteDir = '/node/run';
    const filename = `${remoteDir}/${name}`;

    // Subscribed before the upload: the created event arrives live on this stream.
    const created = client.waitForCreated(
      dataset.id, (event) => event.item && event.item.filename === filename, opts.timeout);

    const localPath = path.join(workDir, name);
    const content = crypto.randomBytes(opts.size);
    fs.writeFileSync(localPath, content);
    const localSha256 = crypto.createHash('sha256').update(content).digest('hex');

    const uploaded = await client.uploadFile(localPath, dataset.id, remoteDir, name,
                                             { chunkSize: opts.chunkSize });
    if (uploaded.sha256 !== localSha256) throw new Error('sha256 computed while sending differs');
    const listed = await client.listItems(dataset.id, '/', true);
    const event = await created;

    return {
      dataset_id: dataset.id,
      dataset_name: dataset.name,
      item_id: uploaded.item.id,
      filename: uploaded.item.filename,
      outcome: uploaded.outcome,
      size: uploaded.item.size, // int64: a decimal string (longs: String)
      sha256: localSha256,
      server_sha256: uploaded.item.sha256,
      chunk_size: opts.chunkSize,
      messages: uploaded.messages,
      listed: listed.map((item) => ({ filename: item.filename, type: item.type, size: item.size })),
      event: { type: event.type, item_id: event.item_id, cursor: event.cursor,
               filename: event.item.filename },
    };
  } finally {
    client.close();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

const opts = options();
const watchdog = setTimeout(() => {
  process.stderr.write(`corral-node: gave up after ${opts.timeout}s\n`);
  process.exit(2);
}, opts.timeout * 1000);
watchdog.unref();

run(opts).then((summary) => {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(0);
}, (err) => {
  process.stderr.write(`corral-node: ${err.stack || err}\n`);
  process.exit(1);
});
