"""What a published manifest may say about where things are: its own location, nothing else.

The dataset's ``manifest.json`` and ``_manifest.json`` (the commit manifest, which carries the
run's whole config) are public. Before they are written, :func:`public_copy` rewrites every
string in them:

- a URI under the published folder itself stays as it is;
- a URI elsewhere under the storage root becomes a path relative to the published folder
  (``../../../reports/S/index.html``): the link still works next to the files, and no bucket
  name or endpoint is shown;
- any other URI (an S3 endpoint, ``openai_base_url``, another bucket, a local path) and any
  value of a field that names an endpoint, a base URL or a bucket becomes ``REDACTED``.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

REDACTED = "<redacted>"
# scheme://anything up to whitespace or a quote; also the bare "host:port" of no scheme is
# caught by the field names below.
_URI = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"'<>]*")
_LOCATION_FIELD = re.compile(r"(?:^|_)(?:endpoint|bucket|base_url|host|url)s?(?:_|$)", re.I)


def _relative(uri: str, base: str) -> str:
    """``uri`` as a path from the folder ``base`` (both under one root)."""
    return posixpath.relpath(uri.split("://", 1)[1], base.split("://", 1)[1])


def _rewrite(text: str, own: str, root: str) -> str:
    def one(match: re.Match[str]) -> str:
        uri = match.group(0).rstrip("/")
        if uri == own or uri.startswith(own + "/"):
            return uri
        if uri.startswith(root + "/"):
            return _relative(uri, own)
        return REDACTED

    return _URI.sub(one, text)


def public_copy(obj: Any, own_uri: str, root_uri: str, key: str = "") -> Any:
    """``obj`` (JSON-like) rewritten as the module docstring says; ``obj`` is not changed.

    ``own_uri``: the published folder; ``root_uri``: the resolved storage root.
    """
    own, root = own_uri.rstrip("/"), root_uri.rstrip("/")
    if isinstance(obj, dict):
        return {k: public_copy(v, own, root, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [public_copy(v, own, root, key) for v in obj]
    if not isinstance(obj, str):
        return obj
    text = _rewrite(obj, own, root)
    if _LOCATION_FIELD.search(key) and text and text == obj and not text.startswith(own):
        return REDACTED  # a bucket name, a host, a base URL without a scheme
    return text
