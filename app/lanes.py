"""Two compute lanes, so a one-pass request never waits behind a 32-pass one.

    cheap: classify, saliency, Grad-CAM, guided backprop   one forward, at most one backward (~30-80 ms)
    slow:  IG, SmoothGrad, occlusion, the comparison grid,  16 to ~1,000 passes (1-20 s)
           the checks

- Separate workers: each lane has its own threads, so a visitor's saliency request is never in
  a queue behind someone's Integrated Gradients.
- Separate models: the slow lane works on a private copy of the model (app.compute's replica), so
  neither lane waits for the other's lock (Captum's Grad-CAM and Guided Backprop hook the model
  they run on, so each model serves one pass at a time).
- Priority on the cores: before each forward pass of slow work (`pausable`) and each training
  step, the caller waits while cheap work is in flight, at most `max_wait_s` per pass so it is never
  starved; a pass that goes on beside cheap work uses one core, and only one such pass runs at a time
  (the slow lane's or the trainer's, not both), so visitors keep most of the machine. A pass is the
  unit: IG's 32 steps go through the network as batches of 8 (viz.attribution), each one a point
  where cheap requests get the CPU back.
- Torch's thread count is per thread for threads already running, but `torch.set_num_threads` also
  sets the count every thread started later begins with. So a one-core pass puts the full count
  back as soon as it ends, and every thread that runs the network starts with `all_cores()`: the
  pools' and batchers' threads here, and the trainer's (`Lanes.thread`). This module is the one place
  that sets thread counts. (It pays: benchmarks/results/load_one_core_fallback.json, 50 visitors,
  cheap requests' p95 3-12% lower with the one-core rule than without, in both of two pairs.)
- Batching (`Batcher`): cheap requests that wait together share one pass. A batch of 8 costs
  about half as much per image as 8 single passes on a CPU (33 against 58 ms per image for a
  forward and backward of the paper model on 2 cores).

A Gradio handler hands its work to a lane and waits; the work runs in the handler's context, so
gr.Progress still reaches the visitor's page. Memory stays bounded: at most `cheap_workers`, one
per batcher and one slow pass run at once whatever the number of visitors (two batches of at most
8 images); the rest wait as queued function calls.
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import nn

from alexnet.errors import UserError
from viz.methods import CHEAP, SLOW, is_cheap

CORES = torch.get_num_threads()          # intra-op threads torch uses at start-up (honours OMP_NUM_THREADS)


class Busy(UserError):
    """Too many many-pass requests are already waiting: this one is refused at once, with a sentence,
    instead of waiting until the visitor's browser (or API client) gives up."""

    def __init__(self, waiting: int):
        self.waiting = waiting
        super().__init__(f"The server is busy: {waiting} slow maps (Integrated Gradients, SmoothGrad, occlusion, "
                         "comparisons) are already waiting. Try again in a minute, or choose a one-pass method "
                         "(saliency, Grad-CAM, guided backprop), which answers at once.")


class ShuttingDown(RuntimeError):
    """The server is stopping: queued work is dropped and running slow work stops at its next pass."""

    def __init__(self):
        super().__init__("The server is shutting down; please try again in a moment.")


def all_cores() -> None:
    """Give the calling thread torch's start-up thread count (a thread started while a slow pass ran on
    one core begins with one)."""
    if torch.get_num_threads() != CORES:
        torch.set_num_threads(CORES)


def lane_of(method: str) -> str:
    """The lane an attribution method belongs in: its record's cost (viz.methods; classify is always cheap)."""
    return CHEAP if is_cheap(method) else SLOW


