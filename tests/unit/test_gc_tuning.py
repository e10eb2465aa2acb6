"""The operator's cycle-collector settings (operator.py, issue #13): a larger young generation,
and the start-up's world frozen out of the collector once the caches are synced."""

from __future__ import annotations

import gc
import weakref

from vaultbridge import operator


def test_the_young_generation_is_larger_and_the_others_stay_cpythons() -> None:
    before = gc.get_threshold()
    try:
        operator._tune_gc()
        assert gc.get_threshold() == (10_000, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def test_start_up_objects_leave_the_collector_and_start_up_garbage_does_not() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    kept, cycle_a, cycle_b = Node(), Node(), Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    garbage = weakref.ref(cycle_a)
    del cycle_a, cycle_b  # unreachable, held only by their cycle
    gc.disable()  # no collection between here and the freeze but the one under test
    try:
        assert garbage() is not None
        operator._freeze_start_up()
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())  # frozen: out of every generation
        assert garbage() is None  # collected first, not frozen with the rest
    finally:
        gc.unfreeze()
        gc.enable()
