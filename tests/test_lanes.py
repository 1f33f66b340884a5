"""app.lanes: cheap work never waits behind slow work, slow passes give way, waiting requests share a batch."""
from __future__ import annotations

import contextvars
import threading
import time

import pytest
import torch
from torch import nn

from app.lanes import CHEAP, CORES, SLOW, Batcher, Lanes, ShuttingDown, all_cores, lane_of


@pytest.fixture
def lanes():
    lanes = Lanes(cheap_workers=2, max_wait_s=5.0)
    yield lanes
    lanes.shutdown()


def test_methods_are_sorted_into_lanes():
    assert {m for m in ("saliency", "gradcam", "guided_backprop") if lane_of(m) == CHEAP} == {
        "saliency", "gradcam", "guided_backprop"}
    assert {lane_of(m) for m in ("integrated_gradients", "smoothgrad", "occlusion")} == {SLOW}


def test_cheap_work_does_not_wait_for_busy_slow_lane(lanes):
    release = threading.Event()
    slow = threading.Thread(target=lanes.run, args=(SLOW, release.wait, 10.0))
    slow.start()
    time.sleep(0.05)                                   # the slow lane's only worker is now busy
    t0 = time.perf_counter()
    assert lanes.run(CHEAP, lambda: 41 + 1) == 42
    assert time.perf_counter() - t0 < 0.5
    release.set()
    slow.join(5)


def test_slow_passes_wait_while_cheap_work_is_in_flight(lanes):
    model = lanes.pausable(nn.Linear(2, 2))
    events: list[str] = []
    cheap_started, finish_cheap = threading.Event(), threading.Event()

    def cheap():
        cheap_started.set()
        finish_cheap.wait(5)
        events.append("cheap done")

    worker = threading.Thread(target=lanes.run, args=(CHEAP, cheap))
    worker.start()
    cheap_started.wait(5)
    slow = threading.Thread(target=lambda: lanes.run(SLOW, lambda: (model(torch.zeros(1, 2)), events.append("slow pass"))))
    slow.start()
    time.sleep(0.3)
    assert events == []                                # the slow pass is held at its forward
    finish_cheap.set()
    worker.join(5)
    slow.join(5)
    assert events == ["cheap done", "slow pass"]


def test_a_slow_pass_is_never_starved_longer_than_max_wait():
    lanes = Lanes(max_wait_s=0.2)
    try:
        model = lanes.pausable(nn.Linear(2, 2))
        with lanes.cheap_work():                        # cheap work "in flight" for the whole test
            t0 = time.perf_counter()
            lanes.run(SLOW, model, torch.zeros(1, 2))
            waited = time.perf_counter() - t0
        assert 0.15 < waited < 2.0
    finally:
        lanes.shutdown()


def test_pausable_registers_its_hook_once(lanes):
    model = nn.Linear(2, 2)
    lanes.pausable(model)
    lanes.pausable(model)
    assert len(model._forward_pre_hooks) == 1


def test_work_runs_in_the_callers_context(lanes):
    """gr.Progress and gr.Request live in context variables: they must reach the lane's thread."""
    var = contextvars.ContextVar("visitor")
    var.set("visitor-7")
    assert lanes.run(SLOW, var.get) == "visitor-7"
    assert lanes.run(CHEAP, var.get) == "visitor-7"


def test_errors_reach_the_caller(lanes):
    with pytest.raises(ZeroDivisionError):
        lanes.run(CHEAP, lambda: 1 / 0)


def test_requests_waiting_together_share_one_batch(lanes):
    calls: list[list[int]] = []
    gate = threading.Event()

    def square(items):
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(5)                                # the first batch is slow: others queue behind it
        return [i * i for i in items]

    batcher = Batcher(lanes, square, max_batch=4)
    results: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, batcher("k", i))) for i in range(9)]
    threads[0].start()
    time.sleep(0.2)
    for t in threads[1:]:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join(5)
    assert results == {i: i * i for i in range(9)}      # every caller got its own answer
    assert calls[0] == [0]                             # a lone request ran alone, without waiting for company
    assert max(len(c) for c in calls) == 4             # the crowd went 4 at a time
    assert sorted(i for c in calls for i in c) == list(range(9))
    assert len(calls) < 9


