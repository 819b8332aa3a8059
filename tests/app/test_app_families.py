"""The MLP (n-gram) and CNN families in the window: the form shows each family's fields and its receptive field,
and each preset trains from the form; the Attention tab shows such a run's saliency."""
from __future__ import annotations

import json

import numpy as np
import pytest
from attention_helpers import one_torch_thread  # noqa: F401 - an autouse fixture
from engine_helpers import tiny_config
from PySide6.QtCore import Qt

from lmcore.attention import capture
from lmcore.checkpoint import load_trained_model
from lmcore.models import ConvConfig, MLPConfig
from lmcore.trainer import Trainer

from app.attention.tab import MODEL, AttentionTab
from app.common.resources import PRESETS_DIR
from app.train.tab import TrainTab
from app_helpers import set_field, type_corpus

FAMILY_FIELDS = {"mlp": {"model.n_gram", "model.n_hidden", "model.direct"},
                 "conv": {"model.kernel_size", "model.dilation_cycle", "model.tie_embeddings"},
                 "transformer": {"model.n_head", "model.positional", "model.bias", "model.tie_embeddings"}}
TIMEOUT = 60_000  # ms; generous, for a busy machine


@pytest.fixture
def tab(qtbot, tmp_path, small_corpus):
    widget = TrainTab(tmp_path / "runs", [PRESETS_DIR], tmp_path / "presets")
    qtbot.addWidget(widget)
    widget.form.set_corpus([str(small_corpus)])
    widget.resize(1000, 760)
    widget.show()
    return widget


def shown_model_fields(form) -> set[str]:
    return {key for key, editor in form.editors.items() if key.startswith("model.") and editor.isVisibleTo(form)}


def test_each_familys_fields_and_receptive_field_are_shown(tab, qtbot):
    form, summary = tab.form, tab.form.summary.values
    form.preset.setCurrentIndex(form.preset.findText("mlp-char"))
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=5000)
    fields = shown_model_fields(form)
    assert FAMILY_FIELDS["mlp"] <= fields and not fields & (FAMILY_FIELDS["conv"] | FAMILY_FIELDS["transformer"])
    assert summary["Receptive field"].text() == "15 tokens"  # n = 16
    set_field(form, "model.n_gram", 4)
    set_field(form, "model.direct", True)
    qtbot.waitUntil(lambda: summary["Receptive field"].text() == "3 tokens", timeout=5000)
    assert form.config().model == MLPConfig(vocab_size=65, n_gram=4, n_embd=32, n_hidden=512, direct=True)

    form.preset.setCurrentIndex(form.preset.findText("cnn-char"))
    qtbot.waitUntil(lambda: summary["Receptive field"].text() == "65 tokens", timeout=5000)
    fields = shown_model_fields(form)
    assert FAMILY_FIELDS["conv"] <= fields and not fields & (FAMILY_FIELDS["mlp"] - {"model.tie_embeddings"})
    assert "model.n_head" not in fields
    set_field(form, "model.kernel_size", 2)  # 1 + 1 x (1 + 2 + 4 + 8 + 16 + 1)
    qtbot.waitUntil(lambda: summary["Receptive field"].text() == "33 tokens", timeout=5000)
    set_field(form, "model.kernel_size", 1)  # below its range: the spin box does not go there
    assert isinstance(form.config().model, ConvConfig) and form.config().model.kernel_size == 2

    set_field(form, "model.family", "rnn")
    set_field(form, "model.n_hidden", 128)  # tied to the CNN's 128-wide embeddings
    qtbot.waitUntil(lambda: summary["Receptive field"].text() == "all before", timeout=5000)


@pytest.mark.parametrize("preset, family", [("mlp-char", "mlp"), ("cnn-char", "conv")])
def test_each_preset_trains_from_the_form(make_window, qtbot, small_corpus, preset, family):
    window = make_window()
    tab, form = window.train_tab, window.train_tab.form
    form.preset.setCurrentIndex(form.preset.findText(preset))
    type_corpus(qtbot, form, small_corpus)
    for key, value in {"train.batch_size": 4, "train.context": 16, "train.max_steps": 6,
                       "train.eval_interval": 3, "train.device": "cpu"}.items():
        set_field(form, key, value)
    qtbot.waitUntil(tab.start_button.isEnabled, timeout=5000)
    qtbot.mouseClick(tab.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tab.is_training(), timeout=TIMEOUT)
    run = tab.plots.pinned
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert tab.plots.series[run].evals["step"].tolist() == [3, 6]
    model, _, meta = load_trained_model(run)
    assert model.family == family and meta["step"] in (3, 6)


@pytest.mark.parametrize("model, notice", [(MLPConfig(n_gram=4, n_embd=16, n_hidden=32), "An MLP has no attention"),
                                           (ConvConfig(n_layer=2, n_embd=16), "A CNN has no attention")])
def test_the_attention_tab_shows_the_saliency_of_an_mlp_or_a_cnn(qtbot, small_corpus, tmp_path, model, notice):
    config = tiny_config(small_corpus, tmp_path, max_steps=10)
    config.model = model
    trainer = Trainer.new(config)
    assert trainer.run() == "finished"
    tab = AttentionTab()
    qtbot.addWidget(tab)
    tab.resize(1000, 800)
    tab.show()
    tab.set_run(trainer.folder.path)
    tab.show_text("First Citizen:")
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)
    assert notice in tab.notice.text() and tab.show_button.text() == "Show saliency"
    assert not tab.views.isTabEnabled(MODEL) and ("MLP" if model.family == "mlp" else "CNN") in tab.run_label.text()
    trained, tokenizer, _ = load_trained_model(trainer.folder.path, "best")
    expected = capture(trained, tokenizer, "First Citizen:").weights[0, 0].copy()
    expected[np.triu_indices(len(expected), k=1)] = np.nan  # the future, masked in the view
    np.testing.assert_allclose(tab.heatmap.image.image, expected, atol=1e-6)
