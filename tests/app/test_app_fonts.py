"""A corpus in a script no installed font can draw is shown as boxes: the form says so and what to install."""
from pathlib import Path

import pytest

from app.common import fonts
from app.common.fonts import WritingSystem, missing_fonts
from lmcore.corpus import CorpusSummary

CHINESE = "床前明月光，疑是地上霜。"


def fonts_for(*systems):
    return lambda system: ["Some Font"] if system in systems else []


def test_scripts_without_a_font_are_named_with_a_font_to_install():
    text = "Hello, мир! " + CHINESE + " こんにちは"
    assert missing_fonts(text, fonts_for(WritingSystem.Cyrillic)) == [
        ("Chinese", fonts.CJK_FONT), ("Japanese", fonts.CJK_FONT)]
    assert missing_fonts(text, fonts_for(WritingSystem.Cyrillic, WritingSystem.SimplifiedChinese,
                                         WritingSystem.Japanese)) == []
    assert missing_fonts("plain ASCII and café", fonts_for()) == []  # Latin is never looked up


@pytest.mark.parametrize("installed, shown", [((), True), ((WritingSystem.SimplifiedChinese,), False)])
def test_the_corpus_picker_says_which_font_to_install(qtbot, monkeypatch, installed, shown):
    from app.train.corpus_picker import CorpusPicker

    monkeypatch.setattr(fonts.QFontDatabase, "families", fonts_for(*installed))
    picker = CorpusPicker()
    qtbot.addWidget(picker)
    picker.show()
    summary = CorpusSummary([Path("poems.txt")], 300, 100, 10, 20, 5, CHINESE * 5, None)
    picker.show_summary(summary, None)
    assert picker.no_font.isVisible() == shown
    if shown:
        assert "Chinese" in picker.no_font.text() and "fonts-noto-cjk" in picker.no_font.text()
