"""Where batch results go while a batch runs, and how a retry finds them.

Results are journaled as they arrive (one JSON line, appended and flushed), so a killed
worker loses at most the requests in flight. A retry of the task reads the journal back and
skips every id already answered; when all rows have a result, the journal is compacted into
the output file: one line per input line, in input order.

* **Local output** (a path, or a ``file://`` ``ObjectStoragePath``): the journal is
  ``<output>.journal`` next to the output, and the output is written to ``<output>.tmp`` and
  renamed into place (atomic on one file system). A rerun after success reads the finished
  output and sends nothing.
* **Remote output** (any other ``ObjectStoragePath``, e.g. ``s3://``): appends to an object
  store are not possible, so the journal is a local spool directory in a deterministic place
  (``work_dir/<sha256 of the output URI>``) whose segments are uploaded as *part objects*
  under ``<output>.parts/`` at every checkpoint (``checkpoint_interval``) and at the end. A
  retry first uploads the segments a killed try left in the local spool (same worker), then
  reads back every part (any worker). A worker that died for good loses at most the results
  since its last checkpoint; those rows are simply sent again. When done, the output is
  uploaded whole and the parts are deleted.

Whatever the store, records are matched by id, and a success always wins over a failure for
the same id, so a part uploaded twice or a row retried after a retryable failure never shows
up twice in the output.

Content-hashed rows (a row kind whose payloads carry a ``content_hash``, like embeddings):
a record read back counts only when its ``content_hash`` is the one its row has now, so an id
whose text changed since an earlier try or an earlier output is sent again. Such a run may
also read a *previous output* (``open(previous=...)``, e.g. last night's): its successful
records for unchanged rows are copied into this output without a request. A previous output
that is the output itself is read before anything is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import IO, Any

from airflow_provider_clova.batch.input import BadRow, InputIndex, id_key, open_binary

#: The record field holding a content-hashed row's hash (see the module doc).
CONTENT_HASH_FIELD = "content_hash"
PREVIOUS_SUFFIX = ".previous"
JOURNAL_SUFFIX = ".journal"
PARTS_SUFFIX = ".parts"
DEFAULT_WORK_DIR = os.path.join(tempfile.gettempdir(), "airflow-clova-batch")


@dataclass
class _Located:
    source: int
    offset: int
    ok: bool
    retryable: bool


class ResultIndex:
    """Which result record counts for each id, and where it is (file, byte offset)."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self._best: dict[str, _Located] = {}
        #: id key -> current content hash, for content-hashed rows (None: records are not hashed).
        self.expected: Mapping[str, str] | None = None
        #: Sources that are finished outputs (an earlier run's, or a previous output).
        self.finished: set[int] = set()

    def add_source(self, path: str) -> int:
        self.sources.append(path)
        return len(self.sources) - 1

    def note(self, key: str, source: int, offset: int, record: dict[str, Any]) -> None:
        if self.expected is not None and record.get(CONTENT_HASH_FIELD) != self.expected.get(key, False):
            return  # the row's content changed since (or the id is gone): this result does not count
        ok = bool(record.get("ok"))
        error = record.get("error")
        retryable = bool(error.get("retryable")) if not ok and isinstance(error, dict) else False
        current = self._best.get(key)
        if current is not None and current.ok and not ok:
            return  # a success is never replaced by a failure
        self._best[key] = _Located(source, offset, ok, retryable)

    def scan(self, path: str, *, finished: bool = False, successes_only: bool = False) -> int:
        """Index every complete record of a JSONL file; a torn last line (a kill mid-write) is skipped.

        ``finished``: the file is a finished output; ``successes_only``: failures in it are ignored
        (a previous output's failures are tried again).
        """
        source = self.add_source(path)
        if finished:
            self.finished.add(source)
        count = 0
        if not os.path.exists(path):
            return 0
        with open(path, "rb") as handle:
            offset = 0
            for raw in handle:
                start, offset = offset, offset + len(raw)
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and "id" in record and record["id"] is not None:
                    if successes_only and not record.get("ok"):
                        continue
                    self.note(id_key(record["id"]), source, start, record)
                    count += 1
        return count

    def answered(self, key: str | None) -> bool:
        """True when the id has a result a retry must keep: a success, or a failure retrying cannot fix."""
        if key is None:
            return False
        found = self._best.get(key)
        return found is not None and (found.ok or not found.retryable)

    def has(self, key: str | None) -> bool:
        return key is not None and key in self._best

    def outcome(self, key: str | None) -> bool | None:
        """True (success), False (failure) or None (no result yet) for an id."""
        found = self._best.get(key) if key is not None else None
        return None if found is None else found.ok

    def from_finished(self, key: str | None) -> bool:
        """True when the id's result was read from a finished output rather than sent by a try."""
        found = self._best.get(key) if key is not None else None
        return found is not None and found.source in self.finished

    def keys(self) -> set[str]:
        return set(self._best)

    def records(self, index: InputIndex) -> Iterator[dict[str, Any]]:
        """One record per input line, in line order (needs every sendable row to have a result)."""
        handles: dict[int, IO[bytes]] = {}
        try:
            for line, key, row_id in index.entries:
                bad: BadRow | None = index.errors.get(line)
                if bad is not None:
                    yield {"id": row_id, "line": line, "ok": False, "error": bad.error.to_dict()}
                    continue
                assert key is not None
                found = self._best[key]
                handle = handles.get(found.source)
                if handle is None:
                    handle = handles[found.source] = open(self.sources[found.source], "rb")  # noqa: SIM115
                handle.seek(found.offset)
                record = json.loads(handle.readline())
                record["line"] = line
                yield record
        finally:
            for handle in handles.values():
                handle.close()


