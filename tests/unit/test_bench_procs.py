"""bench/procs.py: what the bench reads of a measured process from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from bench.procs import usage


def test_usage_reads_cpu_memory_and_the_wait_for_a_core_of_a_live_process() -> None:
    before = usage(os.getpid())
    sum(i * i for i in range(200_000))  # some CPU of our own
    os.sched_yield()
    after = usage(os.getpid())
    assert after.cpu_seconds >= before.cpu_seconds
    assert 0 < after.rss_mib <= after.hwm_mib
    assert after.runqueue_wait_seconds >= before.runqueue_wait_seconds >= 0
    if Path("/proc/self/schedstat").exists():
        # Any process that has run a while has waited for a core at least once (each wake-up
        # takes some nanoseconds): a zero would mean the file was not read.
        assert after.runqueue_wait_seconds > 0
    assert after.preempted >= before.preempted >= 0
