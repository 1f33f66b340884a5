"""Gradio's per-session record, with each component's config made when first asked for.

Every event names a session, and a session Gradio has not seen gets a `SessionState`
(gradio.state_holder). Gradio 6 builds it with the config of every block of the page at once:
273 blocks here, about 30 ms of CPU on the server's event loop and 470 KB kept per session. An API
call that sends no session hash (`/gradio_api/call/<api>` from a script, each of benchmarks/load.py's
requests) is a new session each time, so 50 visitors calling back to back spent a fifth of the
server's CPU building configs nobody reads, on the thread every other request waits for, and kept
up to 10,000 of them (Gradio's session capacity: 4.7 GB).

The configs are read only when a handler updates a component (that one block's) and when a deep link
restores a session (all of them), so here they are made on first use instead: `LazySessionState` is
Gradio's class with `config_values` a dict that builds a block's config the first time it is read.
`install(demo)` puts it in place after checking, on the page itself, that a session's configs come out
equal to Gradio's own; on a Gradio whose SessionState differs it leaves Gradio's class and logs why.
"""
from __future__ import annotations

import logging

from gradio import state_holder

log = logging.getLogger("alexnet-explainer")

GradioSessionState = state_holder.SessionState      # Gradio's own class, kept for the check and for tests


class LazyConfigs(dict):
    """{block id: its config}, each made by `blocks_config.config_for_block` the first time it is read.

    Reading one key makes that block's; iterating (a deep link lists every component) makes them all first, in
    the page's order, as Gradio's eager dict has them.
    """

    def __init__(self, blocks_config, ids):
        super().__init__()
        self._config = blocks_config
        self._order = list(ids)                      # the page's order
        self._pending = dict.fromkeys(ids)           # ids whose config is not made yet
        self._in_order = False

    def _make(self, key) -> None:
        if key in self._pending:
            del self._pending[key]
            dict.__setitem__(self, key, self._config.config_for_block(key, [], self._config.blocks[key]))

    def _make_all(self) -> None:
        if self._in_order:
            return
        for key in list(self._pending):
            self._make(key)
        # made as read: put them back in the page's order (keys Gradio added later go last, as in its dict)
        first = set(self._order)
        items = [(k, dict.__getitem__(self, k)) for k in self._order if dict.__contains__(self, k)]
        items += [(k, v) for k, v in dict.items(self) if k not in first]
        dict.clear(self)
        dict.update(self, items)
        self._in_order = True

    def __getitem__(self, key):
        self._make(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key, value) -> None:
        self._pending.pop(key, None)                 # set by Gradio: the pending one is stale
        dict.__setitem__(self, key, value)

    def __contains__(self, key) -> bool:
        return key in self._pending or dict.__contains__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def __iter__(self):
        self._make_all()
        return dict.__iter__(self)

    def keys(self):
        self._make_all()
        return dict.keys(self)

    def values(self):
        self._make_all()
        return dict.values(self)

    def items(self):
        self._make_all()
        return dict.items(self)

    def __eq__(self, other) -> bool:
        self._make_all()
        return dict.__eq__(self, other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"LazyConfigs({dict.__len__(self)} made, {len(self._pending)} pending)"


class _NoBlocksYet:
    """What Gradio's SessionState.__init__ reads of the Blocks, with no block to configure: it sets up
    everything else (the session's BlocksConfig copy, state, time-to-live) exactly as Gradio does."""

    def __init__(self, blocks):
        self.default_config = blocks.default_config
        self.blocks = {}


class LazySessionState(GradioSessionState):
    """Gradio's SessionState whose `config_values` are made on first use (see the module docstring)."""

    def __init__(self, blocks):
        super().__init__(_NoBlocksYet(blocks))
        self.config_values = LazyConfigs(self.blocks_config,
                                         [k for k in self.blocks_config.blocks if k in blocks.blocks])


def install(demo) -> bool:
    """Make Gradio build sessions as LazySessionState, if on this Gradio and this page they are Gradio's own
    sessions to the last config. Returns whether it did."""
    try:
        ours, theirs = LazySessionState(demo), GradioSessionState(demo)
        same = (ours.config_values == theirs.config_values and
                set(vars(ours)) == set(vars(theirs)) and ours.STATE_TTL_WHEN_CLOSED == theirs.STATE_TTL_WHEN_CLOSED)
    except Exception:  # noqa: BLE001 - a Gradio whose SessionState works otherwise: keep its own, say why
        log.warning("Gradio's sessions keep their eager configs (this Gradio's SessionState differs)", exc_info=True)
        return False
    if not same:
        log.warning("Gradio's sessions keep their eager configs (a lazy session's configs differ on this Gradio)")
        return False
    state_holder.SessionState = LazySessionState
    return True
