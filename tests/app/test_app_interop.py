"""Models in and out through the window: File → Import model… turns a GPT-2 folder into a run, which the Attention
tab then shows; the runs browser's Export… writes a run for another tool."""
import pytest
from attention_helpers import one_torch_thread  # noqa: F401 - an autouse fixture

from app.attention.tab import MODEL, AttentionTab
from app.runs.interop import ExportDialog, ImportDialog
from interop_helpers import gpt2_folder
from lmcore.runs import list_runs

pytest.importorskip("transformers")


def wait_for(qtbot, dialog):
    qtbot.waitUntil(lambda: not dialog.is_busy(), timeout=60_000)


def test_a_gpt2_folder_imported_through_the_window_shows_its_attention(qtbot, make_window, tmp_path):
    folder = gpt2_folder(tmp_path / "my-gpt2")
    window = make_window()
    dialog = window.import_model()
    dialog.source.edit.setText(str(tmp_path / "nowhere"))
    dialog.action_button.click()
    wait_for(qtbot, dialog)
    assert "is not a folder" in dialog.message.text() and dialog.isVisible()  # the error, in the dialog

    dialog.source.edit.setText(str(folder))
    dialog.name.setText("imported gpt2")
    with qtbot.waitSignal(dialog.imported, timeout=60_000) as imported:
        dialog.action_button.click()
    run = imported.args[0]
    assert not dialog.isVisible()
    assert [info.path for info in list_runs(tmp_path / "runs")] == [run]
    assert window.runs_browser.selected_run() == run  # selected: the tabs show it

    tab = AttentionTab()  # the window's own tabs are stand-ins in these tests (conftest.stub_tabs)
    qtbot.addWidget(tab)
    tab.resize(1000, 800)
    tab.show()
    tab.set_run(run)
    tab.show_text("To be, or not to be")
    qtbot.waitUntil(lambda: not tab.is_busy(), timeout=20_000)
    assert tab._snapshot.weights.shape[:2] == (2, 2)  # layers x heads
    tab.views.setCurrentIndex(MODEL)
    assert tab.grid.isVisible() and (tab.grid.mosaic.n_layer, tab.grid.mosaic.n_head) == (2, 2)


def test_the_import_dialog_asks_for_a_nanogpt_corpus(qtbot, tmp_path):
    dialog = ImportDialog(tmp_path / "runs")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.corpus.isVisible()
    dialog.kind.setCurrentIndex(dialog.kind.findData("nanogpt"))
    assert dialog.corpus.isVisible() and not dialog.source.folder


def test_export_from_the_runs_browser_writes_safetensors(qtbot, make_window, tmp_path, monkeypatch):
    from lmcore.interop import import_huggingface

    run = import_huggingface(gpt2_folder(tmp_path / "gpt2"), tmp_path / "runs")
    window = make_window()
    browser = window.runs_browser
    browser.refresh()
    browser.select_run(run)
    opened = []
    monkeypatch.setattr(ExportDialog, "open", lambda self: opened.append(self))
    actions = {action.text(): action for action in browser._actions_menu().actions()}
    actions["Export…"].trigger()
    (dialog,) = opened
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(dialog.format.findData("safetensors"))
    dialog.folder.edit.setText(str(tmp_path / "out"))
    dialog.action_button.click()
    wait_for(qtbot, dialog)
    assert "model.safetensors" in dialog.message.text()
    assert (tmp_path / "out" / "model.safetensors").is_file()
    dialog.reject()
