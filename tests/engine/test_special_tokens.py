"""Special tokens for the encoder ([CLS], [SEP], [MASK], [PAD]): appended after a tokenizer's own vocabulary, they
leave its ids, its files and its fingerprint alone; tokenizer.json files written before they existed load as
before (named tokenizer.json then, now lmcore-tokenizer.json). The files in data/tokenizers-v1 were written by lmcore before special tokens existed."""
import json
import shutil
from pathlib import Path

import pytest

from lmcore.errors import TokenizerError
from lmcore.tokenizers import LEGACY_TOKENIZER_FILE, MLM_SPECIAL_TOKENS, TOKENIZER_FILE, load_tokenizer

OLD = Path(__file__).resolve().parent / "data" / "tokenizers-v1"
EXPECTED = json.loads((OLD / "expected.json").read_text(encoding="utf-8"))
KINDS = sorted(EXPECTED["tokenizers"])


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_files_written_before_special_tokens_load_and_save_unchanged(kind, tmp_path):
    expected = EXPECTED["tokenizers"][kind]
    tokenizer = load_tokenizer(OLD / kind)
    assert tokenizer.kind == kind and tokenizer.special_tokens == ()
    assert (tokenizer.vocab_size, tokenizer.fingerprint()) == (expected["vocab_size"], expected["fingerprint"])
    ids = tokenizer.encode(EXPECTED["text"], unknown="replace")
    assert ids == expected["ids"] and tokenizer.decode(ids) == expected["decoded"]
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id, tokenizer.pad_id) == (None, None, None, None)
    tokenizer.save(tmp_path)
    # saved under the new name (lmcore-tokenizer.json), with the very bytes of the old file
    assert (tmp_path / TOKENIZER_FILE).read_bytes() == (OLD / kind / LEGACY_TOKENIZER_FILE).read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_come_after_the_vocabulary_and_change_no_other_id(kind, tmp_path):
    plain = load_tokenizer(OLD / kind)
    tokenizer = plain.with_special_tokens()
    n = plain.vocab_size
    assert tokenizer.vocab_size == n + 4 and tokenizer.text_vocab_size == n and plain.vocab_size == n
    assert (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id, tokenizer.pad_id) == (n, n + 1, n + 2, n + 3)
    ids = tokenizer.encode(EXPECTED["text"], unknown="replace")
    assert ids == EXPECTED["tokenizers"][kind]["ids"]
    assert tokenizer.encode("[MASK]", unknown="replace") == plain.encode("[MASK]", unknown="replace")  # text is text
    assert [tokenizer.token_text(i) for i in range(n, n + 4)] == list(MLM_SPECIAL_TOKENS)
    assert tokenizer.token_text(ids[0]) == plain.token_text(ids[0])
    framed = tokenizer.decode([tokenizer.cls_id, *ids[:5], tokenizer.mask_id, *ids[6:9], tokenizer.sep_id])
    assert framed.startswith("[CLS]") and "[MASK]" in framed and framed.endswith("[SEP]")
    assert tokenizer.fingerprint() != plain.fingerprint()

    tokenizer.save(tmp_path)
    doc = json.loads((tmp_path / TOKENIZER_FILE).read_text(encoding="utf-8"))
    assert doc["special_tokens"] == list(MLM_SPECIAL_TOKENS)
    again = load_tokenizer(tmp_path)
    assert again.special_tokens == MLM_SPECIAL_TOKENS and again.fingerprint() == tokenizer.fingerprint()
    assert again.decode([again.mask_id]) == "[MASK]"


def test_word_tokenizer_spaces_special_tokens_like_words():
    plain = load_tokenizer(OLD / "word")
    tokenizer = plain.with_special_tokens()
    ids = tokenizer.encode("we proceed", unknown="replace")
    assert tokenizer.decode([ids[0], tokenizer.mask_id, ids[1]]) == "we [MASK] proceed"


def test_special_tokens_are_added_once_and_damaged_lists_are_refused(tmp_path):
    tokenizer = load_tokenizer(OLD / "char").with_special_tokens()
    with pytest.raises(ValueError, match="added once"):
        tokenizer.with_special_tokens()
    folder = tmp_path / "tok"
    shutil.copytree(OLD / "char", folder)
    doc = json.loads((folder / LEGACY_TOKENIZER_FILE).read_text(encoding="utf-8"))
    for bad in (["[MASK]", "[MASK]"], "[MASK]", [1, 2]):
        (folder / LEGACY_TOKENIZER_FILE).write_text(json.dumps({**doc, "special_tokens": bad}), encoding="utf-8")
        with pytest.raises(TokenizerError, match="damaged"):
            load_tokenizer(folder)
