"""The Classify tab's example photos: held-out flowers shipped with their credits, and how they are picked."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from PIL import Image

from alexnet.compact import SHIPPED
from alexnet.errors import UserError
from app import examples as E

SIDECAR = json.loads(SHIPPED.with_suffix(".json").read_text())


def test_one_shipped_flower_per_class_none_of_them_trained_on():
    shipped = E.flower_examples()
    assert [e.label for e in shipped] == SIDECAR["classes"]
    rows = json.loads(E.INDEX.read_text())["photos"]
    for e, row in zip(shipped, rows):
        assert row["source"] in SIDECAR["held_out_files"], row      # the model never saw it in training
        assert row["source"].startswith(f"{e.label}/")
        with Image.open(e.path) as im:
            im.load()
            assert im.mode == "RGB" and min(im.size) >= 227, (e.path, im.size)
        assert " - https://www.flickr.com/photos/" in e.credit, e.credit
    line = E.credits_line(shipped)
    assert line.startswith("Flower photos CC-BY 2.0: ")
    assert all(e.credit.split(" - ")[0] in line for e in shipped)


def test_shipped_examples_are_exactly_what_the_command_picks_from_the_real_photos(flowers_dir, tmp_path):
    rows = E.pick(flowers_dir, SIDECAR)
    E.write(rows, flowers_dir, tmp_path)
    assert json.loads((tmp_path / "examples.json").read_text()) == json.loads(E.INDEX.read_text())
    for r in rows:
        assert (tmp_path / r["file"]).read_bytes() == (E.FOLDER / r["file"]).read_bytes() \
            == (flowers_dir / r["source"]).read_bytes()                # copied unchanged


def _folder(root: Path, names: dict[str, list[str]], credited: set[str]) -> Path:
    for cls, files in names.items():
        (root / cls).mkdir(parents=True)
        for i, f in enumerate(files):
            Image.new("RGB", (256, 256), (40 * i, 100, 200)).save(root / cls / f)
    (root / "LICENSE.txt").write_text("All images ... CC-BY.\n\n" + "".join(
        f"{f} CC-BY by Someone {i} - https://www.flickr.com/photos/x/{i}/\n" for i, f in enumerate(sorted(credited))))
    return root


def test_pick_takes_the_first_held_out_file_of_each_class_by_name(tmp_path):
    data = _folder(tmp_path / "d", {"a": ["3.jpg", "1.jpg", "2.jpg"], "b": ["9.jpg", "8.jpg"]},
                   credited={"a/2.jpg", "a/3.jpg", "b/8.jpg", "b/9.jpg"})
    sidecar = {"classes": ["a", "b"], "held_out_files": ["a/3.jpg", "b/9.jpg", "a/2.jpg", "b/8.jpg"]}
    rows = E.pick(data, sidecar)                  # a/1.jpg is first by name but was trained on
    assert [(r["class"], r["source"], r["file"]) for r in rows] == [("a", "a/2.jpg", "a_2.jpg"), ("b", "b/8.jpg", "b_8.jpg")]
    assert rows[0]["credit"].startswith("Someone ") and rows[0]["credit"] != rows[1]["credit"]
    out = tmp_path / "out"
    E.write(rows, data, out)
    assert (out / "a_2.jpg").read_bytes() == (data / "a" / "2.jpg").read_bytes()
    assert stat.S_IMODE((out / "a_2.jpg").stat().st_mode) & 0o044 == 0o044    # readable by others, like any file
    assert json.loads((out / "examples.json").read_text())["photos"] == rows
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("sidecar, credited, says", [
    ({"classes": ["a", "b"], "held_out_files": ["a/1.jpg"]}, {"a/1.jpg"}, "no held-out photo of 'b'"),
    ({"classes": ["a"], "held_out_files": ["a/7.jpg"]}, {"a/7.jpg"}, "a/7.jpg is missing"),
    ({"classes": ["a"], "held_out_files": ["a/1.jpg"]}, set(), "no credit for a/1.jpg"),
])
def test_pick_refuses_what_cannot_be_shipped_with_a_sentence(tmp_path, sidecar, credited, says):
    data = _folder(tmp_path / "d", {"a": ["1.jpg"], "b": ["1.jpg"]}, credited)
    with pytest.raises(UserError, match=says):
        E.pick(data, sidecar)


def test_the_command_explains_itself_and_names_a_bad_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        E.main(["--help"])
    assert e.value.code == 0 and "held-out photo per class" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is missing: point --data at the folder the model was trained on"):
        E.main(["--data", str(tmp_path)])
    assert json.loads(E.INDEX.read_text())["photos"]                  # the shipped index is untouched
