"""Training, inference and serving benchmarks for every model kind, side by side (issue 6).

    python benchmarks/run.py                  # the full run (about 15 minutes on 2 busy cores)
    python benchmarks/run.py --smoke          # CI: small samples, 2-second wrk runs (under a minute)
    python benchmarks/run.py --kinds linear   # some kinds only (linear is always run)

For each kind it trains a model with ``moviegenre train`` in a fresh process (wall time and peak
memory), then measures the model directory's size; cold start (a fresh process: import, load
the model, first prediction); single-plot latency in process; batch throughput against the
model's own vectorizer alone (the floor of the work); both cores (forked processes, and threads
to show the GIL); and for the seed kind, the original system's pipeline, the cost of reloading
the model for every request as the original did. The default (linear) model is also measured
through its scikit-learn pipeline, without its compiled form, to show what that buys. Then it
serves the default model with ``moviegenre serve`` and loads it with ``wrk`` on loopback:
``GET /healthz`` against ``GET /inference`` cycling through the real testing plots.

Prints Markdown tables and writes JSON to ``benchmarks/results/inference.json``
(``inference-smoke.json`` with ``--smoke``). Data: ``--data`` and ``--testing``, by default the
files under ``$MOVIEGENRE_TEST_DATA`` or ``../shared/data``, else the public files (downloaded
once). Linux only (peak memory comes from ``wait4``); ``wrk`` is a Debian package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test suite's server helper: tests/support/servers.py

from tests.support.servers import serve_in_background  # noqa: E402

PROBES = Path(__file__).resolve().with_name("probes.py")
SHARED_DATA = Path(os.environ.get("MOVIEGENRE_TEST_DATA", REPO.parent / "shared" / "data"))
SHARED_NLTK = REPO.parent / "shared" / "nltk_data"
MB = 1_000_000
#: Kinds with a compiled fast path: timed on more plots, and their cross-validation is run.
FAST_KINDS = ("linear", "static")
#: Kinds trained from a sentence encoder (``--encoder``).
ENCODER_KINDS = ("static", "hybrid")


@dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    linear_sample: int | None = None  # None: every labelled movie
    linear_cv: int = 3
    static_sample: int | None = None
    seed_sample: int = 1000
    hybrid_sample: int = 1000
    cold_runs: int = 5
    single_fast: int = 3383
    single_slow: int = 200
    batch_fast: int = 3383
    batch_slow: int = 500
    rounds: int = 3
    reloads: int = 3
    wrk_seconds: int = 10
    wrk_rounds: int = 2
    wrk_connections: int = 4
    http_plots: int = 3383
    pipeline_cold_runs: int = 3
    pipeline_single: int = 500
    pipeline_batch: int = 1000


SMOKE = Plan(
    linear_sample=600, linear_cv=0, static_sample=300, seed_sample=60, hybrid_sample=100, cold_runs=1, single_fast=200,
    single_slow=10, batch_fast=200, batch_slow=40, rounds=1, reloads=1, wrk_seconds=2, wrk_rounds=1,
    http_plots=200, pipeline_cold_runs=0, pipeline_single=20, pipeline_batch=40,
)  # fmt: skip


# --- running things ------------------------------------------------------------------------------


def child_environment(data_home: Path | None = None) -> dict[str, str]:
    """The environment of every measured process: no MOVIEGENRE_* settings from this shell and,
    with ``data_home``, a data home of its own, so no process finds another's cached sentence
    embeddings (the hybrid kind caches them there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGENRE_")}
    # Python writes modules' bytecode on first import, as an installed package has it (pip
    # compiles at install): a shell that forbids it would have every cold start compile
    # moviegenre's source (60-90 ms), which no deployment does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("HF_HUB_OFFLINE", "1")
    if "NLTK_DATA" not in env and SHARED_NLTK.is_dir():
        env["NLTK_DATA"] = str(SHARED_NLTK)  # the seed kind's stopwords
    if data_home is not None:
        env["MOVIEGENRE_DATA_HOME"] = str(data_home)
    return env


def run_measured(command: list[str], log: Path) -> dict[str, Any]:
    """Run ``command`` to completion (with a fresh data home beside ``log``); its wall time,
    peak resident memory and stdout."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=log.parent))
    started = time.perf_counter()
    with open(log, "a") as stderr, tempfile.TemporaryFile("w+") as stdout:
        env = child_environment(home)
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        output = stdout.read()
    shutil.rmtree(home, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])}... exited with {process.returncode}; see {log}")
    return {"wall_s": wall, "peak_rss_bytes": usage.ru_maxrss * 1024, "stdout": output}


def probe(args: list[str], log: Path) -> dict[str, Any]:
    result = run_measured([sys.executable, str(PROBES), *args], log)
    return {**json.loads(result["stdout"].strip().splitlines()[-1]), "wall_s": result["wall_s"]}


def train(kind: str, out: Path, data: Path, sample: int | None, cv: int, encoder: str | None, log: Path) -> dict:
    command = [sys.executable, "-m", "moviegenre", "train", "--kind", kind, "--out", str(out), "--cv", str(cv),
               "--data", str(data)]  # fmt: skip
    if sample is not None:
        command += ["--sample", str(sample)]
    if encoder is not None:
        command += ["--encoder", encoder]
    result = run_measured(command, log)
    summary = json.loads(result["stdout"])
    return {
        "command": "moviegenre " + " ".join(command[3:]),
        "rows": summary["rows"],
        "cv_folds": cv,
        "sample": sample,
        "wall_s": result["wall_s"],
        "training_seconds": summary["training_seconds"],
        "peak_rss_bytes": result["peak_rss_bytes"],
        "cv_macro_auc": summary.get("cv_macro_auc"),
    }


def artifact_size(directory: Path) -> dict[str, Any]:
    files = {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*")) if p.is_file()}
    return {"bytes": sum(files.values()), "files": files}


def cold_start(model: Path, runs: int, log: Path, path: str = "model") -> dict[str, Any]:
    """The median of ``runs`` fresh processes' cold starts, after one unmeasured run (which
    writes any bytecode not yet written: see :func:`child_environment`)."""
    probe(["cold-start", str(model), "--path", path], log)
    results = [probe(["cold-start", str(model), "--path", path], log) for _ in range(runs)]
    middle = sorted(results, key=lambda r: r["wall_s"])[len(results) // 2]
    return {**middle, "runs": runs, "all_wall_s": [r["wall_s"] for r in results]}


# --- HTTP ----------------------------------------------------------------------------------------

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests, duration, requests/s, p50/p99 latency (ms) and errors from ``wrk --latency``."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")

    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = {"non_2xx": int(non_2xx.group(1)) if non_2xx else 0}
    if sockets:
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
    return {
        "requests": int(done.group(1)),
        "seconds": float(done.group(2)) * _WRK_UNITS[done.group(3)] / 1e3,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": sum(errors.values()),
        "error_detail": errors,
    }


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wrk_script(plots: list[str], path: Path) -> Path:
    """A wrk Lua script that sends ``GET /inference`` for each plot in turn. The requests are
    formatted once, in ``init``, so that wrk spends no more per request than for a fixed URL."""
    targets = ",\n".join(f'"/inference?plot={quote(plot, safe="")}"' for plot in plots)
    path.write_text(
        f"local paths = {{\n{targets}\n}}\n"
        "local requests, i = {}, 0\n"
        "init = function(args)\n  for n, p in ipairs(paths) do requests[n] = wrk.format('GET', p) end\nend\n"
        "request = function()\n  i = i % #requests + 1\n  return requests[i]\nend\n"
    )
    return path


def http(model: Path, plots: list[str], plan: Plan, work: Path) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (Debian/Ubuntu: apt-get install wrk)"}
    with serve_in_background(model, env=child_environment(), timeout_s=300, log=work / "serve.log", cwd=REPO) as server:
        base = server.base_url
        status, body = _get(base + "/inference?plot=" + quote(plots[0], safe=""))
        answer = json.loads(body)
        assert status == 200 and len(answer["clasification"]) == 24, body[:200]
        script = wrk_script(plots, work / "inference.lua")

        def load(url: str, seconds: int, *extra: str) -> dict[str, Any]:
            command = [wrk, "-t1", f"-c{plan.wrk_connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
            done = subprocess.run([*command, *extra, url], capture_output=True, text=True, check=True)
            return parse_wrk(done.stdout)

        load(base, 1, "-s", str(script))  # warm-up: word caches, thread pool
        rounds = []
        for _ in range(plan.wrk_rounds):
            rounds.append({"healthz": load(base + "/healthz", plan.wrk_seconds),
                           "inference": load(base, plan.wrk_seconds, "-s", str(script))})  # fmt: skip
    result = {
        "wrk": f"wrk -t1 -c{plan.wrk_connections} -d{plan.wrk_seconds}s --latency, {plan.wrk_rounds} round(s)",
        "server": "moviegenre serve (one uvicorn worker)",
        "inference_plots": len(plots),
        "rounds": rounds,
    }
    for endpoint in ("healthz", "inference"):
        runs = [r[endpoint] for r in rounds]
        result[endpoint] = {
            "requests_per_s": sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
    result["ratio"] = result["inference"]["requests_per_s"] / result["healthz"]["requests_per_s"]
    return result


# --- the report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = None
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        memory = kb * 1024
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=REPO, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        commit = None
    from moviegenre.model.card import library_versions

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": memory,
        "platform": platform.platform(),
        "versions": library_versions(),
        "git_commit": commit,
    }


def _goal(name: str, target: str, measured: float | None, met: bool | None, unit: str, note: str) -> dict[str, Any]:
    return {"goal": name, "target": target, "measured": measured, "unit": unit, "met": met, "note": note}


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = report["kinds"]
    linear, seed = kinds["linear"], kinds.get("seed")
    p50 = linear["inference"]["single"]["p50_ms"]
    out = [_goal("single-plot p50, in process, calibrated", "<= 0.32 ms", p50, p50 <= 0.32, "ms",
                 f"linear; {linear['inference']['single']['n']} testing plots, one call each")]  # fmt: skip
    static = kinds.get("static")
    if static:
        static_p50 = static["inference"]["single"]["p50_ms"]
        out.append(_goal("static (default kind) single-plot p50, calibrated", "<= 0.8 ms", static_p50,
                         static_p50 <= 0.8, "ms", f"directory {static['artifact']['bytes'] / MB:.1f} MB"))  # fmt: skip
        static_cold = static["cold_start"]["wall_s"]
        out.append(_goal("static cold start (import + load + first answer)", "<= 0.6 s", static_cold,
                         static_cold <= 0.6, "s", _cold_note(static)))  # fmt: skip
    if seed:
        speedup = seed["inference"]["single"]["p50_ms"] / p50
        out.append(_goal("single plot vs the original loaded once", ">= 50x faster", speedup, speedup >= 50, "x",
                         f"seed p50 {seed['inference']['single']['p50_ms']:.1f} ms, trained on a sample "
                         f"of {seed['training']['rows']}: the full original is slower"))  # fmt: skip
        reload_s = seed["inference"].get("reload_per_request_s")
        if reload_s is not None:
            out.append(_goal("the original reloading its model per request", "report", reload_s, None, "s",
                             f"per request; {reload_s * 1e3 / p50:,.0f}x the linear model's p50"))  # fmt: skip
    batch = linear["inference"]["batch"]["plots_per_s"]
    floor = linear["inference"]["vectorizer"]["plots_per_s"]
    out.append(_goal("batch vs the vectorizer alone", ">= 80%", batch / floor, batch / floor >= 0.8, "ratio",
                     f"{batch:,.0f} vs {floor:,.0f} plots/s, one process"))  # fmt: skip
    both = linear["inference"].get("two_processes", {}).get("plots_per_s")
    if both:
        out.append(_goal("batch on both cores (2 forked processes)", "> 1x one process", both / batch, both > batch,
                         "x", f"{both:,.0f} plots/s; threads: "
                         f"{linear['inference']['two_threads']['plots_per_s']:,.0f} plots/s (GIL)"))  # fmt: skip
    web = report.get("http", {})
    if "ratio" in web:
        errors = web["healthz"]["errors"] + web["inference"]["errors"]
        out.append(_goal("GET /inference vs GET /healthz (wrk)", ">= 70%", web["ratio"], web["ratio"] >= 0.7, "ratio",
                         f"{web['inference']['requests_per_s']:,.0f} vs {web['healthz']['requests_per_s']:,.0f} req/s"))
        out.append(_goal("HTTP errors", "0", errors, errors == 0, "count", web["wrk"]))
    cold = linear["cold_start"]["wall_s"]
    out.append(_goal("linear cold start (import + load + first answer)", "<= 0.4 s", cold, cold <= 0.4, "s",
                     _cold_note(linear) + (f"; seed: {seed['cold_start']['wall_s']:.1f} s" if seed else "")))
    size = linear["artifact"]["bytes"] / MB
    out.append(_goal("linear model artifact", "<= 20 MB", size, size <= 20, "MB",
                     ", ".join(f"{name} {b / MB:.1f}" for name, b in linear["artifact"]["files"].items())))
    training = linear["training"]
    out.append(_goal("training time (linear)", "<= 60 s", training["wall_s"], training["wall_s"] <= 60, "s",
                     f"{training['rows']} movies, {training['cv_folds']}-fold CV; "
                     f"{training['training_seconds']:.0f} s inside train()"))  # fmt: skip
    peak = training["peak_rss_bytes"] / 1e9
    out.append(_goal("training peak memory", "<= 1.5 GB", peak, peak <= 1.5, "GB", "peak resident set (wait4)"))
    return out


def _cold_note(entry: dict[str, Any]) -> str:
    """Where a cold start's time went (the median run's import, load and first answer)."""
    cold = entry["cold_start"]
    parts = [f"{name} {cold[key]:.3f} s" for name, key in
             (("import", "import_s"), ("load", "load_s"), ("first answer", "first_prediction_s")) if key in cold]
    return "fresh process; " + ", ".join(parts)  # fmt: skip


def verdicts(report: dict[str, Any]) -> str:
    """One line per goal: PASS, FAIL or REPORT, the goal, what was measured and the target."""
    lines = []
    for goal in report["goals"]:
        verdict = {True: "PASS", False: "FAIL", None: "REPORT"}[goal["met"]]
        measured = _fmt(goal["measured"], ".0%" if goal["unit"] == "ratio" else ",.3g")
        unit = "" if goal["unit"] == "ratio" else f" {goal['unit']}"
        lines.append(f"{verdict:6} {goal['goal']}: {measured}{unit} (target {goal['target']})")
    return "\n".join(lines)


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def kind_notes(report: dict[str, Any]) -> list[str]:
    kinds = report["kinds"]
    notes = ["cold start: a fresh process importing moviegenre, loading the model and answering one plot "
             "(median wall time, interpreter start included). p50/p99: one plot per call, in process."]  # fmt: skip
    if "linear (pipeline)" in kinds:
        notes.append("linear (pipeline): the same linear model, scored through its scikit-learn pipeline "
                     "(model.skops) as before it was compiled.")  # fmt: skip
    for name in ("seed", "hybrid"):
        if name in kinds:
            notes.append(f"{name}: trained on a sample of {kinds[name]['training']['rows']:,} movies to bound "
                         "its time; timed on plots it had not scored before.")  # fmt: skip
    if "hybrid" in kinds:
        notes.append("hybrid: its artifact includes its sentence encoder (encoder/model.onnx).")
    return notes


def tables(report: dict[str, Any]) -> str:
    rows = []
    for name, entry in report["kinds"].items():
        training, inference = entry.get("training"), entry["inference"]
        vector = inference.get("vectorizer", {}).get("plots_per_s")
        batch = inference["batch"]["plots_per_s"]
        trained = "-" if training is None else (
            f"{training['rows']:,}" + (f" (sample), CV {training['cv_folds']}" if training["sample"] else
                                       f", CV {training['cv_folds']}"))  # fmt: skip
        rows.append([
            name, trained,
            _fmt(training and training["wall_s"], ".1f"), _fmt(training and training["peak_rss_bytes"] / MB),
            _fmt(entry.get("artifact", {}).get("bytes", 0) / MB or None, ".1f"),
            _fmt(entry["cold_start"]["wall_s"], ".2f"),
            _fmt(inference["single"]["p50_ms"], ".3f"), _fmt(inference["single"]["p99_ms"], ".3f"),
            _fmt(batch), _fmt(vector), _fmt(vector and batch / vector, ".0%"),
            _fmt(inference.get("two_processes", {}).get("plots_per_s")), _fmt(inference["two_threads"]["plots_per_s"]),
            _fmt(inference.get("reload_per_request_s"), ".2f"),
        ])  # fmt: skip
    headers = ["kind", "trained on", "train s", "peak MB", "artifact MB", "cold start s", "p50 ms", "p99 ms",
               "batch plots/s", "vectorizer plots/s", "batch / vectorizer", "2 processes plots/s",
               "2 threads plots/s", "reload per request s"]  # fmt: skip
    parts = [markdown(headers, rows) + "\n\n" + " ".join(kind_notes(report))]
    web = report.get("http", {})
    if "skipped" in web:
        parts.append(f"HTTP: skipped ({web['skipped']})")
    elif web:
        parts.append(markdown(
            ["endpoint", "requests/s", "p50 ms", "p99 ms", "errors"],
            [[f"GET /{e}", _fmt(web[e]["requests_per_s"]), _fmt(web[e]["p50_ms"], ".2f"), _fmt(web[e]["p99_ms"], ".2f"),
              str(web[e]["errors"])] for e in ("healthz", "inference")],
        ) + f"\n\n{web['server']}; {web['wrk']}; /inference cycles {web['inference_plots']:,} testing plots; "
            f"ratio {web['ratio']:.0%}")  # fmt: skip
    parts.append(markdown(
        ["goal", "target", "measured", "met", "note"],
        [[g["goal"], g["target"], _fmt(g["measured"], ".0%" if g["unit"] == "ratio" else ",.3g") +
          ("" if g["unit"] == "ratio" else f" {g['unit']}"),
          {True: "yes", False: "**no**", None: "-"}[g["met"]], g["note"]] for g in report["goals"]],
    ))  # fmt: skip
    m, load = report["machine"], report["load_average"]
    parts.append(
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {_fmt((m['memory_bytes'] or 0) / 1e9, '.0f')} GB; "
        f"Python {m['versions']['python']}, scikit-learn {m['versions']['scikit-learn']}. Load average "
        f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load['start'])} at the start, "
        f"{'/'.join(f'{x:.1f}' for x in load['end'])} at the end."
    )
    return "\n\n".join(parts)


# --- the run -------------------------------------------------------------------------------------


def resolve_data(args: argparse.Namespace) -> tuple[Path, Path]:
    """The labelled and the testing file: as given, else the shared copies, else the public
    files (downloaded once into the data home)."""
    from moviegenre.core.data import fetch_public
    from moviegenre.core.settings import get_settings

    data = args.data or (SHARED_DATA / "dataTraining-dev.zip")
    if not data.exists():
        data = fetch_public("train", get_settings().resolved_data_home())
    testing = args.testing or (SHARED_DATA / "dataTesting.zip")
    if not testing.exists():
        testing = fetch_public("test", get_settings().resolved_data_home())
    return data, testing


def bench_kind(kind: str, sample: int | None, cv: int, data, testing, plan: Plan, work: Path, args) -> dict:
    fast_kind = kind in FAST_KINDS
    model = work / kind
    say(f"{kind}: training ({'all movies' if sample is None else f'a sample of {sample}'}, CV {cv})")
    encoder = args.encoder if kind in ENCODER_KINDS else None
    entry: dict[str, Any] = {"training": train(kind, model, data, sample, cv, encoder, work / f"train-{kind}.log")}
    entry["artifact"] = artifact_size(model)
    say(f"{kind}: cold start x{plan.cold_runs}")
    entry["cold_start"] = cold_start(model, plan.cold_runs, work / f"cold-{kind}.log")
    say(f"{kind}: single plots, batch, both cores")
    entry["inference"] = probe([
        "inference", str(model), "--testing", str(testing),
        "--single", str(plan.single_fast if fast_kind else plan.single_slow),
        "--batch-rows", str(plan.batch_fast if fast_kind else plan.batch_slow),
        "--rounds", str(plan.rounds if fast_kind else 1),
        "--reloads", str(plan.reloads),
    ], work / f"inference-{kind}.log")  # fmt: skip
    return entry


def bench_pipeline_path(data_model: Path, testing: Path, plan: Plan, work: Path) -> dict:
    """The linear model scored by its scikit-learn pipeline, as before it was compiled. (A linear
    model is only loaded with its compiled form, so the model is loaded whole, and then its
    pipeline, from model.skops, scores.)"""
    model = data_model
    say("linear via its scikit-learn pipeline: cold start, single plots, batch")
    skops = model / "model.skops"
    entry = {
        "note": "the same model, scored by its scikit-learn pipeline (model.skops) instead of fast.npz",
        "artifact": {"bytes": skops.stat().st_size, "files": {"model.skops": skops.stat().st_size}},
        "cold_start": {"wall_s": None},
    }
    if plan.pipeline_cold_runs:
        entry["cold_start"] = cold_start(model, plan.pipeline_cold_runs, work / "cold-pipeline.log", path="pipeline")
    entry["inference"] = probe([
        "inference", str(model), "--testing", str(testing), "--path", "pipeline",
        "--single", str(plan.pipeline_single), "--batch-rows", str(plan.pipeline_batch),
        "--rounds", "1", "--reloads", "1" if plan.pipeline_cold_runs else "0",
    ], work / "inference-pipeline.log")  # fmt: skip
    return entry


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="Small samples and short wrk runs (CI).")
    parser.add_argument("--data", type=Path, help="Labelled training file (default: the dev file, else public).")
    parser.add_argument("--testing", type=Path, help="Unlabelled plots to score (default: dataTesting.zip).")
    parser.add_argument("--encoder", help="Sentence encoder of the static and hybrid kinds (a hub name or a local "
                        "folder; default: their own, found offline as `moviegenre train` finds it).")
    parser.add_argument("--kinds", default="linear,static,seed,hybrid",
                        help="Kinds to run (default linear,static,seed,hybrid).")
    parser.add_argument("--no-http", action="store_true", help="Skip the wrk runs.")
    parser.add_argument("--json", type=Path, help="Where to write the results.")
    parser.add_argument("--work-dir", type=Path, help="Keep models and logs here (default: a temporary folder).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    plan = SMOKE if args.smoke else Plan()
    results = REPO / "benchmarks" / "results"
    json_path = args.json or results / ("inference-smoke.json" if args.smoke else "inference.json")
    from moviegenre.kinds.registry import kind_names

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if "linear" not in kinds:
        raise SystemExit("--kinds must include linear: the goals are about the default model")
    skipped = {kind: "no such kind" for kind in kinds if kind not in kind_names()}
    kinds = [kind for kind in kinds if kind not in skipped]
    data, testing = resolve_data(args)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="moviegenre-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "plan": asdict(plan),
        "data": {"training": str(data), "testing": str(testing)},
        "machine": machine(),
        "load_average": {"start": list(os.getloadavg())},
        "kinds": {},
        "skipped": skipped,
    }
    try:
        samples = {"linear": plan.linear_sample, "static": plan.static_sample, "seed": plan.seed_sample,
                   "hybrid": plan.hybrid_sample}  # fmt: skip
        for kind in kinds:
            cv = plan.linear_cv if kind in FAST_KINDS else 0
            report["kinds"][kind] = bench_kind(kind, samples[kind], cv, data, testing, plan, work, args)
            if kind == "linear":
                report["kinds"]["linear (pipeline)"] = bench_pipeline_path(work / "linear", testing, plan, work)
        if not args.no_http:
            say("HTTP: moviegenre serve + wrk")
            from moviegenre.core.data import load_movies

            plots = load_movies(testing, labelled=False).frame["plot"].tolist()[: plan.http_plots]
            report["http"] = http(work / "linear", plots, plan, work)
    except BaseException:
        say(f"failed; models and logs are in {work}")
        raise
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    report["load_average"]["end"] = list(os.getloadavg())
    report["goals"] = goals(report)
    report["tables"] = tables(report)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(report["tables"])
    print("\n" + verdicts(report))
    print(f"\nJSON: {json_path}")
    return report


if __name__ == "__main__":
    main()
