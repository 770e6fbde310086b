"""Where the sample corpus comes from: real docstrings shipped inside installed packages.

The text is written by people (the authors of sympy, mpmath, scipy and the Python standard
library) and installs offline with the packages, so a sample snapshot can be rebuilt anywhere
without a download. Nothing here invents text: a document is one object's own docstring,
dedented by ``inspect.cleandoc``, or it is skipped.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import logging
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIN_DOC_CHARS = 200

# Parts of sympy that describe tooling, not mathematics: their docstrings would carry a
# misleading "math" hint.
_SYMPY_SKIP = {
    "tests",
    "testing",
    "utilities",
    "external",
    "interactive",
    "benchmarks",
    "printing",
    "parsing",
    "plotting",
    "conftest",
    "galgebra",
    "this",  # prints "The Zen of SymPy" on import
}

_SCIPY_MODULES = """
scipy.cluster.hierarchy scipy.cluster.vq scipy.constants scipy.differentiate scipy.fft
scipy.integrate scipy.interpolate scipy.linalg scipy.ndimage scipy.optimize scipy.signal
scipy.sparse scipy.sparse.csgraph scipy.sparse.linalg scipy.spatial scipy.special scipy.stats
"""

# Standard-library modules about software, protocols and formats. The numeric ones (math,
# cmath, statistics, decimal, fractions, random, numbers) are left out on purpose.
_STDLIB_MODULES = """
abc argparse ast asyncio base64 bz2 code codecs codeop collections collections.abc
concurrent.futures configparser contextlib copy csv dataclasses difflib dis doctest email
email.charset email.contentmanager email.feedparser email.generator email.header
email.headerregistry email.message email.mime.text email.parser email.policy email.utils enum
filecmp fnmatch ftplib functools getopt gettext glob gzip html html.parser http http.client
http.cookiejar http.cookies http.server imaplib importlib importlib.metadata
importlib.resources inspect io json json.decoder json.encoder locale logging logging.config
logging.handlers lzma mailbox mimetypes multiprocessing multiprocessing.connection
multiprocessing.managers multiprocessing.pool netrc optparse os pathlib pdb pickle plistlib
poplib pprint profile pstats pydoc queue reprlib sched selectors shlex shutil site smtplib
socket socketserver sqlite3 ssl string subprocess sysconfig tarfile tempfile textwrap threading
time timeit trace traceback tracemalloc typing unittest unittest.mock urllib.error urllib.parse
urllib.request urllib.robotparser uuid venv warnings weakref webbrowser wsgiref xml.dom
xml.dom.minidom xml.dom.pulldom xml.etree.ElementTree xml.sax xml.sax.handler xml.sax.saxutils
xml.sax.xmlreader xmlrpc.client xmlrpc.server zipapp zipfile zoneinfo
"""


@dataclass(frozen=True)
class Source:
    """One distribution the sample draws from."""

    name: str  # distribution name, also the ``source`` field
    licence: str  # SPDX identifier
    domain_hint: str  # "math" | "general"


SOURCES = (
    Source("sympy", "BSD-3-Clause", "math"),
    Source("mpmath", "BSD-3-Clause", "math"),
    Source("scipy", "BSD-3-Clause", "math"),
    Source("python-stdlib", "PSF-2.0", "general"),
)


@dataclass(frozen=True)
class Doc:
    """One docstring with its provenance."""

    source: Source
    obj: str  # dotted name where the object is publicly reachable
    text: str

    @property
    def package(self) -> str:
        return self.obj.split(".", 1)[0]


def _walk(package: str, skip: set[str]) -> list[str]:
    """``package`` and all its public submodules, sorted, minus ``skip`` path segments."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda _name: None):
        parts = info.name.split(".")[1:]
        if any(p in skip or p.startswith("_") for p in parts):
            continue
        names.append(info.name)
    return sorted(names)


def module_names(source: Source) -> list[str]:
    """The modules scanned for ``source``, in a fixed order (the order decides ties)."""
    if source.name == "sympy":
        return _walk("sympy", _SYMPY_SKIP)
    if source.name == "mpmath":
        return _walk("mpmath", {"tests"})
    if source.name == "scipy":
        return _SCIPY_MODULES.split()
    return sorted(_STDLIB_MODULES.split())


def own_doc(obj: object) -> str | None:
    """``inspect.getdoc`` of ``obj`` when the docstring belongs to it, else None.

    ``getdoc`` falls back to a base class's docstring, and a plain value (a float constant)
    reports its type's docstring; both would attach text to the wrong object.
    """
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
    elif (
        inspect.ismodule(obj)
        or inspect.isroutine(obj)
        or isinstance(obj, property)
        or type(obj).__name__ == "ufunc"
    ):
        doc = getattr(obj, "__doc__", None)
    else:
        doc = getattr(obj, "__dict__", {}).get("__doc__")  # e.g. scipy.stats.norm
    if not isinstance(doc, str):
        return None
    return inspect.cleandoc(doc)  # what inspect.getdoc returns for an own docstring


def _members(modname: str) -> Iterator[tuple[str, object]]:
    """The module, its public objects, and public methods of its classes, in sorted order."""
    module = importlib.import_module(modname)
    yield modname, module
    public = getattr(module, "__all__", None)
    public = set(public) if isinstance(public, (list, tuple)) else set()
    for attr in sorted(dir(module)):
        if attr.startswith("_"):
            continue
        obj = getattr(module, attr, None)
        listed = attr in public
        if not listed and (
            not (inspect.isclass(obj) or inspect.isroutine(obj))
            or getattr(obj, "__module__", None) != modname
        ):
            continue  # re-exported from elsewhere: found under its home module
        yield f"{modname}.{attr}", obj
        if inspect.isclass(obj):
            for name, member in sorted(vars(obj).items()):
                if not name.startswith("_") and (
                    inspect.isroutine(member) or isinstance(member, (property, classmethod))
                ):
                    yield f"{modname}.{attr}.{name}", getattr(member, "__func__", member)


@functools.cache
def collect(source: Source) -> tuple[Doc, ...]:
    """All usable docstrings of ``source``: long enough, unique text, sorted by object name.

    Cached per process: the result depends only on the installed packages.
    """
    docs: dict[str, Doc] = {}
    seen_text: set[str] = set()
    # Deprecated sympy modules warn on import; a module that prints must not pollute stdout.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        for modname in module_names(source):
            try:
                members = list(_members(modname))
            except Exception as exc:  # an optional dependency is missing: skip the module
                log.info("skip %s: %s: %s", modname, type(exc).__name__, exc)
                continue
            for name, obj in members:
                text = own_doc(obj)
                if not text or len(text) < MIN_DOC_CHARS or text in seen_text:
                    continue
                if " at 0x" in text:  # a repr with a memory address would break determinism
                    continue
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    continue
                seen_text.add(text)
                docs.setdefault(name, Doc(source, name, text))
    return tuple(docs[k] for k in sorted(docs))
