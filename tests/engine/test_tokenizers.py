"""Tests for lmcore.tokenizers: round trips, vocabulary rules, save/load and the user-facing errors."""
from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lmcore.errors import ConfigError, TokenizerError
from lmcore.tokenizers import (
    SPM_MODEL_FILE,
    TOKENIZER_FILE,
    SentencePieceTokenizer,
    TokenizerConfig,
    WordTokenizer,
    load_tokenizer,
    train_tokenizer,
)

SHAKESPEARE = Path(__file__).resolve().parents[2] / "resources/corpora/tinyshakespeare.txt"

# Hypothesis examples are cheap here; the tokenizers are trained once per module.
fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

CHINESE_SENTENCES = [
    "今天天气很好，我们一起去公园散步吧。",
    "他每天早上六点起床，然后跑步半个小时。",
    "这本书讲的是一个年轻人离开家乡去大城市打工的故事。",
    "学习语言模型需要大量的文本数据和计算资源。",
    "春天来了，花园里的花都开了，空气中充满了香味。",
    "我们应该珍惜时间，努力学习，不断进步。",
    "北京是中国的首都，也是一座历史悠久的城市。",
    "晚饭以后，爷爷喜欢在院子里喝茶、看报纸。",
    "电脑程序可以帮助人们更快地处理复杂的问题。",
    "孩子们在河边玩水，笑声传得很远很远。",
]


@pytest.fixture(scope="module")
def english() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")[:50_000]


@pytest.fixture(scope="module")
def chinese() -> str:
    # Shuffle clauses into new lines, so that frequent pairs occur in many contexts (about 12k characters).
    clauses = [c for s in CHINESE_SENTENCES for c in re.split("(?<=[，。、])", s) if c]
    rng = random.Random(0)
    return "\n".join("".join(rng.sample(clauses, 4)) for _ in range(300)) + "\n"


@pytest.fixture(scope="module")
def spm_bpe(english: str) -> SentencePieceTokenizer:
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=800), english)
    assert isinstance(tok, SentencePieceTokenizer)
    return tok


@pytest.fixture(scope="module")
def spm_chinese(chinese: str) -> SentencePieceTokenizer:
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=450), chinese)
    assert isinstance(tok, SentencePieceTokenizer)
    return tok


@pytest.fixture(scope="module")
def word_tok(english: str) -> WordTokenizer:
    tok = train_tokenizer(TokenizerConfig(kind="word"), english)
    assert isinstance(tok, WordTokenizer)
    return tok


# ---------------------------------------------------------------- char


@fast
@given(train=st.text(min_size=1, max_size=60), data=st.data())
def test_char_round_trip_over_training_alphabet(train: str, data: st.DataObject) -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), train)
    text = data.draw(st.text(alphabet=sorted(set(train)), max_size=200))
    ids = tok.encode(text)
    assert 0 not in ids  # nothing in the alphabet is <unk>
    assert tok.decode(ids) == text
    assert tok.vocab_size == len(set(train)) + 1


def test_char_vocabulary_layout() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "cab\nba")
    assert tok.vocab_size == 5
    assert [tok.token_text(i) for i in range(1, 5)] == ["\n", "a", "b", "c"]
    assert tok.token_text(0) == "<unk>"
    assert (tok.unk_id, tok.eos_id, tok.bos_id) == (0, None, None)
    assert tok.encode("abc") == [2, 3, 4]


def test_char_unknown_error_names_characters() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "hello world")
    with pytest.raises(TokenizerError) as err:
        tok.encode("hello wörld☃")
    message = str(err.value)
    assert "'ö'" in message and "'☃'" in message
    assert "replace" in message and "<unk>" in message


def test_char_unknown_error_lists_at_most_ten() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "a")
    with pytest.raises(TokenizerError) as err:
        tok.encode("bcdefghijklmn")
    message = str(err.value)
    assert "'k'" in message and "'l'" not in message
    assert "3 more" in message


def test_char_unknown_replace_maps_to_unk() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "abc")
    ids = tok.encode("axb", unknown="replace")
    assert ids == [1, tok.unk_id, 2]
    assert tok.decode(ids) == "a\ufffdb"


def test_decode_rejects_ids_outside_vocabulary() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "abc")
    for bad in (4, -1):
        with pytest.raises(TokenizerError, match="outside"):
            tok.decode([1, bad])


def test_bad_unknown_mode_is_a_programming_error() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), "abc")
    with pytest.raises(ValueError, match="unknown"):
        tok.encode("a", unknown="ignore")


# ---------------------------------------------------------------- word


