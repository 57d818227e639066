"""Measurements that need a process of their own; run by ``benchmarks/run.py``, one JSON line out.

    python benchmarks/probes.py cold-start MODEL_DIR [--path pipeline]
    python benchmarks/probes.py inference MODEL_DIR --testing dataTesting.zip [--single N] ...
    python benchmarks/probes.py single MODEL_DIR --testing dataTesting.zip [--single N]

``cold-start`` times what a fresh process pays before its first answer: import moviegenre,
load the model, predict one plot. Its clock starts before anything but the standard library is
imported. ``inference`` loads a model once and times single-plot calls, batch scoring, the
model's vectorizer alone, both cores, and (optionally) reloading the model for every request as
the original system did. ``single`` times the single-plot calls alone (``benchmarks/ab.py``).
"""

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

#: The original README's first example plot (moviegenre.core.examples.EXAMPLE_PLOTS["E1"]), inlined
#: so that the cold-start clock does not include importing anything to get it.
COLD_START_PLOT = (
    "who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the beach when she stumbles "
    "upon a bottle washed up on the shore .  inside is a message ,  reading the letter she feels so moved and yet "
    "she felt as if she has violated someone ' s thoughts ."
)


def cold_start(args: argparse.Namespace) -> dict:
    import moviegenre

    imported = time.perf_counter()
    model = moviegenre.load_model(args.model)
    loaded = time.perf_counter()
    if args.path == "pipeline":
        from moviegenre.core.items import to_frame as items_to_frame

        proba = model.pipeline.predict_proba(items_to_frame([COLD_START_PLOT]))
    else:
        proba = model.predict_proba([COLD_START_PLOT])
    answered = time.perf_counter()
    assert proba.shape == (1, 24)
    return {
        "import_s": imported - _STARTED,
        "load_s": loaded - imported,
        "first_prediction_s": answered - loaded,
        "in_process_s": answered - _STARTED,
        "fast": model.scorer.quick if args.path == "model" else False,
    }


def _percentiles(nanoseconds) -> dict:
    import numpy as np

    ms = np.asarray(nanoseconds, dtype=float) / 1e6
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def _single_plots(score, plots: list[str], n: int) -> dict:
    """Single plots, as one request each: warm the code paths on other text, then ``n`` plots of
    the testing file in order (word caches fill as they would in a server); percentiles."""
    for text in (COLD_START_PLOT, "a gunfight in a frontier town"):
        for _ in range(5):
            score([text])
    times = []
    for i in range(n):
        plot = plots[i % len(plots)]
        started = time.perf_counter_ns()
        score([plot])
        times.append(time.perf_counter_ns() - started)
    return _percentiles(times)


def single(args: argparse.Namespace) -> dict:
    import moviegenre
    from moviegenre.core.data import load_movies

    plots = load_movies(args.testing, labelled=False).frame["plot"].tolist()
    model = moviegenre.load_model(args.model)
    return {"kind": model.kind, "single": _single_plots(model.predict_proba, plots, args.single)}


