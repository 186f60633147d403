#!/usr/bin/env bash
# Runs the demo study through `link` and writes its three linked tables as CSV into
# tests/fixtures/model_r/, the inputs of check.R (rerun check.R afterwards to refresh
# expected.json). Needed when the demo study or a stage before `model` changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run -q -- run --until link -q --out "$out"
cargo run -q --example link_csv -- "$out/link" tests/fixtures/model_r
