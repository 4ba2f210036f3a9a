"""train.cpu_threads null does not oversubscribe a busy CPU: with every usable core kept busy
by other processes, training takes one torch thread (2 threads on 2 busy cores trained 7x
slower than 1; bench/threads.py measures it); a number given is taken as it is.

    .venv/bin/python -m pytest tests/model/test_cpu_threads.py -q
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator

import pytest
import torch

from nlpflow.training.families.transformer import set_cpu_threads
from nlpflow.training.threads import busy_elsewhere, usable_cores

pytestmark = pytest.mark.subprocess


def _spin() -> None:
    while True:
        pass


@pytest.fixture
def every_core_busy() -> Iterator[int]:
    cores = usable_cores()
    hogs = [mp.get_context("spawn").Process(target=_spin, daemon=True) for _ in range(cores)]
    for hog in hogs:
        hog.start()
    time.sleep(1.5)  # spawned interpreters are up and spinning
    try:
        yield cores
    finally:
        for hog in hogs:
            hog.terminate()
            hog.join()


@pytest.fixture(autouse=True)
def _threads_restored() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_with_every_core_busy_elsewhere_training_takes_one_thread(every_core_busy: int) -> None:
    if every_core_busy < 2:
        pytest.skip("one usable core: one thread whatever the load")
    assert busy_elsewhere() >= every_core_busy - 0.5  # the hogs are seen as others' work
    set_cpu_threads(None)
    assert torch.get_num_threads() == 1


def test_a_thread_count_given_is_taken_as_it_is(every_core_busy: int) -> None:
    set_cpu_threads(every_core_busy + 1)
    assert torch.get_num_threads() == every_core_busy + 1