def inference(args: argparse.Namespace) -> dict:
    import statistics
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from processes import predict_proba_processes

    import moviegenre
    from moviegenre.core.data import load_movies
    from moviegenre.core.items import to_frame as items_to_frame

    frame = load_movies(args.testing, labelled=False).frame
    plots = frame["plot"].tolist()
    model = moviegenre.load_model(args.model)
    result: dict = {"kind": model.kind, "path": args.path, "fast": model.scorer.quick and args.path == "model"}

    if args.path == "pipeline":
        def score(items):
            return model.pipeline.predict_proba(items_to_frame(items))
    else:
        score = model.predict_proba

    result["single"] = _single_plots(score, plots, args.single)

    # A batch of the testing file's rows, with their titles and years. The compiled model gets a
    # warm-up pass (its word caches are a steady state); other kinds get plots they have not
    # scored yet, so that a cache of sentence embeddings (hybrid) cannot answer for them.
    fresh = not result["fast"]
    start = args.single if fresh else 0
    batch = frame.iloc[[(start + i) % len(frame) for i in range(args.batch_rows)]]
    n = len(batch)
    vectorize = _vectorizer(model, args.path, batch)
    if not fresh:
        score(batch)
    score_s, vectorize_s = [], []
    for _ in range(args.rounds):
        if vectorize is not None:
            vectorize_s.append(_timed(vectorize))
        score_s.append(_timed(score, batch))
    result["batch"] = {"rows": n, "rounds": args.rounds, "plots_per_s": n / statistics.median(score_s)}
    if vectorize_s:
        result["vectorizer"] = {"plots_per_s": n / statistics.median(vectorize_s)}
    if model.kind == "hybrid":
        result["bare_encoder"] = _bare_encoder(batch, result["batch"]["plots_per_s"])

    # Both cores. Threads: tokenising is pure Python and holds the GIL, so they are measured to
    # show it. Processes: forked workers that inherit the compiled model.
    if fresh:
        batch = frame.iloc[[(start + n + i) % len(frame) for i in range(n)]]
    halves = [batch.iloc[: n // 2], batch.iloc[n // 2 :]]
    with ThreadPoolExecutor(2) as pool:
        seconds = _timed(lambda: list(pool.map(score, halves)))
    result["two_threads"] = {"plots_per_s": n / seconds}
    if result["fast"]:
        columns = (batch["plot"].tolist(), batch["title"].tolist(), batch["year"].to_numpy())
        single = model.scorer.predict_proba(*columns)
        seconds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            both = predict_proba_processes(model.scorer, *columns, workers=2, chunk_rows=max(1, -(-n // 8)))
            seconds.append(time.perf_counter() - started)
        assert np.array_equal(both, single)
        result["two_processes"] = {"plots_per_s": n / statistics.median(seconds), "includes": "fork + pool start"}

    # The original system loaded its model on every request: load + one prediction, repeated.
    if args.reloads:
        seconds = []
        for i in range(args.reloads):
            started = time.perf_counter()
            fresh = moviegenre.load_model(args.model)
            if args.path == "pipeline":
                fresh.pipeline.predict_proba(items_to_frame([plots[i]]))
            else:
                fresh.predict_proba([plots[i]])
            seconds.append(time.perf_counter() - started)
        result["reload_per_request_s"] = statistics.median(seconds)
    return result


def _bare_encoder(batch, hybrid_plots_per_s: float) -> dict:
    """The hybrid's sentence encoder alone, as sentence-transformers runs it (PyTorch), on the
    same "title. plot" texts the hybrid just scored: what the whole model is compared with."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return {"skipped": "sentence-transformers is not installed"}
    from moviegenre.kinds.encoders import DEFAULT_ENCODER, resolve_encoder

    texts = [f"{title}. {plot}" if title else plot for title, plot in zip(batch["title"], batch["plot"], strict=True)]
    encoder = SentenceTransformer(resolve_encoder(DEFAULT_ENCODER), device="cpu")
    encoder.encode(texts[:8])
    seconds = _timed(lambda: encoder.encode(texts, batch_size=32))
    plots_per_s = len(texts) / seconds
    return {"plots_per_s": plots_per_s, "hybrid_ratio": hybrid_plots_per_s / plots_per_s,
            "what": "sentence-transformers (torch fp32), the same texts, batch size 32"}


def _vectorizer(model, path: str, batch):
    """The model's own feature extraction alone, or ``None`` when it has no separate step."""
    from moviegenre.core.items import to_frame as items_to_frame

    if path == "model" and model.scorer.quick:
        columns = (batch["plot"].tolist(), batch["title"].tolist(), batch["year"].to_numpy())
        # The static kind's compiled form blends a linear text part (``text``) with its table:
        # its floor is that text part's vectorizer.
        scorer = getattr(model.scorer, "text", model.scorer)
        return lambda: scorer.transform(*columns)
    steps = dict(getattr(model.pipeline, "steps", []))
    if "features" in steps:
        return lambda: steps["features"].transform(items_to_frame(batch))
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="probe", required=True)
    cold = sub.add_parser("cold-start")
    cold.add_argument("model")
    cold.add_argument("--path", choices=["model", "pipeline"], default="model")
    inf = sub.add_parser("inference")
    inf.add_argument("model")
    inf.add_argument("--testing", required=True)
    inf.add_argument("--path", choices=["model", "pipeline"], default="model")
    inf.add_argument("--single", type=int, default=1000)
    inf.add_argument("--batch-rows", type=int, default=3383)
    inf.add_argument("--rounds", type=int, default=3)
    inf.add_argument("--reloads", type=int, default=0)
    one = sub.add_parser("single")
    one.add_argument("model")
    one.add_argument("--testing", required=True)
    one.add_argument("--single", type=int, default=3383)
    args = parser.parse_args(argv)
    result = {"cold-start": cold_start, "inference": inference, "single": single}[args.probe](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
