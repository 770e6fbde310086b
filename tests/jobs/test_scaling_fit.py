"""The scaling-law fits: recovery, the held-out test, refusals, intervals, plateau, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jobs.scaling.config import ScalingConfig
from jobs.scaling.fit import FitError, Point, check_points, fit_scaling, main, tokens_label
from jobs.scaling.laws import POWER, RECTIFIED, bootstrap, fit_law, plateau_tokens

# Ten doublings from 1M tokens, like the paper's subsets one decade lower.
TOKENS = 1e6 * 2.0 ** np.arange(10)
# Rectified truth: beta 0.5, knee at 20M tokens, E = 20 %, 80 % before fine-tuning.
R_BETA, R_E, R_DL = 0.5, 20.0, 2e7**0.5
R_B = 60 * R_DL
# Power-law truth.
P_B, P_BETA, P_E = 3000.0, 0.4, 15.0


def rectified(d, b=R_B, beta=R_BETA, dl=R_DL, e=R_E):
    return b / (dl + np.asarray(d) ** beta) + e


def power(d, b=P_B, beta=P_BETA, e=P_E):
    return b / np.asarray(d) ** beta + e


def noisy(values, sigma=0.1, seed=0):
    return values + np.random.default_rng(seed).normal(0, sigma, len(values))


def points(tokens, values):
    return [Point(float(t), float(v)) for t, v in zip(tokens, values, strict=True)]


@pytest.fixture(scope="module")
def rectified_report():
    """Both laws on rectified-law points, largest held out, 100 bootstrap refits."""
    cfg = ScalingConfig(bootstrap=100, seed=1)
    return fit_scaling(points(TOKENS, noisy(rectified(TOKENS))), cfg).report


def test_power_law_parameters_are_recovered():
    fit = fit_law(POWER, TOKENS, noisy(power(TOKENS)))
    got = fit.raw_params()
    assert got["beta"] == pytest.approx(P_BETA, rel=0.10)
    assert got["E"] == pytest.approx(P_E, abs=1.0)
    assert got["B"] == pytest.approx(P_B, rel=0.5)  # B trades off against beta
    assert fit.rmse < 0.2


def test_rectified_law_parameters_are_recovered():
    fit = fit_law(RECTIFIED, TOKENS, noisy(rectified(TOKENS)))
    got = fit.raw_params()
    assert got["beta"] == pytest.approx(R_BETA, rel=0.10)
    assert got["E"] == pytest.approx(R_E, abs=3.0)
    assert got["D_l_tokens"] == pytest.approx(2e7, rel=0.25)  # the knee, in tokens
    assert got["L0"] == pytest.approx(80.0, abs=3.0)


def test_fit_is_the_same_in_any_token_unit():
    """D in tokens or in millions of tokens: same beta and E (conditioning in log space)."""
    values = noisy(rectified(TOKENS))
    in_tokens = fit_law(RECTIFIED, TOKENS, values).raw_params()
    in_millions = fit_law(RECTIFIED, TOKENS / 1e6, values).raw_params()
    assert in_millions["beta"] == pytest.approx(in_tokens["beta"], rel=1e-3)
    assert in_millions["E"] == pytest.approx(in_tokens["E"], abs=1e-2)


def test_rectified_law_wins_on_rectified_data(rectified_report):
    laws = rectified_report["laws"]
    assert rectified_report["best_law"]["law"] == "rectified"
    rect, powr = laws["rectified"]["heldout"], laws["power"]["heldout"]
    assert rect["tokens"] == TOKENS[-1]
    assert rect["abs_error"] < 0.5
    assert powr["abs_error"] > 3 * rect["abs_error"]


def test_power_law_is_not_worse_on_power_data():
    report = fit_scaling(points(TOKENS, noisy(power(TOKENS))), ScalingConfig(bootstrap=0)).report
    held = {name: law["heldout"]["abs_error"] for name, law in report["laws"].items()}
    assert held["power"] < 0.3
    assert held["power"] <= held["rectified"] + 0.05


def test_report_says_what_it_fitted(rectified_report):
    r = rectified_report
    assert r["metric"] == "error_rate" and r["num_points"] == 10
    assert r["summary"].startswith("Fitted error rate (%) against training tokens on 10 points")
    assert "Rectified law: fitted on 9 points, tested on the largest." in r["summary"]
    assert [p["role"] for p in r["points"]] == ["fit"] * 9 + ["heldout"]
    assert r["laws"]["rectified"]["num_fit_points"] == 9
    labels = [p["label"] for p in r["laws"]["power"]["predictions"]]
    assert labels == ["10B", "50B", "250B", "300B", "1T", "4T"]
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_bootstrap_intervals_contain_the_truth(rectified_report):
    params = rectified_report["laws"]["rectified"]["params"]
    for name, truth in (("beta", R_BETA), ("E", R_E), ("L0", 80.0)):
        lo, hi = params[name]["ci"]
        assert lo <= truth <= hi, (name, lo, hi)
        assert lo <= params[name]["value"] <= hi
    lo, hi = params["beta"]["ci"]
    assert hi - lo < 0.5 * R_BETA  # informative, not the whole bound range
    assert rectified_report["laws"]["rectified"]["bootstrap"]["succeeded"] >= 90


def test_bootstrap_needs_residual_degrees_of_freedom():
    exact = fit_law(POWER, TOKENS[:3], power(TOKENS[:3]))
    assert exact.dof == 0
    assert bootstrap(exact, TOKENS[:3], power(TOKENS[:3]), 50, 0) is None


def test_plateau_of_a_known_power_law():
    """gain(D) = B D^-beta (1 - 2^-beta) = g  <=>  D = (B (1 - 2^-beta) / g)^(1/beta)."""
    b, beta, gain = 3000.0, 0.4, 0.5
    expected = (b * (1 - 2**-beta) / gain) ** (1 / beta)
    got, note = plateau_tokens(lambda d: power(d, b, beta, 10.0), gain)
    assert note == "ok"
    assert got == pytest.approx(expected, rel=1e-6)


def test_plateau_of_a_rectified_law_lies_past_its_knee():
    got, _ = plateau_tokens(rectified, 0.5)
    assert got > 2e7
    assert rectified(got) - rectified(2 * got) == pytest.approx(0.5, abs=1e-6)


def test_plateau_is_none_when_no_doubling_gains_enough():
    got, note = plateau_tokens(lambda d: power(d, 1.0, 0.4, 10.0), 5.0)
    assert got is None and "no doubling" in note


@pytest.mark.parametrize(
    ("tokens", "values", "message"),
    [
        ([], [], "no points"),
        ([1e6, 2e6, 4e6, 8e6], [50, math.nan, 40, 35], "non-finite"),
        ([1e6, 2e6, math.inf, 8e6], [50, 45, 40, 35], "non-finite"),
        ([1e6, 0, 4e6, 8e6], [50, 45, 40, 35], "must be positive"),
        ([1e6, 2e6, 4e6, 8e6], [150, 45, 40, 35], "percentage"),
        ([1e6, 2e6, 4e6, 8e6], [50, 45, 40, -1], "percentage"),
        ([1e6, 1e6, 2e6, 2e6], [50, 49, 45, 44], "distinct token counts"),
        ([1e6, 2e6, 4e6, 8e6], [30, 35, 40, 45], "does not go down"),
        ([1e6, 2e6, 4e6, 8e6], [40, 40, 40, 40], "does not go down"),
        ([1e6, 2e6, 4e6, 8e6], [40, 30, 35, 41], "does not go down"),
    ],
)
def test_degenerate_points_are_refused(tokens, values, message):
    with pytest.raises(FitError, match=message):
        check_points(np.array(tokens, float), np.array(values, float), "error_rate")


def test_loss_may_exceed_100_but_not_go_negative():
    check_points(np.array([1e6, 2e6, 4e6]), np.array([300.0, 200, 150]), "heldout_loss")
    with pytest.raises(FitError, match="cannot be negative"):
        check_points(np.array([1e6, 2e6, 4e6]), np.array([3.0, 2, -1]), "heldout_loss")


def test_a_law_with_more_parameters_than_points_is_refused():
    with pytest.raises(FitError, match="rectified law has 4 parameters but only 3"):
        fit_law(RECTIFIED, TOKENS[:3], rectified(TOKENS[:3]))
    report = fit_scaling(points(TOKENS[:3], rectified(TOKENS[:3])), ScalingConfig(bootstrap=0))
    laws = report.report["laws"]
    assert laws["rectified"]["status"] == "refused"
    assert "needs at least 4" in laws["rectified"]["reason"]
    assert laws["power"]["status"] == "ok" and laws["power"]["heldout"] is None
    assert report.report["best_law"]["law"] is None
    # no law could be tested, so no point is shown as held out
    assert [p["role"] for p in report.report["points"]] == ["fit"] * 3
    assert "Power law: fitted on every point" in report.report["summary"]
    assert "Rectified law: not fitted" in report.report["summary"]


def test_tokens_label():
    assert [tokens_label(t) for t in (2.5e11, 1e12, 4e12, 6e7, 3e15)] == [
        "250B",
        "1T",
        "4T",
        "60M",
        "3e+15",
    ]


# -- the CLI ---------------------------------------------------------------------------------

SEVEN = 6e7 * 2.0 ** np.arange(7)


def _write_points(path, fmt):
    values = noisy(rectified(SEVEN, dl=4e8**0.5, b=60 * 4e8**0.5), sigma=0.2)
    rows = [
        {"tokens": float(t), "error": round(float(v), 3)}
        for t, v in zip(SEVEN, values, strict=True)
    ]
    if fmt == "csv":
        lines = ["tokens,error"] + [f"{r['tokens']:.0f},{r['error']}" for r in rows]
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text(json.dumps({"points": rows}))


@pytest.mark.parametrize(("fmt", "name"), [("csv", "runs.csv"), ("json_obj", "runs.json")])
def test_fit_cli_writes_report_next_to_the_input(tmp_path, capsys, fmt, name):
    src = tmp_path / name
    _write_points(src, fmt)
    assert main([str(src), "--set", "scaling.bootstrap=20"]) == 0
    out = tmp_path / "runs_fit"
    assert {p.name for p in out.iterdir()} == {
        "report.json",
        "report.html",
        "fit.png",
        "_manifest.json",
        "_SUCCESS",
        "_commits",  # the commit fence's newest claim (jobs/commit.py)
    }
    report = json.loads((out / "report.json").read_text())
    assert report["num_points"] == 7 and report["best_law"]["law"] == "rectified"
    assert (out / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "tested on the largest" in html and "data:image/png;base64," in html
    assert capsys.readouterr().out.strip().endswith(f"report: file://{out}/report.html")


def test_fit_cli_json_list_with_out_and_metric(tmp_path):
    src = tmp_path / "p.json"
    _write_points(src, "json")
    out = tmp_path / "elsewhere"
    args = [str(src), "--out", str(out), "--metric", "heldout_loss", "--set", "scaling.bootstrap=0"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "heldout_loss" and "held-out loss" in report["summary"]
    assert (out / "_SUCCESS").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tokens,error\n1e6,30\n2e6,35\n4e6,40\n", "does not go down"),
        ("tokens,error\n1e6,30\n2e6,x\n", "error must be a number"),
        ("tokens,acc\n1e6,30\n", "no 'error'"),
    ],
)
def test_fit_cli_refuses_with_exit_code_2(tmp_path, capsys, body, message):
    src = tmp_path / "bad.csv"
    src.write_text(body)
    assert main([str(src)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad_fit").exists()
