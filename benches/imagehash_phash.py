"""Images per CPU-second of Python's `imagehash.phash` on the image bench's JPEGs, one thread.

The comparison point of `cargo bench --bench images`, which writes the JPEGs under
target/image-bench/ and runs this script between its own passes (argument: seconds to run,
default 3). Needs Pillow and imagehash, e.g. in a throwaway venv:

    python3 -m venv /tmp/ihvenv && /tmp/ihvenv/bin/pip install imagehash
    LOOMGUARD_BENCH_PYTHON=/tmp/ihvenv/bin/python cargo bench --bench images -- --report
"""

import glob
import io
import os
import sys
import time

import imagehash
from PIL import Image

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
root = os.path.join(os.path.dirname(__file__), "..", "target", "image-bench")
files = sorted(glob.glob(os.path.join(root, "*.jpg")))
if not files:
    raise SystemExit("no JPEGs under target/image-bench: run cargo bench --bench images first")
blobs = [open(f, "rb").read() for f in files]

# CPU time of this thread, as the Rust bench counts its own: other processes on a shared
# machine do not slow the count down.
done = 0
started = time.thread_time()
while time.thread_time() - started < seconds:
    for blob in blobs:
        imagehash.phash(Image.open(io.BytesIO(blob)))
        done += 1
elapsed = time.thread_time() - started
print(f"{done / elapsed:.1f} images/s: imagehash {imagehash.__version__} phash, {len(files)} files, one thread")
