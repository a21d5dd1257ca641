"""The goal rule of ``bench/drift.py`` (issue: delay no worse than the best peer at equal or fewer
false alarms on every case, strictly better on average), on hand-made reports."""

from __future__ import annotations

from typing import Any

from bench.drift import driftscope_leads, summarise

HORIZON = 100


def case(delay: float | None, rate: float = 1.0) -> dict[str, Any]:
    return {"median_delay": delay, "detection_rate": rate}


def report(own: list[dict[str, Any]], own_fa: float, **peers: tuple[list[dict[str, Any]], float]) -> dict[str, Any]:
    methods = {name: {"shifts": cases, "false_alarms_per_10k": fa, "us_per_image": 1.0}
               for name, (cases, fa) in peers.items()}
    return {"shifts": own, "false_alarms_per_10k": own_fa, "us_per_image": 1.0, "horizon": HORIZON,
            "peers": {"methods": methods}}


def test_no_peer_means_no_claim() -> None:
    assert driftscope_leads(report([case(3)], 0.0)) is None


def test_earlier_everywhere_at_equal_false_alarms_leads() -> None:
    assert driftscope_leads(report([case(3), case(5)], 0.0, peer=([case(4), case(5)], 0.0))) is True


def test_later_on_one_case_does_not_lead_even_if_better_on_average() -> None:
    assert driftscope_leads(report([case(2), case(9)], 0.0, peer=([case(20), case(8)], 0.0))) is False


def test_equal_everywhere_is_not_strictly_better() -> None:
    assert driftscope_leads(report([case(3), case(5)], 0.0, peer=([case(3), case(5)], 0.0))) is False


def test_a_peer_with_more_false_alarms_is_not_a_rival() -> None:
    assert driftscope_leads(report([case(10)], 0.0, noisy=([case(2)], 12.0))) is True


def test_a_partial_detection_counts_as_the_horizon() -> None:
    assert driftscope_leads(report([case(40, rate=0.8)], 0.0, peer=([case(60)], 0.0))) is False
    assert driftscope_leads(report([case(40)], 0.0, peer=([case(30, rate=0.8)], 0.0))) is True


def test_summary_has_one_row_per_method() -> None:
    summary = summarise(report([case(3), case(None, rate=0.0)], 0.0, peer=([case(4), case(6)], 2.0)))
    assert summary["driftscope"] == {"detection_rate": 0.5, "median_delay": 3.0, "false_alarms_per_10k": 0.0,
                                     "us_per_image": 1.0}
    assert summary["peer"]["median_delay"] == 5.0
