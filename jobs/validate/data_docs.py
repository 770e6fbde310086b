"""Publish GX Data Docs sites to ``{reports}/data_docs/``.

GX 1.13+ dropped its S3 store backends, so each validate job builds its site in a local
folder and copies it up through :class:`jobs.storage.Storage`. Every table gets its own site
(``data_docs/{table}/``) because each job runs its own ephemeral GX context; a small landing
page at ``data_docs/index.html`` links the three and shows each one's verdict.
"""

from __future__ import annotations

import html
import logging
import mimetypes
from pathlib import Path

from jobs.commit import SUCCESS
from jobs.storage import Storage, join
from jobs.validate.results import RESULT_FILE
from jobs.validate.suites import TABLES

log = logging.getLogger(__name__)


def upload_site(storage: Storage, site_dir: Path, dest_uri: str) -> int:
    """Replace ``dest_uri`` with the files of a built site; returns the number uploaded."""
    files = sorted(p for p in Path(site_dir).rglob("*") if p.is_file())
    if not (Path(site_dir) / "index.html").is_file():
        raise FileNotFoundError(f"Data Docs site {site_dir} has no index.html; was it built?")
    # Stale pages from an earlier attempt would otherwise stay linked from nowhere.
    storage.delete(dest_uri)
    for path in files:
        rel = path.relative_to(site_dir).as_posix()
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        storage.write_bytes(join(dest_uri, rel), path.read_bytes(), ctype)
    log.info("uploaded %d Data Docs files to %s", len(files), dest_uri)
    return len(files)


def _status(storage: Storage, validation_uri: str) -> tuple[str, str]:
    """(label, css class) of one table's committed verdict."""
    if not storage.exists(join(validation_uri, SUCCESS)):
        return "not run", "none"
    result = storage.read_json(join(validation_uri, RESULT_FILE))
    if not result.get("success"):
        return f"FAILED ({result['statistics']['critical_failed']} critical)", "fail"
    warn = result["statistics"]["warnings"]
    return ("passed" + (f" with {warn} warning(s)" if warn else "")), "pass"


def landing_page(storage: Storage, docs_uri: str, validation_root: str, snapshot: str) -> str:
    """Write ``{docs_uri}/index.html`` linking every table's site; returns its URI."""
    rows = []
    for table in TABLES:
        label, css = _status(storage, join(validation_root, table))
        site = join(docs_uri, table, "index.html")
        link = (
            f'<a href="{table}/index.html">{table}</a>'
            if storage.exists(site)
            else html.escape(table)
        )
        rows.append(f'<tr><td>{link}</td><td class="{css}">{html.escape(label)}</td></tr>')
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Data Docs — {html.escape(snapshot)}</title><style>"
        "body{font-family:sans-serif;margin:2em}"
        "td,th{padding:.3em 1em;border-bottom:1px solid #ddd}"
        ".pass{color:#17702a}.fail{color:#b00020;font-weight:bold}.none{color:#777}"
        "</style></head><body>"
        f"<h1>Great Expectations Data Docs — snapshot {html.escape(snapshot)}</h1>"
        "<table><tr><th>table</th><th>validation</th></tr>"
        + "".join(rows)
        + "</table><p><a href='../index.html'>summary report</a></p></body></html>"
    )
    uri = join(docs_uri, "index.html")
    storage.write_text(uri, page, "text/html")
    return uri