@pytest.fixture(scope="module")
def vocab_words(word_tok: WordTokenizer) -> list[str]:
    return [word_tok.token_text(i) for i in range(2, word_tok.vocab_size)]


@fast
@given(data=st.data())
def test_word_round_trip_for_in_vocab_text(word_tok: WordTokenizer, vocab_words: list[str], data: st.DataObject) -> None:
    lines = data.draw(st.lists(st.lists(st.sampled_from(vocab_words), max_size=8), max_size=6))
    text = "\n".join(" ".join(line) for line in lines)
    ids = word_tok.encode(text)
    assert word_tok.unk_id not in ids
    assert ids.count(word_tok.eos_id) == text.count("\n")
    assert word_tok.decode(ids) == text


def test_word_vocabulary_order_and_eos() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="word"), "b a b\nc a b\n\nd")
    # b:3, a:2, then c and d tie at 1 and keep their order of first appearance
    assert [tok.token_text(i) for i in range(tok.vocab_size)] == ["<unk>", "\n", "b", "a", "c", "d"]
    assert (tok.unk_id, tok.eos_id, tok.bos_id) == (0, 1, None)
    assert tok.encode("a  b\t\nc\n") == [3, 2, 1, 4, 1]
    assert tok.decode([3, 2, 1, 1, 4, 1]) == "a b\n\nc\n"


def test_word_unknown_words_become_unk_in_both_modes() -> None:
    tok = train_tokenizer(TokenizerConfig(kind="word"), "the cat sat on the mat")
    for mode in ("error", "replace"):
        assert tok.encode("the dog sat", unknown=mode) == [2, 0, 4]
    assert tok.decode([2, 0]) == "the <unk>"
    assert tok.encode("<unk> <eos>") == [0, 1]  # WikiText's literal markers are the special tokens


def test_word_lowercase() -> None:
    text = "The cat\nthe Cat THE hat"
    plain = train_tokenizer(TokenizerConfig(kind="word"), text)
    lower = train_tokenizer(TokenizerConfig(kind="word", lowercase=True), text)
    assert plain.vocab_size == 2 + 6  # The, cat, the, Cat, THE, hat
    assert lower.vocab_size == 2 + 3
    assert lower.decode(lower.encode("THE CAT")) == "the cat"
    assert plain.fingerprint() != lower.fingerprint()


def test_word_max_vocab_keeps_most_frequent() -> None:
    text = "a a a a b b b c c d e"
    tok = train_tokenizer(TokenizerConfig(kind="word", max_vocab=5), text)
    assert tok.vocab_size == 5
    assert tok.encode("a b c d e") == [2, 3, 4, 0, 0]


def test_word_min_count() -> None:
    text = "a a a b b c d"
    tok = train_tokenizer(TokenizerConfig(kind="word", min_count=2), "x x " + text)
    assert [tok.token_text(i) for i in range(2, tok.vocab_size)] == ["a", "x", "b"]
    with pytest.raises(TokenizerError, match="min_count = 3"):
        train_tokenizer(TokenizerConfig(kind="word", min_count=3), text)


def test_word_needs_three_distinct_words() -> None:
    with pytest.raises(TokenizerError, match="only 2 distinct"):
        train_tokenizer(TokenizerConfig(kind="word"), "yes no yes\nno")


# ---------------------------------------------------------------- sentencepiece


any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=80)
tricky_texts = [
    "a\n\nb",
    "\n",
    "  two  spaces\tand a tab  ",
    "\u2581 literal spm space marker \u2581\u2581",
    "中文 and emoji 😀👍🏽 mixed",
    "\x00\r\n\u2028\ufeff",
]


def _with_examples(test):
    for text in tricky_texts:
        test = example(text)(test)
    return test


@fast
@given(text=any_text)
@_with_examples
def test_sentencepiece_round_trips_any_text(spm_bpe: SentencePieceTokenizer, text: str) -> None:
    ids = spm_bpe.encode(text)
    assert all(0 < i < spm_bpe.vocab_size for i in ids)  # byte fallback: never <unk>
    assert spm_bpe.decode(ids) == text


@fast
@given(text=any_text)
@_with_examples
def test_sentencepiece_without_spaces_in_corpus_round_trips(spm_chinese: SentencePieceTokenizer, text: str) -> None:
    # The Chinese corpus has no spaces, so spm alone would turn " " into "▁".
    assert spm_chinese.decode(spm_chinese.encode(text)) == text


def test_sentencepiece_newlines_are_single_byte_tokens(spm_bpe: SentencePieceTokenizer) -> None:
    ids = spm_bpe.encode("a\n\nb")
    assert len(ids) == 4
    assert spm_bpe.token_text(ids[1]) == "\n" == spm_bpe.token_text(ids[2])


