"""Progress of long work outside training (downloads, teacher-cache builds, evaluation): a refreshing bar on a
terminal, at most one line per stage otherwise, nothing under --quiet; always on stderr."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from akd.progress import Stage, display, display_on

from conftest import run_cli

SYN = "synthetic(n=96,test_n=32,classes=4,size=16,channels=1)"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stage_on_a_terminal_is_a_refreshing_bar_kept_when_done():
    t = Terminal()
    with Stage("akd: downloading x", 3 * 2**20, unit="MiB", scale=2**20, stream=t) as bar:
        for _ in range(3):
            bar.advance(2**20)
    out = t.getvalue()
    assert out.startswith("\rakd: downloading x ") and "100.0% 3/3 MiB" in out and out.endswith("\n")
    assert out.count("\n") == 1  # one line on the screen, redrawn in place


def test_transient_stage_erases_its_bar():
    t = Terminal()
    with Stage("evaluating 10 images", 10, stream=t, transient=True) as bar:
        bar.advance(10)
    out = t.getvalue()
    assert "evaluating 10 images 100.0%" in out and "\n" not in out and out.endswith("\r") and out.rstrip("\r").endswith(" ")


def test_stage_elsewhere_is_one_line_or_nothing():
    s = io.StringIO()
    with Stage("teacher cache: building 162 views x 96 images", 100, stream=s) as bar:
        for _ in range(100):
            bar.advance()
    assert s.getvalue() == "teacher cache: building 162 views x 96 images\n"
    s = io.StringIO()
    with Stage("evaluating", 100, stream=s, line=False) as bar:
        bar.advance(100)
    assert s.getvalue() == ""


@pytest.mark.parametrize("stream", [Terminal, io.StringIO])
def test_display_off_or_disabled_shows_nothing(stream):
    s = stream()
    with display(False):
        assert not display_on()
        with Stage("x", 10, stream=s) as bar:
            bar.advance(10)
    assert display_on()
    with Stage("y", 10, stream=s, enabled=False) as bar:
        bar.advance(10)
    assert s.getvalue() == ""


def test_delay_keeps_quick_stages_silent_and_unknown_size_is_the_line():
    t = Terminal()
    with Stage("evaluating", 10, stream=t, delay=60.0, line=False) as bar:
        bar.advance(10)
    assert t.getvalue() == ""
    with Stage("akd: downloading y", 0, stream=t):  # no Content-Length: no bar, the line
        pass
    assert t.getvalue() == "akd: downloading y\n"


# ------------------------------------------------------------------------------------------
# the stages themselves: download, teacher-cache build, evaluation
# ------------------------------------------------------------------------------------------
def _payload(tmp_path, size=3 * 2**20 + 5):
    import hashlib

    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return src, hashlib.md5(src.read_bytes()).hexdigest()


@pytest.mark.parametrize("tty", [True, False])
def test_download_shows_its_progress(tty, tmp_path, monkeypatch):
    from akd.data.base import download

    src, md5 = _payload(tmp_path)
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    dest = download(src.as_uri(), tmp_path / "out" / "data.bin", md5, how_to="-")
    assert dest.read_bytes() == src.read_bytes()
    title = f"akd: downloading {src.as_uri()} -> {dest}"
    if tty:
        assert err.getvalue().startswith("\r" + title) and "100.0% 3/3 MiB" in err.getvalue()
    else:
        assert err.getvalue() == title + "\n"
    err.truncate(0)
    err.seek(0)
    with display(False):  # --quiet
        download(src.as_uri(), tmp_path / "out2" / "data.bin", md5, how_to="-")
    assert err.getvalue() == ""


@pytest.mark.parametrize("tty", [True, False])
def test_teacher_cache_build_shows_its_progress(tty, monkeypatch):
    from akd.engine.teacher_cache import TeacherViewCache
    from akd.models import create_model

    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    teacher = create_model("cnn_tiny", num_classes=4, in_channels=1)
    x = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    kw = dict(pad=1, flip=True, mean=(0.5,), std=(0.5,), sources={"logits"}, device=torch.device("cpu"), batch_size=4)
    TeacherViewCache._compute(teacher, x, amp="off", channels_last=False, **kw)
    title = "teacher cache: building 18 views x 8 images"
    assert err.getvalue() == title + "\n" if not tty else (title in err.getvalue() and "100.0% 144/144 forwards" in err.getvalue())
    err.truncate(0)
    err.seek(0)
    TeacherViewCache._compute(teacher, x, amp="off", channels_last=False, progress=False, **kw)
    assert err.getvalue() == ""


def test_evaluation_bar_is_erased_and_quiet_is_silent(monkeypatch):
    import akd.engine.metrics as metrics
    from akd.models import create_model

    monkeypatch.setattr(metrics, "Stage", lambda *a, **kw: Stage(*a, **{**kw, "delay": 0.0}))  # as if it took long
    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    model = create_model("cnn_tiny", num_classes=4, in_channels=1)
    x, y = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8), torch.randint(0, 4, (64,))
    ev = metrics.evaluate(model, x, y, (0.5,), (0.5,), batch_size=16, device=torch.device("cpu"))
    assert 0 <= ev["top1"] <= 100
    assert "evaluating 64 images" in err.getvalue() and "100.0% 64/64 images" in err.getvalue() and err.getvalue().endswith("\r")
    err.truncate(0)
    err.seek(0)
    with display(False):
        metrics.evaluate(model, x, y, (0.5,), (0.5,), batch_size=16, device=torch.device("cpu"))
    assert err.getvalue() == ""


@pytest.mark.parametrize("quiet", [True, False])
def test_cli_quiet_reaches_the_stages(quiet, tmp_path, monkeypatch):
    """--quiet turns the stages off in the command's scope: the data check, the training loop's evaluations and the
    teacher-cache build (a Stage records whether it would show)."""
    import akd.engine.metrics as metrics
    import akd.engine.teacher_cache as tc

    seen: dict[str, list[bool]] = {"evaluate": [], "teacher cache": []}

    def recorder(where):
        def make(*a, **kw):
            st = Stage(*a, **{**kw, "stream": io.StringIO()})
            seen[where].append(st.on)
            return st
        return make

    monkeypatch.setattr(metrics, "Stage", recorder("evaluate"))
    monkeypatch.setattr(tc, "Stage", recorder("teacher cache"))
    tc.clear()
    args = ["run", "--method", "kd", "--teacher", "cnn_small", "--teacher-cache", "--dataset", SYN, "--student", "cnn_tiny",
            "--batch-size", "32", "--epochs", "1", "--out", str(tmp_path / "r")] + (["--quiet"] if quiet else [])
    code, _, err = run_cli(*args)
    tc.clear()
    assert code == 0, err
    assert seen["evaluate"] and seen["teacher cache"]
    assert set(seen["evaluate"]) == set(seen["teacher cache"]) == {not quiet}