def test_a_batch_never_mixes_keys(lanes):
    seen: list[set] = []
    gate = threading.Event()

    def tag(items):
        seen.append({k for k, _ in items})
        gate.wait(5)
        return [v for _, v in items]

    batcher = Batcher(lanes, tag)
    threads = [threading.Thread(target=lambda k=k, v=v: batcher(k, (k, v))) for v in range(3) for k in ("a", "b")]
    for t in threads:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join(5)
    assert all(len(keys) == 1 for keys in seen), seen


def test_a_failing_batch_fails_each_of_its_requests(lanes):
    def boom(items):
        raise ValueError("bad batch")

    batcher = Batcher(lanes, boom)
    with pytest.raises(ValueError, match="bad batch"):
        batcher("k", 1)


def test_a_slow_pass_beside_cheap_work_uses_one_core_and_all_of_them_alone():
    lanes = Lanes(max_wait_s=0.05)
    try:
        seen = []
        model = lanes.pausable(nn.Linear(2, 2))
        model.register_forward_pre_hook(lambda m, a: seen.append(torch.get_num_threads()))   # after pausable's
        with lanes.cheap_work():
            lanes.run(SLOW, model, torch.zeros(1, 2))
        lanes.run(SLOW, model, torch.zeros(1, 2))
        assert seen == [1, CORES]
    finally:
        lanes.shutdown()


def _threads_in_a_new_thread(before=lambda: None) -> int:
    out = []

    def probe():
        before()
        torch.ones(2).add_(1)                          # the first op: torch gives the thread its count here
        out.append(torch.get_num_threads())
    t = threading.Thread(target=probe)
    t.start()
    t.join(10)
    return out[0]


@pytest.mark.skipif(CORES < 2, reason="one core: nothing to give back")
def test_a_one_core_pass_leaves_no_thread_on_one_core():
    """torch.set_num_threads also sets what every later thread starts with: a one-core pass must put the
    full count back when it ends, and a thread started during one gets it back from all_cores()."""
    lanes = Lanes(max_wait_s=0.05)
    try:
        during = []
        model = lanes.pausable(nn.Linear(2, 2))
        probe = model.register_forward_pre_hook(lambda m, a: during.extend(
            [_threads_in_a_new_thread(), _threads_in_a_new_thread(all_cores)]))
        with lanes.cheap_work():
            lanes.run(SLOW, model, torch.zeros(1, 2))
        assert during == [1, CORES]                    # started mid-pass: one core, until all_cores() on entry
        assert _threads_in_a_new_thread() == CORES     # started after the pass: all of them
        probe.remove()                                 # (its all_cores() set the count for everyone)
        between = []

        class Fails(nn.Module):                        # stops mid-pass, as feature visualisation's probe does
            def forward(self, x):
                raise ValueError("mid-pass")
        fails = lanes.pausable(Fails())

        def passes(x):                                 # IG's batches: the count comes back after each pass
            model(x)
            between.append(_threads_in_a_new_thread())
            with pytest.raises(ValueError, match="mid-pass"):
                fails(x)
            between.append(_threads_in_a_new_thread())
            model(x)
        with lanes.cheap_work():
            lanes.run(SLOW, passes, torch.zeros(1, 2))
        assert between == [CORES, CORES]
        with lanes.cheap_work(), pytest.raises(ValueError, match="mid-pass"):
            lanes.run(SLOW, fails, torch.zeros(1, 2))
        assert _threads_in_a_new_thread() == CORES
    finally:
        lanes.shutdown()


def test_a_batch_function_that_drops_results_fails_its_requests_instead_of_hanging(lanes):
    batcher = Batcher(lanes, lambda items: [])
    with pytest.raises(RuntimeError, match="0 results for 1 requests"):
        batcher("k", 1)


