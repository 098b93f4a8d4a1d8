#!/usr/bin/env bash
# Set up a virtual environment (.venv) and run the checks and tests. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]" -e plugins/asrfair-agebuckets \
    -e plugins/asrfair-regression
.venv/bin/ruff check src tests plugins benchmarks scripts
.venv/bin/mypy
.venv/bin/mypy plugins/asrfair-agebuckets/src
.venv/bin/mypy plugins/asrfair-regression/src
.venv/bin/python -m pytest -q
