"""Packaging: the engine installs without Qt, the version is written once, the cache follows the platform."""
import tomllib
from importlib.metadata import version
from pathlib import Path

import lmcore
from lmcore.corpus import default_cache_dir

PYPROJECT = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())


def test_the_engine_installs_without_qt_and_the_window_comes_with_the_gui_extra():
    project = PYPROJECT["project"]
    qt = ("pyside6", "pyqtgraph")
    assert not [d for d in project["dependencies"] if d.lower().startswith(qt)]
    assert sorted(d.split(">")[0].lower() for d in project["optional-dependencies"]["gui"]) == \
        ["pyqtgraph", "pyside6-essentials"]


def test_the_version_comes_from_the_package_metadata():
    assert lmcore.__version__ == version("lm-workbench") == PYPROJECT["project"]["version"]
    assert PYPROJECT["project"]["version"] not in Path(lmcore.__file__).read_text()  # written once, in pyproject


def test_the_cache_folder_follows_the_platform_unless_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv("LMCORE_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("LMCORE_CACHE_DIR")
    import platformdirs
    assert default_cache_dir() == Path(platformdirs.user_cache_dir("lm-workbench", appauthor=False))


def test_lmcore_ships_its_type_information():
    assert (Path(lmcore.__file__).parent / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["lmcore"]
