"""The Node.js client (clients/node, @grpc/grpc-js loading the repo's protos) against the real
services: it creates a dataset, uploads a file in chunks, lists it and receives the item's
created event; the Python SDK then finds the same item, bytes and sha256.

Its npm dependencies are installed by scripts/test.sh (`npm ci --prefix clients/node`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from sdk.stack import Stack

from corral.client import Client

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "clients" / "node"
SCRIPT = NODE_DIR / "bin" / "corral-node.js"
SIZE = 300 * 1024
CHUNK = 64 * 1024


def run_node(stack: Stack, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is not installed (scripts/test.sh installs it)"
    assert (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir(), (
        "the Node client's dependencies are missing: npm ci --prefix clients/node "
        "(scripts/test.sh runs it)")
    return subprocess.run(
        [node, str(SCRIPT), "--catalog", stack.catalog.addr, "--upload", stack.upload.addr,
         "--timeout", "60", *args],
        capture_output=True, text=True, timeout=timeout, check=False)


def test_node_client_uploads_lists_and_gets_the_created_event(stack: Stack,
                                                              client: Client) -> None:
    done = run_node(stack, "--size", str(SIZE), "--chunk-size", str(CHUNK))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)

    # Sent in chunks: 5 data messages (4 x 64 KiB + 44 KiB) and the finishing one.
    assert summary["messages"] == -(-SIZE // CHUNK) + 1
    assert summary["outcome"] == "CREATE_OUTCOME_CREATED"
    assert summary["size"] == str(SIZE)  # int64 decoded as a string (longs: String)
    assert summary["server_sha256"] == summary["sha256"]
    assert summary["filename"] == "/node/run/random.bin"

    # The recursive listing holds the folders and the file.
    listed = {entry["filename"]: entry for entry in summary["listed"]}
    assert listed["/node"]["type"] == "ITEM_TYPE_DIR"
    assert listed["/node/run"]["type"] == "ITEM_TYPE_DIR"
    assert listed["/node/run/random.bin"] == {
        "filename": "/node/run/random.bin", "type": "ITEM_TYPE_FILE", "size": str(SIZE)}

    assert summary["event"]["type"] == "EVENT_TYPE_CREATED"
    assert summary["event"]["item_id"] == summary["item_id"]
    assert summary["event"]["cursor"]

    # The Python SDK sees the same item with the bytes the Node client hashed.
    item = client.get_item(summary["item_id"])
    assert item["dataset_id"] == summary["dataset_id"]
    assert item["filename"] == "/node/run/random.bin"
    assert item["size"] == SIZE
    assert item["sha256"] == summary["sha256"]
    data = client.download_bytes(summary["item_id"])
    assert len(data) == SIZE
    assert hashlib.sha256(data).hexdigest() == summary["sha256"]
    assert client.get_dataset(summary["dataset_name"])["id"] == summary["dataset_id"]


def test_node_client_uploads_an_empty_file_in_one_message(stack: Stack, client: Client) -> None:
    done = run_node(stack, "--size", "0")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["messages"] == 1
    assert summary["size"] == "0"
    assert summary["sha256"] == hashlib.sha256(b"").hexdigest()
    assert client.get_item(summary["item_id"])["size"] == 0


LIBRARY_SNIPPET = r"""
const fs = require('node:fs');
const path = require('node:path');
const { CorralClient } = require(process.env.CORRAL_NODE_LIB);
(async () => {
  const client = new CorralClient({ catalogAddr: process.argv[1], uploadAddr: process.argv[2] });
  const dataset = await client.createDataset(process.argv[3]);
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'corral-node-lib-'));
  for (const name of ['a.txt', 'b.txt', 'c.txt', 'd.txt', 'e.txt']) {
    fs.writeFileSync(path.join(dir, name), `content of ${name}`);
    await client.uploadFile(path.join(dir, name), dataset.id, '/flat', name,
                            { chunkSize: 4, metadata: { source: 'node', n: 1 } });
  }
  const paged = await client.listItems(dataset.id, '/flat', false, { pageSize: 2 });
  let rejected = null;
  try {
    await client.uploadFile(path.join(dir, 'a.txt'), 'f'.repeat(32), '/', 'a.txt');
  } catch (err) {
    rejected = err.code;
  }
  const item = await client.getItem(paged[0].id);
  const { fromStruct } = require(process.env.CORRAL_NODE_LIB);
  console.log(JSON.stringify({
    names: paged.map((i) => i.name), rejected, user: fromStruct(item.metadata.user) }));
  client.close();
  fs.rmSync(dir, { recursive: true, force: true });
})().catch((err) => { console.error(err); process.exit(1); });
"""


def test_node_library_follows_pages_sends_metadata_and_reports_server_errors(
        stack: Stack) -> None:
    node = shutil.which("node")
    assert node
    done = subprocess.run(
        [node, "-e", LIBRARY_SNIPPET, stack.catalog.addr, stack.upload.addr, "node-lib"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CORRAL_NODE_LIB": str(NODE_DIR / "corral.js")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # Three pages of two (page tokens followed), in filename order.
    assert result["names"] == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    assert result["rejected"] == 5  # NOT_FOUND: no such dataset; the promise rejects, no hang
    assert result["user"] == {"source": "node", "n": 1}


def test_node_client_reports_an_unreachable_service_and_exits(tmp_path: Path) -> None:
    # Nothing listens on port 1: the first call fails (no hang) and the exit status says so.
    node = shutil.which("node")
    assert node
    done = subprocess.run(
        [node, str(SCRIPT), "--catalog", "127.0.0.1:1", "--upload", "127.0.0.1:1",
         "--timeout", "20"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "UNAVAILABLE" in done.stderr

