'use strict';
// A small Node.js client for corral's catalog and upload services. It loads the repo's .proto
// files at run time with @grpc/proto-loader (no generated code); google/protobuf/*.proto
// (struct, timestamp, field_mask) come from the copies bundled with protobufjs.
//
// Messages are plain objects with the protos' snake_case field names (keepCase). Decoding:
// int64 fields arrive as decimal strings (longs: String), never as lossy JS numbers; enums
// as their names ("EVENT_TYPE_CREATED"). On requests an int64 may be a number or a string.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'protos');
const PROTO_FILES = [
  'corral/catalog/v1/catalog_service.proto',
  'corral/upload/v1/upload_service.proto',
];
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};
// The services accept and send messages up to 16 MiB (services/common/server.py).
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
};
const DEFAULT_CHUNK_SIZE = 1024 * 1024;
const LIST_PAGE_SIZE = 500;

let cachedProto = null;

/** The loaded corral packages: proto.corral.catalog.v1, proto.corral.upload.v1. */
function loadProtos() {
  if (!cachedProto) {
    const definition = protoLoader.loadSync(PROTO_FILES, LOADER_OPTIONS);
    cachedProto = grpc.loadPackageDefinition(definition);
  }
  return cachedProto;
}

function deadline(seconds) {
  return new Date(Date.now() + seconds * 1000);
}

/** google.protobuf.Value/Struct as decoded by proto-loader -> plain JS values. */
function fromValue(value) {
  if (!value || !value.kind) return null;
  switch (value.kind) {
    case 'nullValue': return null;
    case 'numberValue': return value.numberValue;
    case 'stringValue': return value.stringValue;
    case 'boolValue': return value.boolValue;
    case 'structValue': return fromStruct(value.structValue);
    case 'listValue': return (value.listValue.values || []).map(fromValue);
    default: return null;
  }
}

function fromStruct(struct) {
  const out = {};
  for (const [key, value] of Object.entries((struct && struct.fields) || {})) {
    out[key] = fromValue(value);
  }
  return out;
}

/** Plain JS object -> google.protobuf.Struct for requests. */
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object || {})) fields[key] = toValue(value);
  return { fields };
}

function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  return { structValue: toStruct(value) };
}

/** A client interceptor adding the API key to the metadata of every call. */
function bearer(apiKey) {
  return (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('authorization', `Bearer ${apiKey}`);
      next(metadata, listener);
    },
  });
}

class CorralClient {
  /**
   * @param {object} options
   * @param {string} options.catalogAddr host:port of the catalog service
   * @param {string} options.uploadAddr host:port of the upload service
   * @param {number} [options.timeout=30] seconds allowed for each unary call
   * @param {number} [options.uploadTimeout=600] seconds allowed for one upload stream
   * @param {string} [options.apiKey] sent as `authorization: Bearer <key>` on every call
   *   (default: the CORRAL_API_KEY environment variable)
   * @param {string} [options.caFile] PEM CA that signed the services' certificates: use TLS
   *   (default: the CORRAL_TLS_CA environment variable; unset = plaintext)
   */
  constructor({ catalogAddr, uploadAddr, timeout = 30, uploadTimeout = 600,
    apiKey = process.env.CORRAL_API_KEY, caFile = process.env.CORRAL_TLS_CA } = {}) {
    if (!catalogAddr || !uploadAddr) throw new Error('catalogAddr and uploadAddr are required');
    const proto = loadProtos();
    const credentials = caFile
      ? grpc.credentials.createSsl(fs.readFileSync(caFile))
      : grpc.credentials.createInsecure();
    const options = { ...CHANNEL_OPTIONS, interceptors: apiKey ? [bearer(apiKey)] : [] };
    this.catalog = new proto.corral.catalog.v1.CatalogService(catalogAddr, credentials, options);
    this.upload = new proto.corral.upload.v1.UploadService(uploadAddr, credentials, options);
    this.timeout = timeout;
    this.uploadTimeout = uploadTimeout;
  }

  close() {
    this.catalog.close();
    this.upload.close();
  }

  _unary(stub, method, request) {
    return new Promise((resolve, reject) => {
      stub[method](request, { deadline: deadline(this.timeout) }, (err, response) => {
        if (err) reject(err); else resolve(response);
      });
    });
  }

  /** Creates a dataset; resolves to the Dataset message. */
  async createDataset(name, description = '') {
    const response = await this._unary(this.catalog, 'CreateDataset', { name, description });
    return response.dataset;
  }

