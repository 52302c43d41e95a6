import gc
import weakref

import pytest

from mlpipe.collector import YOUNGEST_GENERATION_THRESHOLD, settle_parsed_workflow


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Cycle:
    def __init__(self):
        self.me = self


def test_what_exists_is_frozen_and_the_youngest_generation_waits_longer(restored_collector):
    alive = [Cycle() for _ in range(10)]
    settle_parsed_workflow()
    assert gc.get_freeze_count() >= len(alive)
    assert gc.get_threshold()[0] == YOUNGEST_GENERATION_THRESHOLD


def test_garbage_cycles_of_the_parse_and_after_it_are_still_freed(restored_collector):
    gc.disable()  # no collection but the ones under test
    try:
        parse_garbage = weakref.ref(Cycle())
        assert parse_garbage() is not None
        settle_parsed_workflow()
        assert parse_garbage() is None  # freed, not frozen
        later_garbage = weakref.ref(Cycle())
        gc.collect()
        assert later_garbage() is None
    finally:
        gc.enable()
