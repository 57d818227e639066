"""Batch scoring on a Dask cluster: the same output as :mod:`moviegenre.batch`, scored in parallel.

The machine running the command reads the inputs and writes the outputs; the cluster only
scores. Each input file is read and validated exactly as the local engine reads it (same
rejects, same row numbers), cut into partitions of plots, and each partition is scored by a
worker. Results come back in input order and are streamed to a temporary file (CSV) or
directory (Parquet) beside the output, which is moved into place only when every row is in, so
a killed run leaves nothing that looks finished. No more than a few partitions per worker are
in flight at once, so memory stays bounded however many files are scored.

The model travels to each worker once, as the model directory's files inside a worker plugin,
and each worker loads it with :func:`~moviegenre.artifact.load_model`. Shipping the directory
rather than a pickled model means every worker checks the checksum, the trusted types and that
its own scikit-learn matches the one the model was made with, and needs no shared filesystem.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .artifact import load_model, read_metadata
from .batch import (
    ID_COLUMN,
    ScoreSummary,
    read_scoring_input,
    rejects_path_for,
    score_frame,
    write_csv_atomically,
)
from .errors import DataError, MovieGenreError
from .genres import PROBABILITY_KEYS

try:
    from distributed import Client, KilledWorker, LocalCluster, WorkerPlugin, get_worker
except ImportError as exc:  # the dask extra is optional
    raise MovieGenreError(
        "the Dask engine needs Dask: pip install 'moviegenre[dask]'"
    ) from exc

#: Plots per scoring task: big enough that task overhead is noise, small enough to balance.
PARTITION_ROWS = 2_000
#: Written into a finished Parquet output directory, as Spark and Hadoop do.
SUCCESS_MARKER = "_SUCCESS"


@dataclass(frozen=True)
class DaskScoreSummary(ScoreSummary):
    format: str
    workers: int
    partitions: int
    #: How many times a worker loaded the model: one per worker, never one per partition.
    model_loads: int


def expand_inputs(patterns: Sequence[str | Path]) -> list[Path]:
    """Input paths with globs expanded (sorted); a glob that matches no file is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        text = os.path.expanduser(str(pattern))
        if glob.has_magic(text):
            matches = sorted(m for m in glob.glob(text, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError(f"no files match {str(pattern)!r}")
            paths.extend(Path(m) for m in matches)
        else:
            path = Path(text)
            if not path.exists():
                raise DataError(f"{path} does not exist")
            paths.append(path)
    if not paths:
        raise DataError("no input files given")
    return paths


def output_format(output: Path) -> str:
    """``"csv"`` for ``OUT.csv``; ``"parquet"`` (a directory) for ``OUT.parquet`` or no suffix."""
    suffix = output.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in ("", ".parquet"):
        return "parquet"
    raise DataError(
        f"output {output} must end in .csv (one CSV file) or .parquet or have no suffix "
        "(a Parquet directory)"
    )


def _check_output(output: Path, fmt: str) -> None:
    if fmt == "csv" and output.is_dir():
        raise DataError(f"output {output} is a directory; give a file name ending in .csv")
    if fmt == "parquet" and output.exists():
        if not output.is_dir():
            raise DataError(f"output {output} is a file; a Parquet output is a directory")
        if any(output.iterdir()) and not (output / SUCCESS_MARKER).exists():
            raise DataError(
                f"output {output} exists and is not a finished moviegenre Parquet output "
                f"(no {SUCCESS_MARKER}); refusing to replace it: choose another -o or empty it"
            )


def _model_files(model_dir: Path) -> dict[str, bytes]:
    read_metadata(model_dir)  # fail here, before a cluster starts, if it is no model directory
    return {
        str(path.relative_to(model_dir)): path.read_bytes()
        for path in sorted(model_dir.rglob("*"))
        if path.is_file()
    }


class ModelPlugin(WorkerPlugin):
    """Carries a model directory's files to each worker and loads the model there, once.

    Registered under a name unique to one run, so runs sharing a cluster never see each
    other's models; unregistering it frees the model on every worker.
    """

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.model = None
        self.load_id: str | None = None

    def setup(self, worker) -> None:
        directory = Path(tempfile.mkdtemp(prefix="moviegenre-model-", dir=worker.local_directory))
        try:
            for name, data in self.files.items():
                (directory / name).parent.mkdir(parents=True, exist_ok=True)
                (directory / name).write_bytes(data)
            self.model = load_model(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        self.files = {}  # the loaded model is all the tasks need
        self.load_id = f"{worker.address}/{uuid.uuid4().hex}"

    def teardown(self, worker) -> None:
        self.model = None


def score_partition(plugin_name: str, part: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Runs on a worker: score ``part`` with the model its plugin loaded."""
    plugin = get_worker().plugins[plugin_name]
    return score_frame(plugin.model, part), plugin.load_id


class _CsvSink:
    """Rows appended to a hidden ``.part`` file, renamed to ``output`` by :meth:`commit`."""

    def __init__(self, output: Path):
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(
            dir=output.parent, prefix=f".{output.name}.", suffix=".part"
        )
        self.handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        # Same call as the local engine's, chunk by chunk: byte-identical output.
        frame.to_csv(self.handle, header=self.header)
        self.header = False

    def commit(self) -> None:
        if self.header:
            self.write(_empty_result())
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.output)

    def discard(self) -> None:
        self.handle.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class _ParquetSink:
    """One Parquet file per partition in a hidden staging directory; :meth:`commit` adds
    ``_SUCCESS`` and moves the directory into place."""

    def __init__(self, output: Path):
        import pyarrow as pa

        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(
            tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
        )
        self.schema = pa.schema(
            [(ID_COLUMN, pa.string())] + [(key, pa.float64()) for key in PROBABILITY_KEYS]
        )
        self.parts = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame.reset_index(), schema=self.schema, preserve_index=False)
        # Zero-padded names: readers list files in name order, which is input order.
        pq.write_table(table, self.staging / f"part-{self.parts:06d}.parquet")
        self.parts += 1

    def commit(self) -> None:
        if not self.parts:
            self.write(_empty_result())
        (self.staging / SUCCESS_MARKER).write_text("")
        _check_output(self.output, "parquet")  # still ours to replace?
        backup = None
        if self.output.exists():
            backup = self.output.with_name(f".{self.output.name}.old-{uuid.uuid4().hex}")
            os.replace(self.output, backup)
        os.replace(self.staging, self.output)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _empty_result() -> pd.DataFrame:
    return pd.DataFrame(
        columns=list(PROBABILITY_KEYS), index=pd.Index([], name=ID_COLUMN), dtype=float
    )


@contextmanager
def _sink(fmt: str, output: Path) -> Iterator[_CsvSink | _ParquetSink]:
    sink = _CsvSink(output) if fmt == "csv" else _ParquetSink(output)
    try:
        yield sink
    finally:
        sink.discard()  # a no-op once committed


@contextmanager
def connect(
    workers: int, scheduler: str | None, timeout_s: float, progress: Callable[[str], None]
) -> Iterator[Client]:
    """A client of the cluster at ``scheduler``, or of a new local cluster of ``workers``
    single-threaded worker processes, closed on exit."""
    if scheduler:
        progress(f"connecting to the Dask scheduler at {scheduler}")
        try:
            client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise MovieGenreError(
                f"could not connect to the Dask scheduler at {scheduler} ({exc}); check the "
                "address (tcp://HOST:8786) and that `dask scheduler` is running there"
            ) from None
        with client:
            try:
                client.wait_for_workers(1, timeout=timeout_s)
            except TimeoutError:
                raise MovieGenreError(
                    f"the Dask cluster at {scheduler} has no workers; start some with "
                    f"`dask worker {scheduler}`"
                ) from None
            yield client
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    progress(f"starting a local Dask cluster of {workers} worker processes")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: never collide with another cluster
            silence_logs=logging.ERROR,  # shutdown chatter would bury the summary
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
        progress("stopping the local Dask cluster")


def score_files_dask(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    partition_rows: int = PARTITION_ROWS,
    connect_timeout_s: float = 15,
    progress: Callable[[str], None] = lambda message: None,
) -> DaskScoreSummary:
    """Score every input file (paths or globs) into ``output`` on a Dask cluster.

    ``output`` is one CSV file (``OUT.csv``, the local engine's exact format) or a Parquet
    directory (``OUT.parquet`` or no suffix) with columns ``ID`` then the 24 ``p_`` columns,
    in input order. Rejected rows go to ``OUT.rejects.csv`` as with the local engine.
    """
    if partition_rows < 1:
        raise ValueError(f"partition_rows must be at least 1, got {partition_rows}")
    model_dir, output = Path(model_dir), Path(output)
    paths = expand_inputs(inputs)
    fmt = output_format(output)
    _check_output(output, fmt)
    files = _model_files(model_dir)
    with connect(workers, scheduler, connect_timeout_s, progress) as client:
        n_workers = len(client.nthreads())
        plugin_name = f"moviegenre-model-{uuid.uuid4().hex}"
        progress(f"loading the model on {n_workers} Dask workers")
        try:
            _register(client, ModelPlugin(files), plugin_name)
            with _sink(fmt, output) as sink:
                counts, rejected = _score_into(
                    client, plugin_name, paths, sink, partition_rows, progress
                )
                rejects = pd.concat(rejected, ignore_index=True)
                rejects_path = _write_rejects(rejects, output)
                progress(f"moving {output} into place")
                sink.commit()
        finally:
            progress("releasing the model on the workers")
            with suppress(Exception):  # cleanup must not hide the error that brought us here
                client.unregister_worker_plugin(plugin_name)
    return DaskScoreSummary(
        output=output, rejected=len(rejects), rejects=rejects_path, format=fmt,
        workers=n_workers, **counts,
    )


def _register(client: Client, plugin: ModelPlugin, name: str) -> None:
    try:
        client.register_plugin(plugin, name=name)
    except MovieGenreError as exc:  # raised on a worker: say so, keep the type and message
        raise type(exc)(f"a Dask worker could not load the model: {exc}") from None


def _score_into(
    client, plugin_name, paths, sink, partition_rows, progress
) -> tuple[dict[str, int], list[pd.DataFrame]]:
    """Submit partitions file by file, writing results in input order; at most a few
    partitions per worker thread are in flight, which bounds memory on every side."""
    max_in_flight = 2 * sum(client.nthreads().values()) + 2
    in_flight: deque = deque()
    loads: set[str] = set()
    rejected: list[pd.DataFrame] = []
    total = read = done = partitions = 0

    def collect(limit: int) -> None:
        nonlocal done
        while len(in_flight) > limit:
            try:
                frame, load_id = in_flight.popleft().result()
            except KilledWorker as exc:
                raise MovieGenreError(
                    f"Dask workers kept dying while scoring ({exc}); they may be out of memory: "
                    "lower the partition size or give the workers more memory"
                ) from None
            sink.write(frame)
            loads.add(load_id)
            done += len(frame)
            progress(f"scored {done:,} of {read:,} plots read ({file_note})")

    for number, path in enumerate(paths, start=1):
        file_note = f"file {number} of {len(paths)}"
        progress(f"reading {path} ({file_note})")
        frame, rejects = read_scoring_input(path)
        total += len(frame) + len(rejects)
        read += len(frame)
        rejected.append(rejects)
        for start in range(0, len(frame), partition_rows):
            part = frame.iloc[start : start + partition_rows]
            # pure=False: identical partitions (a file given twice) are still scored twice
            in_flight.append(client.submit(score_partition, plugin_name, part, pure=False))
            partitions += 1
            collect(max_in_flight)
    collect(0)
    counts = {"input_rows": total, "scored": done, "partitions": partitions,
              "model_loads": len(loads)}
    return counts, rejected


def _write_rejects(rejects: pd.DataFrame, output: Path) -> Path | None:
    rejects_path = rejects_path_for(output)
    if len(rejects):
        write_csv_atomically(rejects, rejects_path, index=False)
        return rejects_path
    if rejects_path.exists():
        rejects_path.unlink()  # a stale rejects file from an earlier run would mislead
    return None
