"""The input contract (moviegenre.core.items): one verdict on a hostile item at every door.

The same item goes to the library (``predict_proba``), the CLI (``moviegenre predict``), batch
scoring (``moviegenre score``, where it becomes a reject) and the HTTP API (``POST
/v1/predict`` and ``GET /inference``); each must refuse it, for the same reason, naming the
field in its own terms.
"""

from __future__ import annotations

import csv
import json
import math
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import E1_PLOT
from moviegenre.api.app import create_app
from moviegenre.cli import app as cli_app
from moviegenre.core.errors import DataError, InvalidItem
from moviegenre.core.items import check_item, to_columns, to_frame
from moviegenre.core.settings import Settings

runner = CliRunner()

#: (field, value, the reason every door gives, HTTP status). ``None`` where a CSV file cannot
#: carry the value (a lone surrogate is not UTF-8).
HOSTILE = [
    ("plot", "", "is blank", 422),
    ("plot", "  \n\t ", "is blank", 422),
    ("plot", "\ufeff", "holds no letter or digit", 422),
    ("plot", "\u200b\u200d\u200b", "holds no letter or digit", 422),
    ("plot", "... !!! ??? -- ***", "holds no letter or digit", 422),
    ("plot", "a cowboy \ud800 rides", "holds a lone surrogate (U+D800) at character 9", 422),
    ("plot", "x" * 20_001, "has 20,001 characters; the limit is 20,000", 413),
    ("title", "West \udc80", "holds a lone surrogate (U+DC80) at character 5", 422),
    ("title", "t" * 1_001, "has 1,001 characters; the limit is 1,000", 422),
    ("year", 3000, "must be a year between 1800 and 2200 or empty, got 3000", 422),
]
IDS = ["empty", "whitespace", "bom", "zero-width", "punctuation", "surrogate", "too-long",
       "title-surrogate", "title-too-long", "year-out-of-range"]  # fmt: skip


def item_with(field: str, value) -> dict:
    return {"plot": E1_PLOT, "title": "Message in a Bottle", field: value}


def can_be_written_as_utf8(value) -> bool:
    return not isinstance(value, str) or not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


