"""Bytes of disk an import of podman images into the node's containerd needs (load-image.sh).

    podman image inspect IMAGE... | python3 import_space.py LAYERS_JSON HAVE_FILE

prints ``ARCHIVE_BYTES NEW_BYTES``. ``podman save`` writes the whole archive (every distinct
layer of the images, uncompressed) to a temporary file before it streams it; containerd then
stores each layer it does not hold yet (a docker-archive layer is the uncompressed tar, so its
digest is the layer's diff ID) and unpacks it into a snapshot of about the same size.
LAYERS_JSON is podman's overlay-layers/layers.json (``diff-digest`` and ``diff-size`` of each
layer), HAVE_FILE the digests ``ctr content ls -q`` lists. Exits 2, saying why, when a layer's
size is not known: the caller then imports without a check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def import_space(images: list[dict], layers: list[dict], have: set[str]) -> tuple[int, int]:
    """(archive bytes, bytes containerd lacks) of importing ``images`` (podman inspect JSON)."""
    size = {layer["diff-digest"]: layer["diff-size"] for layer in layers if "diff-size" in layer}
    wanted = dict.fromkeys(d for image in images for d in image["RootFS"]["Layers"])
    unknown = [d for d in wanted if d not in size]
    if unknown:
        raise LookupError(f"no size in podman's layer store for layer {unknown[0]}")
    archive = sum(size[d] for d in wanted)
    return archive, sum(size[d] for d in wanted if d not in have)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    layers = json.loads(Path(argv[0]).read_text())
    have = set(Path(argv[1]).read_text().split())
    try:
        archive, new = import_space(json.load(sys.stdin), layers, have)
    except (LookupError, KeyError, TypeError) as err:
        print(f"import_space: {err!r}", file=sys.stderr)
        return 2
    print(archive, new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
