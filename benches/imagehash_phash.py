"""Images per second of Python's `imagehash.phash` on the image bench's JPEGs, one thread.

The comparison point for `cargo bench --bench images` (which writes the JPEGs under
target/image-bench/ first). Needs Pillow and imagehash, e.g. in a throwaway venv:

    python3 -m venv /tmp/ihvenv && /tmp/ihvenv/bin/pip install imagehash
    /tmp/ihvenv/bin/python benches/imagehash_phash.py
"""

import glob
import os
import time

import imagehash
from PIL import Image

root = os.path.join(os.path.dirname(__file__), "..", "target", "image-bench")
files = sorted(glob.glob(os.path.join(root, "*.jpg")))
if not files:
    raise SystemExit("no JPEGs under target/image-bench: run cargo bench --bench images first")
blobs = [open(f, "rb").read() for f in files]

import io

done = 0
started = time.perf_counter()
while time.perf_counter() - started < 3.0:
    for blob in blobs:
        imagehash.phash(Image.open(io.BytesIO(blob)))
        done += 1
elapsed = time.perf_counter() - started
print(f"imagehash {imagehash.__version__} phash: {done / elapsed:.1f} images/s ({len(files)} files, one thread)")