def _write_records(path: str, records: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _open_append(path: str) -> IO[bytes]:
    """Open for appending; end a torn last line first so the next record starts on its own line."""
    handle = open(path, "ab")  # noqa: SIM115 - closed by the store
    if handle.tell() > 0:
        with open(path, "rb") as reader:
            reader.seek(-1, os.SEEK_END)
            if reader.read(1) != b"\n":
                handle.write(b"\n")
                handle.flush()
    return handle


def encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


class ResultStore:
    """Base: a journal of appended records plus the compacted output."""

    def __init__(self) -> None:
        self.index = ResultIndex()
        self._handle: IO[bytes] | None = None
        self._source = -1

    @property
    def output_uri(self) -> str:
        raise NotImplementedError

    def open(self, *, resume: bool, expected: Mapping[str, str] | None = None, previous: Any = None) -> ResultIndex:
        """Read back what earlier tries answered (or start fresh); sync, call from a thread.

        ``expected``: id key -> content hash of content-hashed rows (records of other content
        do not count); ``previous``: an earlier output whose successes are reused (see module doc).
        """
        raise NotImplementedError

    def append(self, record: dict[str, Any]) -> None:
        """Journal one result: a small append plus flush, cheap enough for the event loop."""
        assert self._handle is not None, "open() first"
        offset = self._handle.tell()
        self._handle.write(encode(record))
        self._handle.flush()
        self.index.note(id_key(record["id"]), self._source, offset, record)

    def rotate(self) -> Callable[[], None] | None:
        """Start a checkpoint on the event loop's thread (quick: no network).

        Returns the slow part (sync to disk, upload) for a worker thread, or None. Splitting
        them keeps ``append`` and the handle swap on one thread, so no record can be written
        to a segment that is being closed.
        """
        return None

    def checkpoint(self) -> None:
        """A whole checkpoint, synchronously (tests, and the end of a run)."""
        work = self.rotate()
        if work is not None:
            work()

    def finalize(self, index: InputIndex) -> None:
        """Write the output, one record per input line; sync, call from a thread."""
        raise NotImplementedError

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class LocalResultStore(ResultStore):
    """Output on a local file system: journal next to it, atomic rename at the end."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = os.path.abspath(path)
        self.journal = self.path + JOURNAL_SUFFIX

    @property
    def output_uri(self) -> str:
        return self.path

    def open(self, *, resume: bool, expected: Mapping[str, str] | None = None, previous: Any = None) -> ResultIndex:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.index.expected = expected
        snapshot = self.path + PREVIOUS_SUFFIX
        with contextlib.suppress(FileNotFoundError):
            os.remove(snapshot)
        itself = previous is not None and is_local(previous) and os.path.abspath(local_path(previous)) == self.path
        if previous is not None and not (itself and resume):
            if itself:
                if os.path.exists(self.path):
                    os.replace(self.path, snapshot)
            else:
                copy_to_local(previous, snapshot)
        if not resume:
            for path in (self.path, self.journal):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        # With the output as its own previous output, its failures are tried again like any previous one's.
        self.index.scan(self.path, finished=True, successes_only=itself)
        if os.path.exists(snapshot):
            self.index.scan(snapshot, finished=True, successes_only=True)
        self.index.scan(self.journal)
        self._handle = _open_append(self.journal)
        self._source = len(self.index.sources) - 1
        return self.index

    def rotate(self) -> Callable[[], None] | None:
        if self._handle is None:
            return None
        return partial(os.fsync, self._handle.fileno())

    def finalize(self, index: InputIndex) -> None:
        self.checkpoint()
        tmp = self.path + ".tmp"
        _write_records(tmp, self.index.records(index))
        os.replace(tmp, self.path)
        self.close()
        for path in (self.journal, self.path + PREVIOUS_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)


class RemoteResultStore(ResultStore):
    """Output in an object store: a local spool, checkpointed as part objects (see module doc)."""

    def __init__(self, output: Any, work_dir: str | None = None) -> None:
        super().__init__()
        self.output = output
        digest = hashlib.sha256(str(output).encode("utf-8")).hexdigest()[:24]
        self.spool = os.path.join(work_dir or DEFAULT_WORK_DIR, digest)
        self.parts = output.parent / f"{output.name}{PARTS_SUFFIX}"
        self._chunk = ""

    @property
    def output_uri(self) -> str:
        return str(self.output)

    # -- remote helpers ---------------------------------------------------------------
    def _remote_parts(self) -> list[Any]:
        try:
            if not self.parts.exists():
                return []
            found = [item for item in self.parts.iterdir() if item.name.endswith(".jsonl")]
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda item: item.name)

    def _upload(self, local: str, remote: Any) -> None:
        with open(local, "rb") as source, remote.open("wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)

    def _download_into(self, remote: Any, target: IO[bytes]) -> None:
        with remote.open("rb") as source:
            last = b"\n"
            while True:
                block = source.read(1 << 20)
                if not block:
                    break
                target.write(block)
                last = block[-1:]
            if last != b"\n":
                target.write(b"\n")

    def _local_chunks(self) -> list[str]:
        return sorted(
            os.path.join(self.spool, name)
            for name in os.listdir(self.spool)
            if name.startswith("chunk-") and name.endswith(".jsonl")
        )

    def _new_chunk(self) -> None:
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        self._chunk = os.path.join(self.spool, name)
        self._handle = open(self._chunk, "ab")  # noqa: SIM115 - closed by the store
        self._source = self.index.add_source(self._chunk)

    # -- store ------------------------------------------------------------------------
    def open(self, *, resume: bool, expected: Mapping[str, str] | None = None, previous: Any = None) -> ResultIndex:
        os.makedirs(self.spool, exist_ok=True)
        self.index.expected = expected
        snapshot = os.path.join(self.spool, "previous.jsonl")
        itself = previous is not None and str(previous) == str(self.output)
        if previous is not None and not (itself and resume):
            if itself and not self.output.exists():
                pass  # first run: nothing to reuse
            else:
                copy_to_local(previous, snapshot)
        if not resume:
            shutil.rmtree(self.spool, ignore_errors=True)
            os.makedirs(self.spool)
            for part in self._remote_parts():
                part.unlink()
            if self.output.exists():
                self.output.unlink()
        # Segments a killed try left on this worker: publish them (same name, so an upload
        # that had already happened is merely repeated), then read everything back remotely.
        for chunk in self._local_chunks():
            self._upload(chunk, self.parts / os.path.basename(chunk))
        finished = os.path.join(self.spool, "finished.jsonl")
        base = os.path.join(self.spool, "base.jsonl")
        with open(finished, "wb") as target:
            if self.output.exists():
                self._download_into(self.output, target)
        with open(base, "wb") as target:
            for part in self._remote_parts():
                self._download_into(part, target)
        for chunk in self._local_chunks():
            os.remove(chunk)
        self.index.scan(finished, finished=True, successes_only=itself)
        if os.path.exists(snapshot):
            self.index.scan(snapshot, finished=True, successes_only=True)
        self.index.scan(base)
        self._new_chunk()
        return self.index

    def rotate(self) -> Callable[[], None] | None:
        """Close the current segment and start a new one; the closed one is then uploaded as a part."""
        if self._handle is None or self._handle.tell() == 0:
            return None
        closed = self._chunk
        self._handle.close()
        self._new_chunk()
        return partial(self._upload, closed, self.parts / os.path.basename(closed))

    def finalize(self, index: InputIndex) -> None:
        if self._handle is not None:
            self._handle.flush()
        compacted = os.path.join(self.spool, "output.jsonl")
        _write_records(compacted, self.index.records(index))
        self._upload(compacted, self.output)
        self.close()
        for part in self._remote_parts():
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        shutil.rmtree(self.spool, ignore_errors=True)


def copy_to_local(source: Any, target: str) -> None:
    """Copy a local path or an ``ObjectStoragePath`` to the local file ``target``, streaming.

    A missing source leaves no file (a first run has no previous output)."""
    try:
        handle = open_binary(as_input(source))
    except FileNotFoundError:
        return
    with handle as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer, 1 << 20)


def _object_storage_path(uri: str) -> Any:
    # lazy: ObjectStoragePath pulls fsspec, and it moved between Airflow 2.11 and 3
    try:
        from airflow.sdk import ObjectStoragePath
    except ImportError:  # Airflow 2.11
        from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef,attr-defined,unused-ignore]
    return ObjectStoragePath(uri)


def is_local(target: Any) -> bool:
    """A plain path, a ``file://`` URI, or an ``ObjectStoragePath`` on the local file system."""
    protocol = getattr(target, "protocol", None)
    if protocol is not None:  # ObjectStoragePath / UPath (which may also be os.PathLike)
        return protocol in ("", "file", "local")
    text = os.fspath(target) if isinstance(target, os.PathLike) else str(target)
    return "://" not in text or text.startswith("file://")


def local_path(target: Any) -> str:
    if getattr(target, "protocol", None) is not None:
        return str(target.path)
    text = os.fspath(target) if isinstance(target, os.PathLike) else str(target)
    return text[len("file://") :] if text.startswith("file://") else text


def store_for(output: Any, *, work_dir: str | None = None) -> ResultStore:
    """The store for an output: local path / ``file://`` -> local journal; anything else -> parts."""
    if is_local(output):
        return LocalResultStore(local_path(output))
    if isinstance(output, str):
        output = _object_storage_path(output)
    return RemoteResultStore(output, work_dir)


def as_input(source: Any) -> Any:
    """An input given as a URI string (``s3://...``) becomes an ``ObjectStoragePath``."""
    if isinstance(source, str) and "://" in source and not source.startswith("file://"):
        return _object_storage_path(source)
    if is_local(source):
        return local_path(source)
    return source
