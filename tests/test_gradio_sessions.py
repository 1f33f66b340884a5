"""A Gradio session's component configs are made when read (app.gradio_sessions), and equal Gradio's own.

Gradio 6 built all 273 configs for every new session: each API call without a session hash paid ~30 ms on the
server's event loop and kept ~470 KB (seen in a py-spy profile of benchmarks/load.py's 50 visitors)."""
from __future__ import annotations

import tracemalloc

import gradio as gr
import pytest
from gradio import state_holder

from app import gradio_sessions as S


@pytest.fixture(scope="module")
def demo(built_page):
    return built_page.demo


def test_the_page_installs_it(demo):
    assert state_holder.SessionState is S.LazySessionState
    assert S.install(demo) is True                     # the check at install passes on this Gradio, this page


def test_a_new_session_makes_no_config_until_one_is_read(demo):
    s = S.LazySessionState(demo)
    n = len(demo.blocks)
    assert dict.__len__(s.config_values) == 0 and len(s.config_values) == n
    key = next(iter(demo.blocks))
    assert key in s.config_values
    one = s.config_values[key]
    assert one == S.GradioSessionState(demo).config_values[key]
    assert dict.__len__(s.config_values) == 1           # only the block read was made
    assert s.config_values.get(-1) is None and -1 not in s.config_values


def test_every_config_equals_gradios_own_after_the_same_updates(demo):
    ours, theirs = S.LazySessionState(demo), S.GradioSessionState(demo)
    markdown = next(k for k, b in demo.blocks.items() if isinstance(b, gr.Markdown))
    dropdown = next(k for k, b in demo.blocks.items() if isinstance(b, gr.Dropdown))
    state = next(k for k, b in demo.blocks.items() if isinstance(b, gr.State))
    for s in (ours, theirs):                           # what Gradio does when a handler updates components
        s[markdown] = gr.Markdown("changed by a handler", elem_id="changed")
        s._update_value_in_config(dropdown, "tulips")
        s[state] = {"photo": "x.jpg"}
        s._update_config(markdown)
    assert ours.config_values[markdown]["props"]["value"] == "changed by a handler"
    assert ours.config_values[dropdown]["props"]["value"] == "tulips"
    assert ours[state] == {"photo": "x.jpg"}
    assert dict(ours.config_values.items()) == theirs.config_values      # a deep link lists them all
    assert list(ours.components) == list(theirs.components)


def test_a_session_costs_a_fraction_of_gradios(demo):
    def kept_per_session(cls) -> float:
        tracemalloc.start()
        try:
            sessions = [cls(demo) for _ in range(10)]
            return tracemalloc.get_traced_memory()[0] / len(sessions)
        finally:
            tracemalloc.stop()
    lazy, eager = kept_per_session(S.LazySessionState), kept_per_session(S.GradioSessionState)
    assert lazy < eager / 5, (lazy, eager)


def test_a_gradio_whose_sessions_differ_keeps_its_own(demo, monkeypatch, caplog):
    monkeypatch.setattr(state_holder, "SessionState", S.GradioSessionState)

    def broken(self, blocks):                          # a future Gradio reading more of the Blocks than we give
        raise AttributeError("'_NoBlocksYet' object has no attribute 'renderables'")
    monkeypatch.setattr(S.LazySessionState, "__init__", broken)
    assert S.install(demo) is False
    assert state_holder.SessionState is S.GradioSessionState
    assert "keep their eager configs" in caplog.text


def test_calls_without_a_session_and_a_deep_link_over_http(app_server):
    """API calls with no session hash answer (each one a new session); a session's deep link still lists every
    component (LazyConfigs makes them all when iterated)."""
    httpx = pytest.importorskip("httpx")
    from conftest import held_out
    url = app_server["url"]
    with httpx.Client(timeout=120) as client:
        with open(held_out("roses"), "rb") as f:
            up = client.post(url + "gradio_api/upload", files={"files": ("rose.jpg", f.read(), "image/jpeg")})
        photo = {"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}
        info = client.get(url + "gradio_api/info").json()["named_endpoints"]["/classify"]
        data = [p.get("parameter_default") for p in info["parameters"]]
        data[0] = photo

        def call(**session) -> str:
            event = client.post(url + "gradio_api/call/classify", json={"data": data, **session}).json()["event_id"]
            return client.get(url + f"gradio_api/call/classify/{event}").text

        for _ in range(2):
            answer = call()
            assert "event: complete" in answer and "roses" in answer, answer[:300]
        assert "event: complete" in call(session_hash="deep-link-test")
        link = client.get(url + "gradio_api/deep_link", params={"session_hash": "deep-link-test"})
    link.raise_for_status()
    assert link.json() and "/" not in link.json()       # Gradio wrote every component's config under this name