def test_shutdown_stops_running_slow_work_at_its_next_pass_and_drops_the_queue():
    lanes = Lanes(max_wait_s=5.0)
    model = lanes.pausable(nn.Linear(2, 2))
    batcher = Batcher(lanes, lambda items: items)
    passes, outcome, started = [], {}, threading.Event()

    def job(x):                                        # a long slow request: 1,000 passes, 10 ms apart
        for i in range(1000):
            model(x)
            passes.append(i)
            started.set()
            time.sleep(0.01)

    def visitor(name):
        try:
            lanes.run(SLOW, job, torch.zeros(1, 2))
            outcome[name] = "finished"
        except Exception as e:                         # noqa: BLE001 - the test records what each visitor saw
            outcome[name] = type(e).__name__

    threads = [threading.Thread(target=visitor, args=(n,)) for n in ("running", "queued")]
    threads[0].start()
    assert started.wait(5)
    threads[1].start()
    time.sleep(0.1)
    lanes.shutdown(wait=True)
    for t in threads:
        t.join(5)
    assert outcome == {"running": "ShuttingDown", "queued": "CancelledError"}
    assert len(passes) < 1000
    with pytest.raises(ShuttingDown):                  # and a batcher refuses new work with the same sentence
        batcher("k", 1)
    for lane in (CHEAP, SLOW):                         # so do both lanes: never "cannot schedule new futures"
        with pytest.raises(ShuttingDown, match="shutting down"):
            lanes.run(lane, lambda: None)


def test_slow_work_beyond_the_bound_is_refused_at_once_with_a_sentence():
    """A many-pass request that would queue behind `max_slow` others hears why now, not after a timeout."""
    from app.lanes import Busy
    lanes = Lanes(max_slow=2)
    release = threading.Event()
    try:
        running = [threading.Thread(target=lanes.run, args=(SLOW, release.wait, 5)) for _ in range(2)]
        for t in running:
            t.start()
        deadline = time.time() + 5
        while lanes._slow < 2 and time.time() < deadline:
            time.sleep(0.01)
        t0 = time.perf_counter()
        with pytest.raises(Busy, match="busy: 2 slow maps.*one-pass method"):
            lanes.run(SLOW, lambda: "never")
        assert time.perf_counter() - t0 < 0.5                      # refused at once
        assert lanes.run(CHEAP, lambda: "cheap still runs") == "cheap still runs"
        jobs = []                                                   # the app's own job queues instead
        job = threading.Thread(target=lambda: jobs.append(lanes.run(SLOW, lambda: "job ran", admit=False)))
        job.start()
        release.set()
        job.join(5)
        assert jobs == ["job ran"]
        for t in running:
            t.join(5)
        assert lanes.run(SLOW, lambda: "admitted again") == "admitted again"   # the bound counts what is in flight
    finally:
        release.set()
        lanes.shutdown()


@pytest.mark.skipif(CORES < 2, reason="one core: nothing to give back")
def test_a_thread_the_lanes_start_during_a_one_core_pass_gets_every_core():
    """The trainer's thread is started by app.lanes (Lanes.thread), the one place thread counts are set."""
    lanes = Lanes(max_wait_s=0.05)
    try:
        got = []
        model = lanes.pausable(nn.Linear(2, 2))

        def start_one(m, a):                           # inside a pass that runs on one core
            done = threading.Event()

            def probe():
                torch.ones(2).add_(1)
                got.append(torch.get_num_threads())
                done.set()
            lanes.thread(probe, name="probe")
            done.wait(10)
        model.register_forward_pre_hook(start_one)
        with lanes.cheap_work():
            lanes.run(SLOW, model, torch.zeros(1, 2))
        assert got == [CORES]
    finally:
        lanes.shutdown()


def test_only_one_background_pass_at_a_time_runs_beside_cheap_work():
    """The slow lane's passes and the trainer's steps share one token while visitors' cheap work is in flight:
    two background threads never run a pass beside it at once (each pass still runs: nothing starves)."""
    lanes = Lanes(max_wait_s=0.2)
    active, peak, done = [0], [0], []
    count = threading.Lock()

    def background(name):
        for _ in range(3):
            lanes.yield_to_cheap()                 # beside cheap work: one core, and the token
            with count:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.1)                        # the pass
            with count:
                active[0] -= 1
        lanes._pass_ended()
        done.append(name)

    try:
        with lanes.cheap_work():
            threads = [threading.Thread(target=background, args=(n,)) for n in ("slow lane", "trainer")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
        assert sorted(done) == ["slow lane", "trainer"] and peak[0] == 1
        assert torch.get_num_threads() == CORES
    finally:
        lanes.shutdown()
