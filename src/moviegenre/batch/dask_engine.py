"""The Dask engine of batch scoring: pieces of the input read, scored and written on a Dask cluster.

:func:`moviegenre.batch.scoring.score_files` plans the pieces and commits the output where the command
runs; this engine sends each piece to a worker as a task, and the worker reads it from the
input (a local path every worker can reach, or an fsspec URL such as ``s3://...``), checks it,
scores it and writes its part of the output beside ``OUT`` (:func:`~moviegenre.batch.scoring.score_piece`).
Only piece descriptions and row counts cross the network to and from this process, so its CPU
and memory stay flat however large the input. A task whose worker dies is run again on
another worker by the scheduler, and rewrites its whole part.

The model travels to each worker once, as the model directory's files inside a worker plugin,
and each worker loads it with :func:`~moviegenre.model.artifact.load_model`. Shipping the directory
rather than a pickled model means every worker checks the checksum, the trusted types and that
its own scikit-learn matches the one the model was made with.

    score_files(DaskEngine("models/default", workers=4), ["data/*.parquet"], "scores.parquet")
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import Self

from moviegenre.batch.inputs import Piece
from moviegenre.batch.scoring import Job, PieceResult, cut_pieces, score_piece
from moviegenre.core.errors import MovieGenreError, UsageError
from moviegenre.core.progress import Progress, quiet
from moviegenre.model.artifact import load_model
from moviegenre.model.card import read_card

try:
    from distributed import Client, Future, KilledWorker, LocalCluster, WorkerPlugin, as_completed, get_worker
except ImportError as exc:  # the dask extra is optional
    from moviegenre.core.advice import install_extra

    raise MovieGenreError(f"the Dask engine needs Dask: {install_extra('dask')}") from exc


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


def run_piece(plugin_name: str, job: Job, piece: Piece) -> tuple[PieceResult, str]:
    """Runs on a worker: score ``piece`` with the model its plugin loaded."""
    plugin = get_worker().plugins[plugin_name]
    return score_piece(plugin.model, job, piece), plugin.load_id


class DaskEngine:
    """Scores partitions on the Dask cluster at ``scheduler``, or on a new local cluster of
    ``workers`` single-threaded worker processes, each holding the model of ``model_dir``.

    Entering reads the model directory (so a missing one fails before a cluster starts),
    connects and loads the model on every worker; leaving releases the model and stops a
    local cluster.
    """

    name = "dask"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        workers: int = 2,
        scheduler: str | None = None,
        connect_timeout_s: float = 15,
        progress: Progress = quiet,
    ):
        if workers < 1:
            raise UsageError(f"a local Dask cluster needs at least 1 worker, got {workers}")
        self.model_dir, self.scheduler = Path(model_dir), scheduler
        self.local_workers, self.connect_timeout_s, self.progress = workers, connect_timeout_s, progress
        #: Worker processes of the cluster; known once entered.
        self.workers = 0
        self._stack = ExitStack()
        self._client: Client | None = None
        self._plugin_name = f"moviegenre-model-{uuid.uuid4().hex}"
        self._loads: set[str] = set()

    @cached_property
    def probability_keys(self) -> tuple[str, ...]:
        """The output keys of the model of ``model_dir``, in its order, from its card (read once;
        a missing or foreign directory fails here, in one line, before anything starts)."""
        return read_card(self.model_dir).probability_keys

    @property
    def model_loads(self) -> int:
        """How many times a worker loaded the model: one per worker, never one per partition."""
        return len(self._loads)

    def __enter__(self) -> Self:
        files = _model_files(self.model_dir)
        with ExitStack() as stack:
            self._client = stack.enter_context(self._connect())
            self.workers = len(self._client.nthreads())
            self.progress(f"loading the model on {self.workers} Dask workers")
            stack.callback(self._release_model)
            _register(self._client, ModelPlugin(files), self._plugin_name)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._stack.close()
        self._client = None

    def cut(self, job: Job, pieces: Sequence[Piece]) -> list[list[Piece]]:
        """Cut each CSV file on a worker (all files at once), so this process never reads a row."""
        futures = self._map(cut_pieces, [job] * len(pieces), list(pieces))
        try:
            return [self._value(future) for future in futures]
        finally:
            self._cancel(futures)

    def run(self, job: Job, pieces: Sequence[Piece]) -> Iterator[PieceResult]:
        futures = self._map(run_piece, [self._plugin_name] * len(pieces), [job] * len(pieces), list(pieces))
        try:
            for future in as_completed(futures):
                result, load_id = self._value(future)
                self._loads.add(load_id)
                yield result
        finally:
            self._cancel(futures)

    def _map(self, task, *arguments: list) -> list[Future]:
        if self._client is None:
            raise UsageError("enter the DaskEngine (with DaskEngine(...) as engine:) before scoring")
        # pure=False: a file given twice is scored twice. The scheduler balances the tasks and
        # reruns those of a worker that died; the results are a few numbers each.
        return self._client.map(task, *arguments, pure=False)

    def _cancel(self, futures: list[Future]) -> None:
        with suppress(Exception):  # cleanup must not hide the error that brought us here
            self._client.cancel(futures)

    def _value(self, future: Future):
        try:
            value = future.result()
        except KilledWorker as exc:
            raise MovieGenreError(
                f"Dask workers kept dying while scoring ({exc}); they may be out of memory: "
                "give the workers more memory, or write the input with smaller row groups"
            ) from None
        except OSError as exc:  # a worker's own failure (its disk, its network), not an input's
            raise MovieGenreError(f"scoring on the Dask cluster failed: {exc}") from None
        future.release()
        return value

    def _release_model(self) -> None:
        self.progress("releasing the model on the workers")
        with suppress(Exception):  # cleanup must not hide the error that brought us here
            self._client.unregister_worker_plugin(self._plugin_name)

    @contextmanager
    def _connect(self) -> Iterator[Client]:
        if self.scheduler:
            with _remote_client(self.scheduler, self.connect_timeout_s, self.progress) as client:
                yield client
            return
        self.progress(f"starting a local Dask cluster of {self.local_workers} worker processes")
        with (
            LocalCluster(
                n_workers=self.local_workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never collide with another cluster
                silence_logs=logging.ERROR,  # shutdown chatter would bury the summary
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
            self.progress("stopping the local Dask cluster")


@contextmanager
def _remote_client(scheduler: str, timeout_s: float, progress: Progress) -> Iterator[Client]:
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
                f"the Dask cluster at {scheduler} has no workers; start some with `dask worker {scheduler}`"
            ) from None
        yield client


def _model_files(model_dir: Path) -> dict[str, bytes]:
    read_card(model_dir)  # fail here, before a cluster starts, if it is no model directory
    return {
        str(path.relative_to(model_dir)): path.read_bytes() for path in sorted(model_dir.rglob("*")) if path.is_file()
    }


def _register(client: Client, plugin: ModelPlugin, name: str) -> None:
    try:
        client.register_plugin(plugin, name=name)
    except MovieGenreError as exc:  # raised on a worker: say so, keep the type and message
        raise type(exc)(f"a Dask worker could not load the model: {exc}") from None
