"""One I/O layer for ``file://`` and ``s3://`` URIs (boto3 for S3, ``s3a://`` for Spark).

Credentials are never taken from code or config files: boto3 reads the standard AWS
environment variables (or the pod's IRSA role); only the endpoint and region are configured.

Large objects never pass through memory whole: :meth:`Storage.upload_file` and
:meth:`Storage.download_file` stream, and S3 copies (hence moves, hence every commit) go
through boto3's managed transfer, which switches to multipart ``UploadPartCopy`` above
``multipart_threshold_mb`` — a plain CopyObject fails on objects over 5 GB.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.config import REPO_ROOT, StorageConfig
from jobs.errors import TransientError

# How often a conditional PUT that S3 answered 409 ConditionalRequestConflict (another
# conditional write of the key in flight) is sent again before giving up.
_CONFLICT_RETRIES = 5


class DeleteFailedError(TransientError, OSError):
    """S3 answered a batch delete with 200 but listed keys it did not delete.

    Transient (exit 75): the keys are still there, so the step that needed them gone must not
    go on; a retry deletes them again.
    """


def resolve_uri(uri: str) -> str:
    """Make ``file://relative`` URIs (and bare paths) absolute, relative to the repo root."""
    if uri.startswith("s3://"):
        return uri
    if uri.startswith("file://"):
        path = uri[len("file://") :]
        base = REPO_ROOT
    elif "://" not in uri:
        path, base = uri, Path.cwd()
    else:
        raise ValueError(f"unsupported URI scheme: {uri!r} (expected file:// or s3://)")
    if not path.startswith("/"):
        path = str((base / path).resolve())
    return "file://" + path