def test_sentencepiece_token_text(spm_bpe: SentencePieceTokenizer) -> None:
    texts = [spm_bpe.token_text(i) for i in spm_bpe.encode(" the king")]
    assert "".join(texts) == " the king"
    assert spm_bpe.token_text(0) == "<unk>"
    (first_byte, *_) = spm_bpe.encode("中")  # three byte pieces; a lone lead byte is not printable
    assert spm_bpe.token_text(first_byte) == "<0xE4>"
    assert spm_bpe.decode([0]) == "\ufffd"
    assert (spm_bpe.unk_id, spm_bpe.eos_id, spm_bpe.bos_id) == (0, None, None)


def test_sentencepiece_learns_merges(spm_bpe: SentencePieceTokenizer, english: str) -> None:
    sample = english[:2000]
    assert spm_bpe.vocab_size == 800
    assert len(spm_bpe.encode(sample)) < len(sample) / 2


def test_sentencepiece_unigram(english: str) -> None:
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", model_type="unigram", vocab_size=600), english)
    assert tok.vocab_size == 600
    for text in (english[:3000], "a\n\nb  c\t😀\u2581", ""):
        assert tok.decode(tok.encode(text)) == text


# The corpus has 142 distinct characters, so 399 pieces are the minimum; unigram supports few more on it.
@pytest.mark.parametrize(("model_type", "vocab_size"), [("bpe", 450), ("unigram", 400)])
def test_sentencepiece_chinese(chinese: str, model_type: str, vocab_size: int) -> None:
    cfg = TokenizerConfig(kind="sentencepiece", model_type=model_type, vocab_size=vocab_size)
    tok = train_tokenizer(cfg, chinese)
    assert tok.vocab_size == vocab_size
    seen = CHINESE_SENTENCES[0] + CHINESE_SENTENCES[3]
    if model_type == "bpe":
        assert len(tok.encode(seen)) < 0.8 * len(seen)  # learned multi-character pieces
    for text in (seen, "他说：Hello, world! 我们 2024 年见。\n下一行😀", "龘齉 unseen 字"):
        assert tok.decode(tok.encode(text)) == text


def test_sentencepiece_vocab_too_large_names_the_limit() -> None:
    text = "the cat sat on the mat\n" * 20
    with pytest.raises(TokenizerError) as err:
        train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=50_000), text)
    message = str(err.value)
    assert "tokenizer.vocab_size = 50000 is more than this corpus supports" in message
    limit = int(message.split("at most ")[1].split()[0])
    assert 257 < limit < 400
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=limit), text)
    assert tok.vocab_size == limit


def test_sentencepiece_vocab_too_small_names_the_minimum(english: str) -> None:
    with pytest.raises(TokenizerError) as err:
        train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=270), english)
    message = str(err.value)
    needed = int(message.split("at least ")[1].split()[0])
    assert "tokenizer.vocab_size = 270 is too small" in message and needed > 270
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=needed), english)
    assert tok.vocab_size == needed


def test_sentencepiece_long_lines_are_not_skipped() -> None:
    # One 100k-character line: spm would drop it whole if it were passed as a single sentence.
    text = "abcdefghij" * 10_000
    tok = train_tokenizer(TokenizerConfig(kind="sentencepiece", vocab_size=300), text)
    assert len(tok.encode(text)) < len(text) / 5


def test_empty_corpus_is_rejected() -> None:
    for kind in ("char", "word", "sentencepiece"):
        with pytest.raises(TokenizerError, match="empty"):
            train_tokenizer(TokenizerConfig(kind=kind), "")
    with pytest.raises(TokenizerError, match="line breaks"):
        train_tokenizer(TokenizerConfig(kind="sentencepiece"), "\n\n\n")


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"kind": "foo"}, "tokenizer.kind = 'foo' is not one of char, word, sentencepiece"),
        ({"kind": "word", "max_vocab": 3}, "tokenizer.max_vocab = 3"),
        ({"kind": "word", "max_vocab": -1}, "tokenizer.max_vocab = -1"),
        ({"kind": "word", "min_count": 0}, "tokenizer.min_count = 0"),
        ({"kind": "word", "lowercase": "yes"}, "tokenizer.lowercase = 'yes'"),
        ({"kind": "sentencepiece", "vocab_size": 100}, "tokenizer.vocab_size = 100"),
        ({"kind": "sentencepiece", "vocab_size": "2000"}, "tokenizer.vocab_size = '2000'"),
        ({"kind": "sentencepiece", "vocab_size": True}, "tokenizer.vocab_size = True"),
        ({"kind": "sentencepiece", "model_type": "wordpiece"}, "tokenizer.model_type = 'wordpiece'"),
        ({"kind": "sentencepiece", "character_coverage": 0.5}, "tokenizer.character_coverage = 0.5"),
    ],
)
def test_bad_config_names_the_field(fields: dict, expected: str) -> None:
    cfg = TokenizerConfig(**fields)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert expected in str(err.value)
    with pytest.raises(ConfigError):
        train_tokenizer(cfg, "some text here")