@pytest.fixture(scope="module")
def client(small_model):
    settings = Settings(model="unused", api_key=None)
    with TestClient(create_app(small_model, settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(("field", "value", "reason", "status"), HOSTILE, ids=IDS)
def test_the_library_refuses_it_naming_item_and_field(small_model, field, value, reason, status):
    with pytest.raises(InvalidItem) as caught:
        small_model.predict_proba([{"plot": "a valid plot"}, item_with(field, value)])
    assert str(caught.value).startswith(f"item 1: field '{field}' {reason}")
    assert (caught.value.index, caught.value.field) == (1, field)
    assert (caught.value.code == "plot_too_long") == (status == 413)


@pytest.mark.parametrize(("field", "value", "reason", "status"), HOSTILE, ids=IDS)
def test_the_api_refuses_it_with_the_same_reason(client, field, value, reason, status):
    # json.dumps escapes a lone surrogate as \udXXX, as any JSON client may send it.
    body = json.dumps({"items": [{"id": "tt1", **item_with(field, value)}]})
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    if field != "plot" and message.startswith(f"items[0].{field}: "):
        # Worded by the schema's validation (pydantic), which states the bounds of the title
        # and the year, and reads JSON text before the contract sees it.
        return
    else:
        assert message.startswith(f"items[0].{field} (id 'tt1') {reason}"), message


@pytest.mark.parametrize(
    ("field", "value", "reason", "status"), [case for case in HOSTILE if case[0] == "plot"], ids=IDS[:7]
)
def test_get_inference_refuses_the_same_plots(client, field, value, reason, status):
    # A lone surrogate goes encoded in UTF-8 (ED A0 80), which the server reads as a JSON body's
    # bytes are read: as the surrogate, so that the contract refuses it by name.
    query = urllib.parse.quote(value.encode("utf-8", "surrogatepass"), safe="")
    response = client.get(f"/inference?plot={query}")
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"].startswith(f"query parameter 'plot' {reason}")


@pytest.mark.parametrize(
    ("field", "value", "reason", "status"), [case for case in HOSTILE if case[0] != "year"], ids=IDS[:9]
)
def test_the_cli_refuses_it_before_loading_the_model(tmp_path, field, value, reason, status):
    title = ["--title", value] if field == "title" else []
    plot = value if field == "plot" else E1_PLOT
    result = runner.invoke(cli_app, ["predict", "--model", str(tmp_path / "no-model"), *title, "--", plot])
    assert result.exit_code == 2, result.output
    assert " ".join(result.stderr.split()).startswith(f"error: field '{field}' {reason}"), result.stderr


def test_batch_scoring_lists_each_as_a_reject_with_the_same_reason(small_model_dir, tmp_path):
    cases = [(field, value, reason) for field, value, reason, _ in HOSTILE if can_be_written_as_utf8(value)]
    rows = [{"id": "good", "plot": E1_PLOT, "title": "", "year": ""}]
    rows += [{"id": f"bad{i}", "plot": E1_PLOT, "title": "", "year": "", **{field: value}}
             for i, (field, value, _) in enumerate(cases)]  # fmt: skip
    source = tmp_path / "movies.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    result = runner.invoke(cli_app, ["score", "--model", str(small_model_dir), str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out, dtype={"ID": str})["ID"].tolist() == ["good"]
    with open(out.with_name("scores.rejects.csv"), newline="", encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert [r["ID"] for r in rejects] == [f"bad{i}" for i in range(len(cases))]
    for reject, (field, _, reason) in zip(rejects, cases, strict=True):
        assert reject["reason"].startswith(f"field '{field}' {reason}"), reject


# --- what is valid ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plot",
    ["a", "7", "ǅ", "هذا فيلم", "映画", "²", "\ufeffA plot after a byte order mark", "  x  ", "🤠 a cowboy 🐎"],
)
def test_any_text_with_a_letter_or_digit_is_a_plot(plot):
    assert check_item(plot, 0) == (plot, "", pytest.approx(math.nan, nan_ok=True))


@pytest.mark.parametrize(("year", "expected"), [(1999, 1999.0), ("1978", 1978.0), (" 2001 ", 2001.0), (1850.0, 1850.0),
                                                (None, math.nan), ("", math.nan), (float("nan"), math.nan)])  # fmt: skip
def test_years_as_numbers_or_text(year, expected):
    _, _, value = check_item({"plot": "a plot", "year": year}, 0)
    assert value == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize("year", [True, "nineteen", 1799, [1999]])
def test_other_years_are_refused(year):
    with pytest.raises(InvalidItem, match="item 0: field 'year'"):
        check_item({"plot": "a plot", "year": year}, 0)


def test_a_frame_is_checked_like_records():
    frame = pd.DataFrame({"plot": ["a plot", "..."], "title": ["T", None]}, index=["m1", "m2"])
    with pytest.raises(InvalidItem, match="item 1: field 'plot' holds no letter or digit"):
        to_columns(frame)
    with pytest.raises(DataError, match="no 'plot' column"):
        to_columns(pd.DataFrame({"text": ["a plot"]}))
    valid = to_frame(frame.iloc[:1])
    assert valid.index.tolist() == ["m1"] and np.isnan(valid["year"].iloc[0])


def test_the_year_reaches_the_model_through_the_api(client, small_model):
    item = {"id": "tt1", "plot": E1_PLOT, "title": "Message in a Bottle"}
    answers = [client.post("/v1/predict", json={"items": [{**item, "year": year}]}) for year in (None, 1999, 1925)]
    probabilities = [np.array(list(a.json()["predictions"][0]["probabilities"].values())) for a in answers]
    expected = small_model.predict_proba([{**item, "year": 1925}])[0]
    np.testing.assert_allclose(probabilities[2], expected, atol=1e-12)
    assert not np.allclose(probabilities[1], probabilities[2])  # the decade is a feature
