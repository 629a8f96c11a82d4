#!/usr/bin/env bash
# The main job: set up, build the wasm package, and serve the page.
#   bash tools/start.sh          → http://127.0.0.1:8080/www/
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --page
bash tools/fetch_samples.sh
bash tools/build_wasm.sh
exec node tools/serve.mjs "${PORT:-8080}"
