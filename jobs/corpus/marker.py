"""The completion marker of a corpus snapshot: ingest reads a snapshot only once it has landed.

A producer that copies a snapshot into ``{root}/corpus/{snapshot}/`` writes the marker
(``corpus.marker_name``, ``_SUCCESS`` by default) after its last file. With
``corpus.require_marker`` on, ingest waits for it up to ``corpus.marker_wait_s``, polling every
``corpus.marker_poll_s``, and then fails with :class:`SnapshotNotReadyError`.

That failure is transient (exit 75): a snapshot that is still being copied, or lands late, is
the common case, and each retry of the task waits again, with the DAG's backoff in between. A
snapshot whose producer died without writing the marker fails once the retries are spent, with
the same message. Permanent would turn every late snapshot into a manual rerun.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from jobs.config import CorpusConfig
from jobs.errors import TransientError
from jobs.storage import Storage, join

log = logging.getLogger(__name__)


class SnapshotNotReadyError(TransientError, RuntimeError):
    """The snapshot's completion marker did not appear within ``corpus.marker_wait_s``."""


def wait_for_marker(
    storage: Storage,
    corpus_uri: str,
    cfg: CorpusConfig,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """The marker's URI once it exists (None when not required); raises when it does not come.

    ``sleep`` and ``clock`` are passed in so a test can run the wait without waiting.
    """
    if not cfg.require_marker:
        return None
    marker = join(corpus_uri, cfg.marker_name)
    deadline = clock() + cfg.marker_wait_s
    polls = 0
    while not storage.exists(marker):
        left = deadline - clock()
        if left <= 0:
            raise SnapshotNotReadyError(
                f"snapshot {corpus_uri} is not complete: no {cfg.marker_name} after waiting "
                f"{cfg.marker_wait_s:g} s (corpus.require_marker = true). Its files may still be "
                f"landing: this failure is transient and a retry waits again. The producer "
                f"writes {marker} after its last file."
            )
        if polls == 0:
            log.info("waiting up to %g s for %s", cfg.marker_wait_s, marker)
        polls += 1
        sleep(min(cfg.marker_poll_s, left))
    log.info("snapshot marker present: %s", marker)
    return marker