def test_defaults_are_valid() -> None:
    for kind in ("char", "word", "sentencepiece"):
        TokenizerConfig(kind=kind).validate()
    # ranges of fields the chosen kind does not use are not checked
    TokenizerConfig(kind="char", vocab_size=10, min_count=0).validate()


# ---------------------------------------------------------------- save / load


@pytest.fixture(scope="module")
def all_kinds(english: str, spm_bpe: SentencePieceTokenizer, word_tok: WordTokenizer) -> list:
    char = train_tokenizer(TokenizerConfig(kind="char"), english)
    return [char, word_tok, spm_bpe]


def test_save_load_is_identical(all_kinds: list, english: str, tmp_path: Path) -> None:
    sample = english[1000:4000]
    for tok in all_kinds:
        folder = tmp_path / tok.kind
        tok.save(folder)
        loaded = load_tokenizer(folder)
        assert type(loaded) is type(tok)
        assert loaded.vocab_size == tok.vocab_size
        assert loaded.fingerprint() == tok.fingerprint()
        ids = tok.encode(sample)
        assert loaded.encode(sample) == ids
        assert loaded.decode(ids) == tok.decode(ids)
        assert [loaded.token_text(i) for i in range(20)] == [tok.token_text(i) for i in range(20)]
        doc = json.loads((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))
        assert (doc["format"], doc["version"], doc["kind"]) == ("lmcore-tokenizer", 1, tok.kind)
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temp files left behind
    assert (tmp_path / "sentencepiece" / SPM_MODEL_FILE).is_file()
    assert len({tok.fingerprint() for tok in all_kinds}) == 3


def test_fingerprint_is_stable_and_tracks_the_vocabulary() -> None:
    a1 = train_tokenizer(TokenizerConfig(kind="char"), "hello")
    a2 = train_tokenizer(TokenizerConfig(kind="char"), "olleh")
    b = train_tokenizer(TokenizerConfig(kind="char"), "hello!")
    assert a1.fingerprint() == a2.fingerprint()
    assert a1.fingerprint() != b.fingerprint()
    assert len(a1.fingerprint()) == 16


def test_chinese_char_tokenizer_saves(chinese: str, tmp_path: Path) -> None:
    tok = train_tokenizer(TokenizerConfig(kind="char"), chinese)
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).decode(tok.encode(chinese)) == chinese


def test_save_overwrites_existing_tokenizer(tmp_path: Path) -> None:
    train_tokenizer(TokenizerConfig(kind="char"), "abc").save(tmp_path)
    newer = train_tokenizer(TokenizerConfig(kind="char"), "xyz")
    newer.save(tmp_path)
    assert load_tokenizer(tmp_path).fingerprint() == newer.fingerprint()


def test_load_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(TokenizerError, match="does not exist") as err:
        load_tokenizer(missing)
    assert str(missing) in str(err.value)


def test_load_missing_json(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="missing") as err:
        load_tokenizer(tmp_path)
    assert TOKENIZER_FILE in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"format": "lmcore-tok', "cannot be read as JSON"),
        (b"\xff\xfe garbage", "cannot be read as JSON"),
        (b'{"model_type": "BPE", "vocab": {}}', "not an LM Workbench tokenizer"),
        (b"[1, 2, 3]", "not an LM Workbench tokenizer"),
        (b'{"format": "lmcore-tokenizer", "version": 99, "kind": "char", "chars": []}', "version 99"),
        (b'{"format": "lmcore-tokenizer", "version": 1, "kind": "bytes"}', "kind 'bytes'"),
        (b'{"format": "lmcore-tokenizer", "version": 1, "kind": "char"}', "damaged"),
        (b'{"format": "lmcore-tokenizer", "version": 1, "kind": "char", "chars": ["ab"]}', "damaged"),
        (b'{"format": "lmcore-tokenizer", "version": 1, "kind": "word", "lowercase": 1, "words": []}', "damaged"),
    ],
)
def test_load_bad_json(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / TOKENIZER_FILE).write_bytes(content)
    with pytest.raises(TokenizerError, match=expected) as err:
        load_tokenizer(tmp_path)
    assert TOKENIZER_FILE in str(err.value)


