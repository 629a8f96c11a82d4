#!/usr/bin/env bash
# Copies CC0 sample photos out of the scikit-image wheel (skimage/data/) into
# www/samples/, without installing scikit-image.
set -euo pipefail
cd "$(dirname "$0")/.."
out=www/samples
want=(chelsea.png coffee.png astronaut.png rocket.jpg)
have=0; for f in "${want[@]}"; do [ -f "$out/$f" ] && have=$((have+1)); done
[ "$have" = "${#want[@]}" ] && exit 0
tmp=$(mktemp -d)
# Pinned: the page tests compare top-5 classes of these very photos.
.venv/bin/pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp" scikit-image==0.26.0
mkdir -p "$out"
.venv/bin/python - "$tmp" "$out" "${want[@]}" <<'PY'
import sys, zipfile, glob, os
tmp, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with z.open(f"skimage/data/{n}") as src, open(os.path.join(out, n), "wb") as dst:
            dst.write(src.read())
print(f"samples: {', '.join(names)} -> {out}", file=sys.stderr)
PY
rm -rf "$tmp"
