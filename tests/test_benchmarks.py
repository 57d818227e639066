"""The benchmark command runs end to end. Benchmarks are not timed tests: CI runs the short
smoke version (small samples, 2-second wrk runs) and checks that every measurement and goal is
reported, not how fast anything was."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.needs import in_ci, need

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
HAVE_WRK = shutil.which("wrk") is not None
WRK_MISSING = "wrk is not installed: make system-deps installs it (apt-get install wrk)"

WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:8000/healthz
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.32ms    2.01ms  40.11ms   97.10%
    Req/Sec     2.36k   389.82     3.64k    83.75%
  Latency Distribution
     50%  812.00us
     75%    1.17ms
     90%    1.53ms
     99%    1.20s
  4690 requests in 2.00s, 654.12KB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2345.36
Transfer/sec:    327.03KB
"""


def load_run_module():
    spec = importlib.util.spec_from_file_location("benchmarks_run", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_wrk_output_is_parsed_with_its_units_and_errors():
    parsed = load_run_module().parse_wrk(WRK_OUTPUT)
    assert parsed["requests"] == 4690 and parsed["seconds"] == 2.0
    assert parsed["requests_per_s"] == 2345.36
    assert parsed["p50_ms"] == pytest.approx(0.812) and parsed["p99_ms"] == pytest.approx(1200.0)
    assert parsed["errors"] == 8
    assert parsed["error_detail"] == {"non_2xx": 5, "connect": 0, "read": 2, "write": 0, "timeout": 1}


def test_each_goal_gets_a_verdict_against_the_issues_figures():
    """The per-plot goals of issue 21: linear p50 <= 0.32 ms calibrated, static <= 0.8 ms,
    cold start <= 0.4 s (linear) and <= 0.6 s (static), each a PASS or FAIL line."""
    run = load_run_module()
    cold = {"wall_s": 0.41, "import_s": 0.2, "load_s": 0.1, "first_prediction_s": 0.01}
    kind = {"inference": {"single": {"p50_ms": 0.3, "n": 10}, "batch": {"plots_per_s": 900.0},
                          "vectorizer": {"plots_per_s": 1000.0}, "two_threads": {"plots_per_s": 800.0}},
            "cold_start": cold, "artifact": {"bytes": 19e6, "files": {"model.skops": 10e6}},
            "training": {"wall_s": 50.0, "rows": 100, "cv_folds": 3, "training_seconds": 40.0,
                         "peak_rss_bytes": 1e9}}  # fmt: skip
    static = {**kind, "inference": {"single": {"p50_ms": 0.81, "n": 10}}, "cold_start": {**cold, "wall_s": 0.59}}
    report = {"kinds": {"linear": kind, "static": static}}
    report["goals"] = run.goals(report)
    lines = {line.split(":")[0].split(None, 1)[1]: line.split()[0] for line in run.verdicts(report).splitlines()}
    assert lines["single-plot p50, in process, calibrated"] == "PASS"  # 0.3 <= 0.32
    assert lines["linear cold start (import + load + first answer)"] == "FAIL"  # 0.41 > 0.4
    assert lines["static (default kind) single-plot p50, calibrated"] == "FAIL"  # 0.81 > 0.8
    assert lines["static cold start (import + load + first answer)"] == "PASS"  # 0.59 <= 0.6
    assert "import 0.200 s, load 0.100 s" in next(g["note"] for g in report["goals"] if g["goal"].startswith("linear cold"))


@pytest.fixture(scope="module")
def smoke(dev_zip, testing_zip, tmp_path_factory):
    """``python benchmarks/run.py --smoke``, once for the module; its JSON report."""
    need(HAVE_WRK or not in_ci(), WRK_MISSING)  # on a user's machine: the smoke run without its HTTP part
    folder = tmp_path_factory.mktemp("bench")
    command = [sys.executable, str(RUN), "--smoke", "--data", str(dev_zip), "--testing", str(testing_zip),
               "--json", str(folder / "report.json"), "--work-dir", str(folder / "work")]  # fmt: skip
    if not HAVE_WRK:
        command.append("--no-http")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "| goal |" in done.stdout and ("\nPASS " in done.stdout or "\nFAIL " in done.stdout)
    return json.loads((folder / "report.json").read_text())


@pytest.mark.benchmark
def test_smoke_run_measures_every_kind(smoke):
    kinds = smoke["kinds"]
    assert set(kinds) >= {"linear", "linear (pipeline)", "static", "seed", "hybrid"}
    linear = kinds["linear"]
    assert linear["training"]["rows"] == 600 and linear["training"]["peak_rss_bytes"] > 50e6
    assert {"model.skops", "model.json", "fast.npz"} <= set(linear["artifact"]["files"])
    assert 0 < linear["cold_start"]["in_process_s"] < linear["cold_start"]["wall_s"]
    assert linear["cold_start"]["fast"] and linear["inference"]["fast"]
    single = linear["inference"]["single"]
    assert single["n"] == 200 and 0 < single["p50_ms"] <= single["p99_ms"]
    for key in ("batch", "vectorizer", "two_processes", "two_threads"):
        assert linear["inference"][key]["plots_per_s"] > 0
    assert kinds["linear (pipeline)"]["inference"]["fast"] is False
    seed = kinds["seed"]
    assert seed["training"]["sample"] == 60 and not seed["inference"]["fast"]
    assert seed["inference"]["reload_per_request_s"] > 0
    static = kinds["static"]  # the default kind: compiled, like linear
    assert static["training"]["rows"] == 300 and static["cold_start"]["fast"] and static["inference"]["fast"]
    assert {"model.skops", "model.json", "fast.npz"} <= set(static["artifact"]["files"])
    hybrid = kinds["hybrid"]  # its directory carries its encoder
    assert hybrid["training"]["rows"] == 100 and "encoder/model.onnx" in hybrid["artifact"]["files"]
    assert hybrid["inference"]["batch"]["plots_per_s"] > 0


@pytest.mark.benchmark
def test_smoke_run_reports_each_goal_with_a_measurement(smoke):
    goals = {goal["goal"]: goal for goal in smoke["goals"]}
    expected = {
        "single-plot p50, in process, calibrated", "single plot vs the original loaded once",
        "the original reloading its model per request", "batch vs the vectorizer alone",
        "batch on both cores (2 forked processes)", "linear cold start (import + load + first answer)",
        "linear model artifact", "training time (linear)", "training peak memory",
        "static (default kind) single-plot p50, calibrated", "static cold start (import + load + first answer)",
    }  # fmt: skip
    assert expected <= set(goals)
    assert all(isinstance(goal["measured"], int | float) and math.isfinite(goal["measured"]) for goal in goals.values())
    assert smoke["machine"]["usable_cores"] >= 1 and len(smoke["load_average"]["end"]) == 3
    assert "| kind |" in smoke["tables"] and "Load average" in smoke["tables"]
    verdicts = load_run_module().verdicts(smoke).splitlines()
    assert len(verdicts) == len(smoke["goals"])
    assert all(line.split()[0] in {"PASS", "FAIL", "REPORT"} for line in verdicts)


@pytest.mark.benchmark
def test_smoke_run_serves_with_zero_errors(smoke):
    need(HAVE_WRK, f"{WRK_MISSING}: the HTTP part was not run")
    web = smoke["http"]
    for endpoint in ("healthz", "inference"):
        assert web[endpoint]["requests_per_s"] > 0
        assert web[endpoint]["errors"] == 0
        assert 0 < web[endpoint]["p50_ms"] <= web[endpoint]["p99_ms"]
    assert 0 < web["ratio"] < 2
    assert {"GET /inference vs GET /healthz (wrk)", "HTTP errors"} <= {goal["goal"] for goal in smoke["goals"]}


AB = REPO / "benchmarks" / "ab.py"
GIT_MISSING = "benchmarks/ab.py checks a version out with git: run the tests in a git clone with git installed"


def test_ab_times_two_versions_alternately_in_fresh_processes(small_model_dir, testing_zip):
    """``benchmarks/ab.py`` against this very commit: each pair runs both sides, the first side
    alternating, and the summary gives each side's medians."""
    need(shutil.which("git") and (REPO / ".git").exists(), GIT_MISSING)
    done = subprocess.run([sys.executable, str(AB), "HEAD", "--model", str(small_model_dir), "--testing",
                           str(testing_zip), "--pairs", "2", "--single", "30", "--cold-start"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    *runs, summary = map(json.loads, done.stdout.splitlines())
    assert [(run["pair"], run["side"]) for run in runs] == [
        (0, "this checkout"), (0, "HEAD"), (1, "HEAD"), (1, "this checkout")]
    assert all(run["p50_ms"] > 0 and 0 < run["cold_start_s"] < 60 for run in runs)
    assert summary["pairs"] == 2 and 0 <= summary["this checkout faster (p50), pairs"] <= 2
    for side in ("this checkout", "HEAD"):
        p50s = sorted(run["p50_ms"] for run in runs if run["side"] == side)
        assert summary[side]["p50_ms"] == pytest.approx(sum(p50s) / 2)
    worktrees = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True).stdout
    assert "moviegenre-ab-" not in worktrees  # its checkout is removed


def test_ab_names_a_revision_it_cannot_check_out(small_model_dir, testing_zip):
    need(shutil.which("git") and (REPO / ".git").exists(), GIT_MISSING)
    done = subprocess.run([sys.executable, str(AB), "no-such-revision", "--model", str(small_model_dir),
                           "--testing", str(testing_zip)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "ab.py: cannot check out 'no-such-revision'" in done.stderr and "Traceback" not in done.stderr