def join(base: str, *parts: str) -> str:
    """Join URI path segments with ``/``."""
    return posixpath.join(base.rstrip("/"), *[p.strip("/") for p in parts])


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def to_spark_uri(uri: str) -> str:
    """Spark reads S3 through the s3a connector."""
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def _gone_is_fine(func: Any, path: str, exc_info: Any) -> None:
    """``rmtree`` error hook: a file or folder another process removed first is fine (two
    attempts of a stage may clear one staging folder at once); anything else is raised."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


@dataclass
class Storage:
    """File operations over one storage config; ``file://`` via pathlib, ``s3://`` via boto3."""

    config: StorageConfig
    _client: Any = field(default=None, repr=False)

    @property
    def s3(self):
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.config.s3_endpoint_url,
                region_name=self.config.s3_region,
            )
        return self._client

    @staticmethod
    def _local(uri: str) -> Path | None:
        uri = resolve_uri(uri)
        return Path(uri[len("file://") :]) if uri.startswith("file://") else None

    def local_path(self, uri: str) -> Path | None:
        """The local path of a ``file://`` URI; None for ``s3://``."""
        return self._local(uri)

    # -- objects -----------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        local = self._local(uri)
        if local is not None:
            return local.exists()
        bucket, key = _split_s3(uri)
        resp = self.s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/"), MaxKeys=1)
        for obj in resp.get("Contents", []):
            k = obj["Key"]
            if k == key.rstrip("/") or k.startswith(key.rstrip("/") + "/"):
                return True
        return False

    def read_bytes(self, uri: str) -> bytes:
        local = self._local(uri)
        if local is not None:
            return local.read_bytes()
        bucket, key = _split_s3(uri)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def write_bytes(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        local = self._local(uri)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".partial")
            tmp.write_bytes(data)
            tmp.replace(local)
            return
        bucket, key = _split_s3(uri)
        extra = {"ContentType": content_type} if content_type else {}
        self.s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def create_exclusive(self, uri: str, data: bytes) -> bool:
        """Write ``uri`` only if it does not exist; False (nothing written) when it does.

        Locally the bytes go to a private temp file that is hard-linked into place (``link``
        fails if the name exists, and a reader never sees a half-written file); on S3 a
        conditional ``PutObject`` (``If-None-Match: *``). A PUT whose answer was lost and
        that botocore resent answers 412, i.e. False, though the object is this writer's:
        callers that must know read the object back and compare (see jobs/commit.py).
        """
        local = self._local(uri)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.partial")
            tmp.write_bytes(data)
            try:
                os.link(tmp, local)
            except FileExistsError:
                return False
            finally:
                tmp.unlink()
            return True
        from botocore.exceptions import ClientError

        bucket, key = _split_s3(uri)
        for _ in range(_CONFLICT_RETRIES):
            try:
                self.s3.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if code == "PreconditionFailed" or status == 412:
                    return False
                if code != "ConditionalRequestConflict" and status != 409:
                    raise
        raise TransientError(f"{uri}: conditional write kept conflicting with another writer")

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def write_text(self, uri: str, text: str, content_type: str | None = None) -> None:
        self.write_bytes(uri, text.encode("utf-8"), content_type)

    def read_json(self, uri: str) -> Any:
        return json.loads(self.read_text(uri))

    def write_json(self, uri: str, obj: Any) -> None:
        body = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
        self.write_text(uri, body, "application/json")

    def append_text(self, uri: str, text: str) -> None:
        """Append and flush (LLM shard journals); an S3 object is rewritten whole."""
        local = self._local(uri)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            with local.open("a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
            return
        old = self.read_text(uri) if self.exists(uri) else ""
        self.write_text(uri, old + text)

    @property
    def transfer_config(self):
        """boto3 managed-transfer settings: multipart above the configured threshold."""
        from boto3.s3.transfer import TransferConfig

        mb = 1024 * 1024
        return TransferConfig(
            multipart_threshold=self.config.multipart_threshold_mb * mb,
            multipart_chunksize=self.config.multipart_chunk_mb * mb,
        )

    def upload_file(self, path: Path, uri: str, content_type: str | None = None) -> None:
        """Stream a local file to ``uri`` (multipart on S3 above the threshold)."""
        local = self._local(uri)
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".partial")
            shutil.copyfile(path, tmp)
            tmp.replace(local)
            return
        bucket, key = _split_s3(uri)
        extra = {"ExtraArgs": {"ContentType": content_type}} if content_type else {}
        self.s3.upload_file(str(path), bucket, key, Config=self.transfer_config, **extra)

    def download_file(self, uri: str, path: Path) -> None:
        """Stream ``uri`` into a local file (ranged parts on S3 above the threshold)."""
        local = self._local(uri)
        if local is not None:
            shutil.copyfile(local, path)
            return
        bucket, key = _split_s3(uri)
        self.s3.download_file(bucket, key, str(path), Config=self.transfer_config)

    def copy(self, src: str, dst: str) -> None:
        """Copy one object; on S3 server-side, in parts above ``multipart_threshold_mb``."""
        local_src, local_dst = self._local(src), self._local(dst)
        if local_src is not None and local_dst is not None:
            local_dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_src, local_dst)
            return
        if local_src is not None or local_dst is not None:
            raise ValueError(f"copy between file:// and s3:// is not supported: {src} -> {dst}")
        sb, skey = _split_s3(src)
        db, dkey = _split_s3(dst)
        self.s3.copy({"Bucket": sb, "Key": skey}, db, dkey, Config=self.transfer_config)

    # -- prefixes ----------------------------------------------------------------------------

    def list(self, uri: str) -> list[str]:
        """Immediate children of a prefix, as full URIs, sorted; [] if absent."""
        local = self._local(uri)
        if local is not None:
            try:
                return sorted("file://" + str(p) for p in local.iterdir())
            except (FileNotFoundError, NotADirectoryError):
                return []
        bucket, key = _split_s3(uri)
        prefix = key.rstrip("/") + "/"
        out: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/"
        ):
            out.update(f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []))
            out.update(
                f"s3://{bucket}/{p['Prefix'].rstrip('/')}" for p in page.get("CommonPrefixes", [])
            )
        return sorted(out)

    def walk_files(self, uri: str) -> list[str]:
        """All files below a prefix, as full URIs, sorted."""
        local = self._local(uri)
        if local is not None:
            if local.is_file():
                return ["file://" + str(local)]
            return sorted("file://" + str(p) for p in local.rglob("*") if p.is_file())
        bucket, key = _split_s3(uri)
        prefix = key.rstrip("/") + "/"
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []))
        return sorted(out)

    def delete(self, uri: str) -> None:
        """Remove a file or a whole prefix; absent is fine."""
        local = self._local(uri)
        if local is not None:
            if local.is_dir():
                shutil.rmtree(local, onerror=_gone_is_fine)
            else:
                local.unlink(missing_ok=True)
            return
        bucket, key = _split_s3(uri)
        keys = [_split_s3(u)[1] for u in self.walk_files(uri)]
        if self.exists(uri) and key not in keys:
            keys.append(key)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[i : i + 1000]]
            resp = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk})
            # 200 does not mean deleted: S3 lists the keys it could not delete in Errors.
            errors = resp.get("Errors") or []
            if errors:
                shown = ", ".join(
                    f"{e.get('Key')} ({e.get('Code')}: {e.get('Message')})" for e in errors[:5]
                )
                raise DeleteFailedError(
                    f"s3://{bucket}: {len(errors)} of {len(chunk)} keys not deleted: {shown}"
                )

    def move(self, src: str, dst: str) -> None:
        """Rename locally; copy then delete on S3 (S3 has no rename)."""
        local_src, local_dst = self._local(src), self._local(dst)
        if local_src is not None and local_dst is not None:
            local_dst.parent.mkdir(parents=True, exist_ok=True)
            local_src.replace(local_dst)
            return
        files = self.walk_files(src) or [src]
        _, skey = _split_s3(src)
        for f in files:
            _, fkey = _split_s3(f)
            self.copy(f, dst.rstrip("/") + fkey[len(skey) :])
        self.delete(src)

    def size(self, uri: str) -> int:
        local = self._local(uri)
        if local is not None:
            return local.stat().st_size
        bucket, key = _split_s3(uri)
        return int(self.s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
