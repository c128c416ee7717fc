"""Packaging: the declared MIT license ships, py.typed ships, one version source."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path

import akd

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_license_file_is_the_declared_mit():
    cfg = _setup_cfg()
    assert cfg["metadata"]["license"] == "MIT" and cfg["metadata"]["license_files"].strip() == "LICENSE"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "akd contributors" in text and "WITHOUT WARRANTY OF ANY KIND" in text


def test_py_typed_ships():
    assert (ROOT / "akd" / "py.typed").is_file()
    assert "py.typed" in _setup_cfg()["options.package_data"]["akd"]


def test_one_version_source():
    assert _setup_cfg()["metadata"]["version"].strip() == "attr: akd.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", akd.__version__)
    assert importlib.metadata.version("akd") == akd.__version__  # the installed metadata agrees
    assert not re.search(r"version\s*=\s*['\"]?\d", (ROOT / "pyproject.toml").read_text())
