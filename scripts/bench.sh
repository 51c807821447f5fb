#!/usr/bin/env bash
# Runs every benchmark (not part of the test suite). Each prints corral against its baseline
# from the same run and appends its rows to bench/results/<name>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pip install -q -e ".[dev,bench]"
.venv/bin/python -m bench.upload_large
.venv/bin/python -m bench.small_images
.venv/bin/python -m bench.thumbnails
.venv/bin/python -m bench.csv_import
.venv/bin/python -m bench.resume_upload
.venv/bin/python -m bench.events            # SQLite and PostgreSQL (127.0.0.1:5432): ~5 min
.venv/bin/python -m bench.metadata_queries
.venv/bin/python -m bench.triggers          # 3 concurrent triggers vs each alone, SQLite + PostgreSQL: ~5 min
.venv/bin/python -m bench.private_latency   # private dataset latency vs a 5,000-item backlog
.venv/bin/python -m bench.abuse             # 200 idle streams + 1 byte/s drips vs a second client: ~1 min