class Lanes:
    """Worker pools per lane; `run(lane, fn, ...)` runs fn there and returns (or raises) what it does."""

    def __init__(self, cheap_workers: int = 2, max_wait_s: float = 3.0, max_slow: int = 8):
        # Two cheap workers: while one runs its pass under the model's lock, the other decodes the next
        # upload and draws the last overlay (PIL and numpy work outside the lock).
        self._pools = {lane: ThreadPoolExecutor(n, thread_name_prefix=f"lane-{lane}", initializer=all_cores)
                       for lane, n in ((CHEAP, cheap_workers), (SLOW, 1))}
        self._batchers: list[Batcher] = []
        self.max_wait_s = max_wait_s
        # Slow work admitted at once (running + queued): at 2-8 s each on 2 cores, the eighth waits ~15-60 s;
        # more would wait past what a visitor (or the API's 180 s client timeout) will.
        self.max_slow = max_slow
        self._slow = 0
        self._cheap_in_flight = 0
        self._closing = False
        self._idle = threading.Condition()
        self._paused: weakref.WeakSet[nn.Module] = weakref.WeakSet()
        self._beside = threading.Semaphore(1)    # one background pass beside cheap work at a time
        self._holds = threading.local()           # .token: this thread holds it

    @contextlib.contextmanager
    def cheap_work(self):
        """Marks cheap work in flight: slow passes wait for it to end (see `pausable`)."""
        with self._idle:
            self._cheap_in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._cheap_in_flight -= 1
                if self._cheap_in_flight == 0:
                    self._idle.notify_all()

    def submit(self, lane: str, fn, /, *args, **kwargs) -> Future:
        ctx = contextvars.copy_context()          # Gradio's request and progress context travel with the call
        if self._closing:                         # work that reaches the lanes after shutdown hears why
            raise ShuttingDown()
        try:
            return self._pools[lane].submit(ctx.run, fn, *args, **kwargs)
        except RuntimeError as e:                 # "cannot schedule new futures after shutdown": a race with it
            raise ShuttingDown() from e

    def admits(self) -> None:
        """Raise Busy if a visitor's slow work would be refused now (run() checks again when it is handed over)."""
        with self._idle:
            self._refuse_if_full()

    def _refuse_if_full(self) -> None:
        """The admission rule, under self._idle: at most `max_slow` slow calls in flight."""
        if self._slow >= self.max_slow:
            raise Busy(self._slow)

    def run(self, lane: str, fn, /, *args, admit: bool = True, **kwargs):
        """fn(*args) in `lane`. Slow work beyond `max_slow` in flight is refused (Busy) unless `admit` is False:
        the app's own jobs (the views after a training run) queue whatever visitors have asked for."""
        if lane != CHEAP:
            with self._idle:
                if admit:
                    self._refuse_if_full()
                self._slow += 1
            try:
                return self.submit(lane, self._slow_job, fn, *args, **kwargs).result()
            finally:
                with self._idle:
                    self._slow -= 1
        with self.cheap_work():
            return self.submit(lane, fn, *args, **kwargs).result()

    def _slow_job(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:                                  # whatever happened to its passes
            self._pass_ended()

    def yield_to_cheap(self) -> None:
        """Wait (at most max_wait_s) until no cheap work is in flight. A pass that must go on beside cheap work
        anyway runs on one core, and only one such pass at a time (the slow lane's or the trainer's, not both),
        leaving the rest of the machine to the visitors' cheap passes. Never call it from cheap work."""
        self._release_beside()                    # the caller's previous pass (a training step) is over
        with self._idle:
            idle = self._idle.wait_for(lambda: self._cheap_in_flight == 0 or self._closing, timeout=self.max_wait_s)
            if self._closing:
                raise ShuttingDown()
        if idle:
            all_cores()
            return
        # bounded too: a pass that cannot have the token within max_wait_s goes on (nothing starves)
        if self._beside.acquire(timeout=self.max_wait_s):
            self._holds.token = True
        torch.set_num_threads(1)

    def _release_beside(self) -> None:
        """Give back the one-pass-beside-cheap-work token if this thread holds it (its pass ended)."""
        if getattr(self._holds, "token", False):
            self._holds.token = False
            self._beside.release()

    def _pass_ended(self) -> None:
        self._release_beside()
        all_cores()

    def pausable(self, model: nn.Module) -> nn.Module:
        """Make every forward pass of `model` (the slow lane's copy) start with `yield_to_cheap` and end
        on all threads again."""
        if model not in self._paused:
            model.register_forward_pre_hook(lambda module, args: self.yield_to_cheap())
            # always_call: a pass that raises (a probe stopping at its layer, say) gives the count back too
            model.register_forward_hook(lambda module, args, out: self._pass_ended(), always_call=True)
            self._paused.add(model)
        return model

    def thread(self, target, name: str) -> threading.Thread:
        """Start a daemon thread that runs the network (the trainer's) with every core, whenever it starts."""
        def run():
            all_cores()
            try:
                target()
            finally:
                self._pass_ended()                # its last step's token, if it held it
        t = threading.Thread(target=run, daemon=True, name=name)
        t.start()
        return t

    def own(self, batcher: Batcher) -> None:
        """Batchers are closed with the lanes."""
        self._batchers.append(batcher)

    def shutdown(self, wait: bool = False) -> None:
        """Drop queued work; running slow work stops at its next pass (ShuttingDown). `wait`: return once
        it has (main() waits, so no pass writes into the scratch folder while it is being removed)."""
        with self._idle:
            self._closing = True
            self._idle.notify_all()
        for batcher in self._batchers:
            batcher.close()
        for pool in self._pools.values():
            pool.shutdown(wait=wait, cancel_futures=True)


class Batcher:
    """Cheap requests that wait together are answered by one call: `fn(items) -> results` in order.

    One thread per batcher serves its queue: it takes the oldest request's key and every waiting
    item with that key (the same model and kind of pass), up to `max_batch`, and answers them all
    with one call. A lone request runs at once, without waiting for company; requests that
    arrive while a batch runs form the next one. Each batcher has its own thread, so a burst of
    one kind (maps) never queues another (top-5) behind it.
    """

    def __init__(self, lanes: Lanes, fn, max_batch: int = 8, name: str = "batch"):
        self.lanes, self.fn, self.max_batch = lanes, fn, max_batch
        self._waiting: deque[tuple[object, object, Future]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"lane-cheap-{name}", daemon=True)
        self._thread.start()
        lanes.own(self)

    def __call__(self, key, item):
        answer: Future = Future()
        with self.lanes.cheap_work():
            with self._changed:
                if self._closed:
                    raise ShuttingDown()
                self._waiting.append((key, item, answer))
                self._changed.notify()
            return answer.result()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        all_cores()
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._closed)
                if not self._waiting:                  # closed and nothing left to answer
                    return
                key = self._waiting[0][0]
                batch = [w for w in self._waiting if w[0] == key][:self.max_batch]
                for w in batch:
                    self._waiting.remove(w)
            try:
                results = list(self.fn([item for _, item, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"a batched pass gave {len(results)} results for {len(batch)} requests")
            except BaseException as e:               # every request of the batch hears of it; none waits forever
                for _, _, answer in batch:
                    answer.set_exception(e)
                continue
            for (_, _, answer), result in zip(batch, results):
                answer.set_result(result)
