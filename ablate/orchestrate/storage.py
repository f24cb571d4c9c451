"""Ray's storage for checkpoints: a directory (local, NFS) or any URI pyarrow's filesystems
take (s3://, gs://, abfs://, hdfs://, file://).

    storage = resolve_storage("s3://bucket/ablate?endpoint_override=http://minio:9000",
                              default=study_dir.ray_storage)
    tune.RunConfig(storage_path=storage.path, storage_filesystem=storage.fs, ...)
    storage.latest_checkpoints()       # trial_id → (epoch, path in storage.fs)
    fetch_checkpoint(storage.uri, path, into)   # on a worker: a checkpoint, downloaded

The filesystem comes from `pyarrow.fs.FileSystem.from_uri`, so an S3-compatible store
(MinIO, Ceph, moto) is named the way pyarrow names it: the endpoint in the URI's query
(`?endpoint_override=http://HOST:PORT`; `&region=…`, `&scheme=…` likewise) or in the
environment (`AWS_ENDPOINT_URL`, read by the AWS SDK); credentials come from the usual
places (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, `~/.aws/credentials`, instance roles,
`gcloud` for gs://). Every node resolves the URI again, so every node needs those
credentials. Checkpoints are written by the workers (Ray Tune's storage support) and read
back by a later run's workers; the driver only lists them and reads their meta.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ablate.orchestrate.preflight import RunError
from ablate.orchestrate.study_files import all_checkpoints
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.results.layout import CHECKPOINT_FILE, RAY_CHECKPOINTS


@dataclass
class Storage:
    uri: str  # what the user gave (or the resolved local directory)
    fs: object  # pyarrow.fs.FileSystem
    path: str  # the storage root inside `fs`
    local: bool  # a local (or mounted) directory

    def all_checkpoints(self) -> dict[str, list[tuple[int, str]]]:
        """trial_id → [(epoch, checkpoint directory in `fs`), …], newest first, of every
        complete checkpoint of each trial under the storage root (any earlier run)."""
        if self.local:
            root = Path(self.path)
            return ({tid: [(ep, str(p)) for ep, p in found]
                     for tid, found in all_checkpoints(root).items()} if root.exists() else {})
        return _remote_all(self.fs, self.path)

    def latest_checkpoints(self) -> dict[str, tuple[int, str]]:
        """trial_id → (epoch, checkpoint directory in `fs`) of the newest complete checkpoint."""
        return {tid: found[0] for tid, found in self.all_checkpoints().items()}


def resolve_storage(storage: str | None, default: Path) -> Storage:
    """The storage `--storage` names (default: `default`, a local directory). RunError with
    what to fix when a URI does not resolve or its store does not answer."""
    import pyarrow as pa
    import pyarrow.fs as pafs

    if not storage or "://" not in storage:
        path = (Path(storage) if storage else default).resolve()
        return Storage(uri=str(path), fs=pafs.LocalFileSystem(), path=str(path), local=True)
    try:
        fs, path = pafs.FileSystem.from_uri(storage)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OSError) as e:
        raise RunError(f"--storage {storage!r}: not a filesystem URI pyarrow can open ({e}); "
                       "give a directory, or s3://BUCKET/PATH (endpoint of an S3-compatible "
                       "store: ?endpoint_override=http://HOST:PORT or AWS_ENDPOINT_URL), "
                       "gs://BUCKET/PATH, …") from None
    if isinstance(fs, pafs.LocalFileSystem):  # file:///nfs/ablate
        return Storage(uri=path, fs=fs, path=path, local=True)
    path = path.rstrip("/")
    try:  # reachable, with these credentials, before any trial is scheduled
        fs.create_dir(path, recursive=True)
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True, recursive=False))
    except OSError as e:
        raise RunError(f"--storage {storage!r}: the store does not answer or refuses access "
                       f"({_first_line(e)}); check the bucket exists, the endpoint "
                       "(?endpoint_override=… or AWS_ENDPOINT_URL) and the credentials "
                       "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) — every node needs them")
    return Storage(uri=storage, fs=fs, path=path, local=False)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _remote_all(fs, root: str) -> dict[str, list[tuple[int, str]]]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
    files = {i.path for i in infos if i.type == pafs.FileType.File}
    out: dict[str, list[tuple[int, str]]] = {}
    pattern = RAY_CHECKPOINTS.split("/")  # run-*/<trial_id>/checkpoint_*/meta.json
    for meta in sorted(files):
        parts = meta[len(root) + 1:].split("/") if meta.startswith(root + "/") else []
        if len(parts) != len(pattern) or not all(map(fnmatch, parts, pattern)):
            continue
        folder = meta.rsplit("/", 1)[0]
        if f"{folder}/{CHECKPOINT_FILE}" not in files:
            continue
        try:
            with fs.open_input_stream(meta) as f:
                m = CheckpointMeta.parse(f.read())
        except OSError:
            continue
        if m is not None:
            out.setdefault(m.trial_id, []).append((m.epoch, folder))
    return {tid: sorted(found, key=lambda x: (-x[0], x[1])) for tid, found in out.items()}


def fetch_checkpoint(uri: str, path: str, into: Path) -> Path:
    """A checkpoint directory `path` of the storage `uri` (a local path when `uri` is one),
    as a local directory. Runs on a worker: it resolves `uri` with its own credentials."""
    if "://" not in uri:
        return Path(path)
    import pyarrow.fs as pafs

    fs, _ = pafs.FileSystem.from_uri(uri)
    into.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(into), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    return into
