"""The maths of control-metric rules and the checks of mao-metrics.json (no I/O beyond tmp files)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from mao.models import ChangeRule, MetricRule, RangeRule, StepIn
from mao.quality import MAX_FILE_BYTES, InvalidReport, _take, check_change, check_metric, check_range, parse_metrics


def test_change_is_checked_against_the_mean_of_the_last_window_values():
    rule = ChangeRule(max_pct=6, window=2)
    assert check_change(106, [90, 100, 100], rule) is None  # 6% exactly is allowed
    why = check_change(107, [90, 100, 100], rule)
    assert why == "107 is 7.0% off the mean 100 of the last 2 (max 6%)"
    # only the last two count: 90 is out of the window
    assert check_change(100, [0, 98, 102], rule) is None
    # a drop counts as much as a rise
    assert "50.0% off the mean 100" in check_change(50, [100, 100], rule)


def test_fewer_earlier_values_than_the_window_are_not_checked():
    rule = ChangeRule(max_pct=6, window=3)
    assert check_change(1000, [], rule) is None
    assert check_change(1000, [1, 1], rule) is None
    assert check_change(1000, [1, 1, 1], rule) is not None


def test_a_zero_mean_allows_only_zero():
    rule = ChangeRule(max_pct=6, window=2)
    assert check_change(0, [5, -5], rule) is None
    assert check_change(0.001, [0, 0], rule) == "0.001 against a mean of 0 over the last 2 (max change 6%)"


def test_a_negative_mean_uses_its_magnitude():
    rule = ChangeRule(max_pct=10, window=1)
    assert check_change(-21, [-20], rule) is None  # 5%
    assert "50.0% off the mean -20" in check_change(-10, [-20], rule)


def test_range_bounds_are_inclusive_and_either_may_be_left_out():
    both = RangeRule(min=-50, max=60)
    assert check_range(-50, both) is None and check_range(60, both) is None
    assert check_range(60.5, both) == "60.5 is above the maximum 60"
    assert check_range(-51, both) == "-51 is below the minimum -50"
    assert check_range(-1e9, RangeRule(max=0)) is None
    assert check_range(1e9, RangeRule(min=0)) is None


def test_a_metric_rule_reports_every_broken_check():
    rule = MetricRule(change=ChangeRule(max_pct=6, window=2), range=RangeRule(max=60))
    assert [kind for kind, _ in check_metric(70, [50, 50], rule)] == ["range", "change"]
    assert check_metric(51, [50, 50], rule) == []


@pytest.mark.parametrize(
    "metrics, message",
    [
        ({"rows": {}}, "needs change, range or both"),
        ({"rows": {"range": {}}}, "needs min, max or both"),
        ({"rows": {"range": {"min": 5, "max": 1}}}, "min 5 is above max 1"),
        ({"rows": {"change": {"max_pct": 0}}}, "greater than 0"),
        ({"rows": {"change": {"max_pct": 5, "window": 0}}}, "greater than or equal to 1"),
        ({"rows": {"change": {"max_pct": 5, "window": 101}}}, "less than or equal to 100"),
        ({"rows": {"range": {"max": float("inf")}}}, "finite number"),
        ({"bad name": {"range": {"max": 1}}}, "pattern"),
        ({"rows": {"range": {"max": 1}, "spike": {}}}, "Extra inputs"),
        ({f"m{i}": {"range": {"max": 1}} for i in range(101)}, "at most 100"),
    ],
)
def test_step_rules_are_bounded(metrics, message):
    with pytest.raises(ValidationError, match=message):
        StepIn.model_validate({"name": "s", "tool": "t", "output_dataset": "d", "metrics": metrics})


def test_a_step_without_rules_keeps_its_definition():
    step = StepIn.model_validate({"name": "s", "tool": "t", "output_dataset": "d"})
    assert "metrics" not in step.model_dump(exclude_none=True)
    ruled = StepIn.model_validate(
        {"name": "s", "tool": "t", "output_dataset": "d", "metrics": {"rows": {"change": {"max_pct": 6}}}}
    )
    assert ruled.model_dump(exclude_none=True)["metrics"] == {"rows": {"change": {"max_pct": 6.0, "window": 2}}}


def test_metrics_file_values():
    assert parse_metrics(b'{"rows": 12, "temperature": -3.5}') == {"rows": 12.0, "temperature": -3.5}
    assert parse_metrics(b"{}") == {}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"rows=12", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a list"),
        (b'{"rows": "12"}', 'metric rows is "12", not a finite number'),
        (b'{"rows": true}', "metric rows is true, not a finite number"),
        (b'{"rows": NaN}', "not JSON"),
        (b'{"rows": 1e999}', "a number is inf, not a finite number"),
        (b'{"../x": 1}', "invalid metric name '../x'"),
        (json.dumps({f"m{i}": i for i in range(101)}).encode(), "101 metrics, over the limit of 100"),
    ],
)
def test_invalid_metrics_files_say_why(data, message):
    with pytest.raises(InvalidReport, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_metrics(data)


def test_take_reads_and_removes_the_file(tmp_path):
    path = tmp_path / "mao-metrics.json"
    path.write_text('{"a": 1}')
    assert _take(path) == b'{"a": 1}'
    assert not path.exists()
    assert _take(path) is None


def test_take_refuses_large_files_symlinks_and_directories_and_removes_them(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    with pytest.raises(InvalidReport, match="over the limit"):
        _take(big)
    assert not big.exists()

    secret = tmp_path / "secret.txt"
    secret.write_text('{"stolen": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(secret)
    with pytest.raises(InvalidReport, match="not a regular file"):
        _take(link)
    assert not link.exists() and not link.is_symlink() and secret.exists()

    folder = tmp_path / "folder.json"
    (folder / "inner").mkdir(parents=True)
    with pytest.raises(InvalidReport, match="not a regular file"):
        _take(folder)
    assert not folder.exists()
