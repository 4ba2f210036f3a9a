"""train.cpu_threads null does not oversubscribe a busy CPU: with every usable core kept busy
by other processes, training takes one torch thread (2 threads on 2 busy cores trained 7x
slower than 1; bench/threads.py measures it); a number given is taken as it is.

What counts as other work is what runs outside this process's family: a busy child (a flow's
temporary Prefect server) or parent (dvc, the nlpflow CLI) is nlpflow's own, so `nlpflow run`
and `dvc repro` choose alike; NLPFLOW_CPU_THREADS fixes the count (the count decides a model's
last bits: two trainings on 1 and on 2 threads end apart).

    .venv/bin/python -m pytest tests/model/test_cpu_threads.py -q
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import torch

from nlpflow.errors import ParamsError
from nlpflow.training.families.transformer import set_cpu_threads
from nlpflow.training.threads import busy_elsewhere, choose_threads, cpu_use, usable_cores

pytestmark = pytest.mark.subprocess

# The hog starts a spinning grandchild and exits: the spinner is reparented, so it belongs to
# no family of this process, as another user's job would not.
ORPHAN_SPINNER = (
    "import subprocess, sys\n"
    "p = subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True,\n"
    "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(p.pid)\n"
)


def _spin() -> None:
    while True:
        pass


@pytest.fixture
def every_core_busy() -> Iterator[int]:
    """As many spinning processes as usable cores, none of them in this process's family."""
    cores = usable_cores()
    pids = []
    for _ in range(cores):
        done = subprocess.run(
            [sys.executable, "-c", ORPHAN_SPINNER], capture_output=True, text=True, check=True
        )
        pids.append(int(done.stdout.strip()))
    time.sleep(1.0)  # the spinners are running
    try:
        yield cores
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def busy_child() -> Iterator[None]:
    """A child of this process spinning one core, as a flow's Prefect server answering."""
    hog = mp.get_context("spawn").Process(target=_spin, daemon=True)
    hog.start()
    time.sleep(1.5)  # the spawned interpreter is up and spinning
    try:
        yield
    finally:
        hog.terminate()
        hog.join()


@pytest.fixture(autouse=True)
def _threads_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NLPFLOW_CPU_THREADS", raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_with_every_core_busy_elsewhere_training_takes_one_thread(every_core_busy: int) -> None:
    if every_core_busy < 2:
        pytest.skip("one usable core: one thread whatever the load")
    assert busy_elsewhere() >= every_core_busy - 0.5  # the spinners are seen as others' work
    set_cpu_threads(None)
    assert torch.get_num_threads() == 1


def test_a_thread_count_given_is_taken_as_it_is(every_core_busy: int) -> None:
    set_cpu_threads(every_core_busy + 1)
    assert torch.get_num_threads() == every_core_busy + 1


def test_a_busy_child_of_this_process_is_not_other_work(busy_child: None) -> None:
    """The CPU a child spends is nlpflow's own (a flow's Prefect server), not a reason for
    fewer threads: its spinning core is counted as this family's, whatever else runs."""
    total, own = cpu_use()
    assert own >= 0.8 and total >= own - 0.1


def test_nlpflow_cpu_threads_fixes_the_count(
    every_core_busy: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NLPFLOW_CPU_THREADS", str(every_core_busy + 2))
    assert choose_threads(None) == (every_core_busy + 2, "NLPFLOW_CPU_THREADS")
    assert choose_threads(1) == (1, "train.cpu_threads")  # params still win
    for wrong in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("NLPFLOW_CPU_THREADS", wrong)
        with pytest.raises(ParamsError, match=r"NLPFLOW_CPU_THREADS=.*whole number of 1 or more"):
            choose_threads(None)
