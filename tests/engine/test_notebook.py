"""lmcore.train(...): a run from a config or a string of text, with a progress bar nobody had to subscribe (tqdm's
where it is installed, else the CLI's line), and Trainer.from_text keeping the run folder self-contained."""
import sys
import types

import pytest

import lmcore
from engine_helpers import SAMPLE_CORPUS, tiny_config
from lmcore.config import RunConfig, save_config
from lmcore.errors import CorpusError
from lmcore.notebook import TqdmProgress, progress_bar
from lmcore.progress import ProgressBar
from lmcore.runs import RunFolder
from lmcore.trainer import Trainer

TEXT = SAMPLE_CORPUS.read_text(encoding="utf-8")[:20_000]


def short(config: RunConfig) -> RunConfig:
    config.train.max_steps, config.train.eval_interval = 12, 6
    return config


class FakeTqdm:
    """What lmcore uses of tqdm: a bar with total, initial, update, n, set_postfix_str, close; write()."""
    bars: list["FakeTqdm"] = []
    lines: list[str] = []

    def __init__(self, total, initial=0, **options):
        self.total, self.n, self.options, self.postfix, self.closed = total, initial, options, "", False
        FakeTqdm.bars.append(self)

    def update(self, n):
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def close(self):
        self.closed = True

    @classmethod
    def write(cls, text):
        cls.lines.append(text)


@pytest.fixture
def fake_tqdm(monkeypatch):
    FakeTqdm.bars, FakeTqdm.lines = [], []
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    return FakeTqdm


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # not importable, whether installed or not


def test_train_from_a_string_without_tqdm_shows_the_clis_progress_line(tmp_path, small_corpus, capsys, no_tqdm):
    config = short(tiny_config(small_corpus, tmp_path / "runs"))
    config.data.train = []  # the text is the corpus
    trainer = lmcore.train(config, text=TEXT)
    err = capsys.readouterr().err
    assert "12/12 loss" in err and "step 12: val loss" in err and "finished at step 12" in err
    folder = trainer.folder.path
    assert trainer.folder.read_status()["status"] == "finished"
    corpus = folder / "corpus.txt"
    assert corpus.read_text(encoding="utf-8") == TEXT  # the run folder holds what the run learned from
    assert RunFolder(folder).load_config().data.train == [str(corpus)]
    resumed = Trainer.resume(folder, ["train.max_steps=14"])  # and resumes from itself alone
    assert resumed.run() == "finished" and resumed.step == 14


def test_train_from_a_config_file_with_tqdm_draws_tqdms_bar(tmp_path, small_corpus, fake_tqdm):
    save_config(short(tiny_config(small_corpus, tmp_path / "runs")), tmp_path / "tiny.toml")
    trainer = lmcore.train(tmp_path / "tiny.toml")
    assert trainer.folder.read_status()["status"] == "finished"
    (bar,) = fake_tqdm.bars
    assert (bar.total, bar.n, bar.closed, bar.options["unit"]) == (12, 12, True, "step")
    assert bar.postfix.startswith("loss ") and "tok/s" in bar.postfix
    assert any(line.startswith("step 12: val loss") for line in fake_tqdm.lines)
    assert fake_tqdm.lines[-1].startswith("finished at step 12")


def test_the_progress_bar_is_tqdms_where_installed_else_the_clis(monkeypatch, fake_tqdm):
    assert isinstance(progress_bar(), TqdmProgress)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    bar = progress_bar()
    assert isinstance(bar, ProgressBar) and bar.overwrite is None  # a terminal decides for itself
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert progress_bar().overwrite is True  # a notebook's output understands a carriage return


def test_an_empty_text_is_refused_before_a_run_folder_is_made(tmp_path, small_corpus):
    with pytest.raises(CorpusError, match="empty"):
        Trainer.from_text(" \n", tiny_config(small_corpus, tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()
