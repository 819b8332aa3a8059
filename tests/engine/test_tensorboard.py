"""TensorBoard event files, read back with TensorBoard's own reader and compared with metrics.jsonl: written live
with train.tensorboard = true (scalars, hparams, text samples), or afterwards by `lmcore export tensorboard`."""
import math
import sys

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from engine_helpers import tiny_config  # noqa: E402
from lmcore import events as ev  # noqa: E402
from lmcore.cli import main  # noqa: E402
from lmcore.config import save_config  # noqa: E402
from lmcore.errors import ConfigError  # noqa: E402
from lmcore.metrics import read_metric_events  # noqa: E402
from lmcore.runs import list_runs  # noqa: E402
from lmcore.tensorboard import EVAL_TAGS, SAMPLE_TAG, STEP_TAGS, flat_config  # noqa: E402

TRAINED = ("train/loss", "train/lr", "train/grad_norm", "val/loss", "val/perplexity", "val/bits_per_char")


def train(tmp_path, corpus, name, *extra, **settings):
    """A tiny run through `lmcore train` (as the window starts one too); its folder."""
    config = tiny_config(corpus, tmp_path / "runs", max_steps=25, eval_interval=10, **settings)
    config.name = name
    save_config(config, tmp_path / f"{name}.toml")
    assert main(["train", str(tmp_path / f"{name}.toml"), "--quiet", *extra]) == 0
    return next(run.path for run in list_runs(tmp_path / "runs") if run.name.startswith(name))


def read_back(run_dir) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def scalars(accumulator, tag):
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


def assert_scalars_are_the_metrics(accumulator, run_dir):
    metrics = read_metric_events(run_dir / "metrics.jsonl")
    for kind, tags in ((ev.StepMetrics, STEP_TAGS), (ev.EvalMetrics, EVAL_TAGS)):
        for name, tag in tags.items():
            expected = [(e.step, getattr(e, name)) for e in metrics
                        if isinstance(e, kind) and getattr(e, name) is not None]
            if not expected:  # val_accuracy: a masked LM's alone
                assert tag not in accumulator.Tags()["scalars"], tag
                continue
            steps, values = zip(*scalars(accumulator, tag), strict=True)
            assert list(steps) == [step for step, _ in expected], tag
            assert list(values) == pytest.approx([value for _, value in expected], rel=1e-6), tag  # float32 there


def hparams(accumulator) -> dict:
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for key, value in start.hparams.items()}


def test_a_run_with_the_setting_writes_scalars_hparams_and_samples_as_its_metrics(tmp_path, small_corpus):
    run = train(tmp_path, small_corpus, "live", tensorboard=True)
    accumulator = read_back(run)
    assert_scalars_are_the_metrics(accumulator, run)
    evals = [e for e in read_metric_events(run / "metrics.jsonl") if isinstance(e, ev.EvalMetrics)]
    assert [e.step for e in evals] == [10, 20, 25]

    # the config as hparams, with the final results as their metrics
    config = tiny_config(small_corpus, tmp_path / "runs", max_steps=25, eval_interval=10, tensorboard=True)
    config.name = "live"
    written = hparams(accumulator)
    assert written.keys() == flat_config(config).keys()
    assert written["train.max_steps"] == 25 and written["model.family"] == "transformer"
    assert written["train.tensorboard"] == 1  # torch writes a bool as a number
    best = min(e.val_loss for e in evals)
    assert scalars(accumulator, "final/best_val_loss") == [(25, pytest.approx(best, rel=1e-6))]
    assert scalars(accumulator, "final/step") == [(25, 25.0)]

    # a sample of text at each evaluation: the periodic ones and the last step's
    samples = accumulator.Tensors(f"{SAMPLE_TAG}/text_summary")
    assert [s.step for s in samples] == [10, 20, 25]
    texts = [s.tensor_proto.string_val[0].decode("utf-8") for s in samples]
    assert all(len(text) > 100 and text.startswith("    ") for text in texts)

    # resumed and trained further: the same file set still reads as metrics.jsonl
    assert main(["train", "--resume", str(run), "--quiet", "--set", "train.max_steps=35"]) == 0
    accumulator = read_back(run)
    assert_scalars_are_the_metrics(accumulator, run)
    assert [s.step for s in accumulator.Tensors(f"{SAMPLE_TAG}/text_summary")] == [10, 20, 25, 30, 35]

    # export refuses to add to what the run wrote itself
    assert main(["export", "tensorboard", str(run)]) == 2


def test_export_of_a_run_trained_without_the_setting_gives_the_same_scalars(tmp_path, small_corpus, capsys):
    plain = train(tmp_path, small_corpus, "plain")
    assert not (plain / "tensorboard").exists()
    live = train(tmp_path, small_corpus, "live", tensorboard=True)
    assert main(["export", "tensorboard", str(plain)]) == 0
    assert str(plain / "tensorboard") in capsys.readouterr().out
    exported, written = read_back(plain), read_back(live)
    assert_scalars_are_the_metrics(exported, plain)
    for tag in TRAINED:  # the setting changes nothing of the training: the same seed, the same curves
        assert scalars(exported, tag) == scalars(written, tag), tag
    assert hparams(exported)["train.max_steps"] == 25
    assert scalars(exported, "final/best_val_loss") == scalars(written, "final/best_val_loss")
    assert f"{SAMPLE_TAG}/text_summary" not in exported.Tags()["tensors"]  # no samples: the note says so
    note = exported.Tensors("note/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "no text samples" in note

    assert main(["export", "tensorboard", str(plain)]) == 2
    assert "--replace" in capsys.readouterr().err
    assert main(["export", "tensorboard", str(plain), "--replace"]) == 0
    assert scalars(read_back(plain), "train/loss") == scalars(exported, "train/loss")
    assert main(["export", "tensorboard", str(tmp_path / "no-such-run")]) == 2


@pytest.fixture
def without_tensorboard(monkeypatch):
    """TensorBoard as if it were not installed, even where torch.utils.tensorboard was imported already."""
    for name in ("tensorboard", "torch.utils.tensorboard"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_the_package_the_setting_says_what_to_install(tmp_path, small_corpus, capsys, without_tensorboard):
    config = tiny_config(small_corpus, tmp_path / "runs", tensorboard=True)
    save_config(config, tmp_path / "tb.toml")
    assert main(["train", str(tmp_path / "tb.toml")]) == 2
    err = capsys.readouterr().err
    assert "lm-workbench[tensorboard]" in err and "train.tensorboard" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # checked before a run folder was made

    import lmcore

    with pytest.raises(ConfigError, match=r"lm-workbench\[tensorboard\]") as error:
        lmcore.train(config, progress=False)
    assert error.value.field == "train.tensorboard"
    config.train.tensorboard = False  # without the setting nothing asks for the package
    assert main(["export", "tensorboard", str(tmp_path)]) == 2
    assert "lm-workbench[tensorboard]" in capsys.readouterr().err


def test_hparams_take_every_setting_as_a_number_text_or_bool(small_corpus, tmp_path):
    flat = flat_config(tiny_config(small_corpus, tmp_path))
    assert flat["optim.betas"] == "[0.9, 0.99]" and flat["data.train"] == f'["{small_corpus}"]'
    assert all(isinstance(value, (bool, int, float, str)) for value in flat.values())
    assert not any(isinstance(value, float) and math.isnan(value) for value in flat.values())
