"""Progress lines: done of total, rate, time left; quiet for stages that end quickly."""

from __future__ import annotations

import logging

from nc2ice.logs import Progress


def test_progress_says_done_of_total_rate_and_time_left(caplog):
    caplog.set_level(logging.INFO, logger="nc2ice")
    progress = Progress("demo: files compared", 10, every=0.0)
    progress.advance(4)
    assert "demo: files compared 4 of 10 (" in caplog.text
    assert "/s, about" in caplog.text and "left)" in caplog.text


def test_a_quick_stage_stays_quiet(caplog):
    caplog.set_level(logging.INFO, logger="nc2ice")
    progress = Progress("demo: files compared", 3, every=10.0)
    for _ in range(3):
        progress.advance()
    assert caplog.text == ""