  async getItem(itemId) {
    const response = await this._unary(this.catalog, 'GetItem', { item_id: itemId });
    return response.item;
  }

  /**
   * Every item of a folder (or everything below it with recursive), following page tokens.
   * Resolves to an array of Item messages, folders included, ordered by filename.
   */
  async listItems(datasetId, dir = '/', recursive = false, { pageSize = LIST_PAGE_SIZE } = {}) {
    const items = [];
    let pageToken = '';
    do {
      const response = await this._unary(this.catalog, 'ListItems', {
        dataset_id: datasetId, dir, recursive, page_size: pageSize,
        page_token: pageToken,
      });
      items.push(...response.items);
      pageToken = response.next_page_token;
    } while (pageToken);
    return items;
  }

  /**
   * Streams a local file to UploadService.UploadItem in chunks: the first message carries
   * the spec (with the declared size), every message its write_offset, the last one
   * finish_write and the sha256 computed while sending (the server checks both). Honours
   * backpressure, so the file is never held in memory. Resolves to
   * { item, outcome, sha256, size, messages }.
   */
  uploadFile(filePath, datasetId, remoteDir = '/', name = path.basename(filePath),
             { chunkSize = DEFAULT_CHUNK_SIZE, metadata = null, duplicatePolicy } = {}) {
    return new Promise((resolve, reject) => {
      const size = fs.statSync(filePath).size;
      const spec = { dataset_id: datasetId, remote_dir: remoteDir, name, size };
      if (metadata) spec.user_metadata = toStruct(metadata);
      if (duplicatePolicy) spec.duplicate_policy = duplicatePolicy;
      const hash = crypto.createHash('sha256');
      let offset = 0;
      let messages = 0;
      let failed = false;
      const fail = (err) => {
        if (failed) return;
        failed = true;
        input.destroy();
        call.cancel();
        reject(err);
      };

      const call = this.upload.UploadItem(
        { deadline: deadline(this.uploadTimeout) },
        (err, response) => {
          if (err) return fail(err);
          resolve({ item: response.item, outcome: response.outcome, sha256, size: offset,
                    messages });
        });
      const send = (message) => {
        if (offset === 0 && messages === 0) message.spec = spec;
        messages += 1;
        return call.write(message);
      };

      let sha256 = '';
      const input = fs.createReadStream(filePath, { highWaterMark: chunkSize });
      input.on('data', (chunk) => {
        hash.update(chunk);
        const more = send({ write_offset: offset, data: chunk });
        offset += chunk.length;
        if (!more) {
          input.pause();
          call.once('drain', () => input.resume());
        }
      });
      input.on('error', fail);
      input.on('end', () => {
        sha256 = hash.digest('hex');
        send({ write_offset: offset, finish_write: true, sha256 });
        call.end();
      });
    });
  }

  /**
   * Subscribes to the CREATED events of a dataset (CatalogService.Subscribe, an ephemeral
   * subscription from the start of the stream unless startPosition says otherwise) and calls
   * onEvent(event) for each. Returns the call: call.cancel() ends it (the resulting
   * CANCELLED status is not reported to onError).
   */
  subscribeCreated(datasetId, onEvent, { onError = () => {},
                                         startPosition = 'START_POSITION_EARLIEST' } = {}) {
    const call = this.catalog.Subscribe({
      dataset_id: datasetId, event_types: ['EVENT_TYPE_CREATED'],
      start_position: startPosition,
    });
    call.on('data', (response) => onEvent(response.event));
    call.on('error', (err) => {
      if (err.code !== grpc.status.CANCELLED) onError(err);
    });
    return call;
  }

  /**
   * Resolves to the CREATED event of the item `predicate(event)` selects, or rejects after
   * timeoutSeconds. The subscription is cancelled either way.
   */
  waitForCreated(datasetId, predicate, timeoutSeconds = 30) {
    return new Promise((resolve, reject) => {
      let call = null;
      const timer = setTimeout(() => {
        if (call) call.cancel();
        reject(new Error(`no matching created event within ${timeoutSeconds}s`));
      }, timeoutSeconds * 1000);
      call = this.subscribeCreated(datasetId, (event) => {
        if (!predicate(event)) return;
        clearTimeout(timer);
        call.cancel();
        resolve(event);
      }, { onError: (err) => { clearTimeout(timer); reject(err); } });
    });
  }
}

module.exports = {
  CorralClient, loadProtos, fromStruct, toStruct, grpc, PROTO_ROOT, DEFAULT_CHUNK_SIZE,
};