def test_load_missing_or_corrupt_spm_model(spm_bpe: SentencePieceTokenizer, tmp_path: Path) -> None:
    spm_bpe.save(tmp_path)
    model = tmp_path / SPM_MODEL_FILE
    good = model.read_bytes()

    model.write_bytes(good[: len(good) // 2])
    with pytest.raises(TokenizerError, match="does not match") as err:
        load_tokenizer(tmp_path)
    assert SPM_MODEL_FILE in str(err.value)

    # A model whose checksum was "fixed up" by hand is still caught when sentencepiece cannot parse it.
    doc = json.loads((tmp_path / TOKENIZER_FILE).read_text(encoding="utf-8"))
    doc["model_sha256"] = hashlib.sha256(b"junk").hexdigest()
    (tmp_path / TOKENIZER_FILE).write_text(json.dumps(doc), encoding="utf-8")
    model.write_bytes(b"junk")
    with pytest.raises(TokenizerError, match="not a usable SentencePiece model"):
        load_tokenizer(tmp_path)

    model.unlink()
    with pytest.raises(TokenizerError, match="cannot be read") as err:
        load_tokenizer(tmp_path)
    assert SPM_MODEL_FILE in str(err.value)


def test_progress_messages(english: str) -> None:
    messages: list[str] = []
    tok = train_tokenizer(TokenizerConfig(kind="char"), english, progress=messages.append)
    assert len(messages) == 2
    assert f"{tok.vocab_size:,} tokens" in messages[-1]


def test_unknown_share_counts_characters_that_become_unk(english: str, chinese: str, word_tok: WordTokenizer,
                                                         spm_bpe: SentencePieceTokenizer) -> None:
    char = train_tokenizer(TokenizerConfig(kind="char"), english)
    assert char.unknown_share(english) == 0.0
    assert char.unknown_share(chinese) > 0.5  # all but the line breaks and ASCII punctuation
    assert char.unknown_share("ab\u4e2d\u6587") == pytest.approx(0.5)
    assert char.unknown_share("") == 0.0
    assert word_tok.unknown_share("the zzzz") == pytest.approx(4 / 8)  # the unknown word's characters
    assert spm_bpe.unknown_share(chinese) == 0.0  # byte fallback: nothing becomes <unk>


CHINESE_TEXT = "床前明月光，疑是地上霜。举头望明月，低头思故乡。\n" * 20


def test_text_written_without_spaces_gets_a_warning_for_a_word_tokenizer():
    from lmcore.tokenizers import long_words_warning

    assert "written without spaces" in long_words_warning(CHINESE_TEXT)
    assert long_words_warning("To be, or not to be: that is the question.\n" * 20) is None
    with pytest.warns(UserWarning, match="sentencepiece"):
        train_tokenizer(TokenizerConfig(kind="word"), CHINESE_TEXT + "a b c\n")


class FakeJieba:
    """jieba's interface (lcut) for the tests, which do not install it: words of two characters."""

    @staticmethod
    def lcut(line):
        return [line[i:i + 2] for i in range(0, len(line), 2)]


def test_the_jieba_segmenter_cuts_chinese_into_words_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", FakeJieba)
    tokenizer = train_tokenizer(TokenizerConfig(kind="word", segmenter="jieba"), CHINESE_TEXT)
    assert tokenizer.vocab_size == 2 + 12  # <unk>, <eos> and the twelve two-character words of a line
    ids = tokenizer.encode(CHINESE_TEXT)
    assert tokenizer.decode(ids) == CHINESE_TEXT  # Chinese words are joined without spaces
    tokenizer.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.segmenter == "jieba" and again.encode(CHINESE_TEXT) == ids


def test_the_jieba_segmenter_without_jieba_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(TokenizerError, match=r"lm-workbench\[chinese\]"):
        train_tokenizer(TokenizerConfig(kind="word", segmenter="jieba"), CHINESE_TEXT)


def test_a_whitespace_word_tokenizer_file_has_no_segmenter_key(tmp_path):
    train_tokenizer(TokenizerConfig(kind="word"), "a b c d\n" * 5).save(tmp_path)
    assert "segmenter" not in (tmp_path / TOKENIZER_FILE).read_text()


def test_with_the_real_jieba_chinese_is_cut_into_its_words(tmp_path):
    tokenizer = train_tokenizer(TokenizerConfig(kind="word", segmenter="jieba"), "我爱北京天安门\n" * 3)
    assert [tokenizer.token_text(i) for i in tokenizer.encode("我爱北京天安门")] == ["我", "爱", "北京", "天安门"]
