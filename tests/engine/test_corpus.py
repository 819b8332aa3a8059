import numpy as np
import pytest

from engine_helpers import tiny_config, write_corpus
from lmcore.batches import ContiguousStreams, RandomWindows, evaluation_batches
from lmcore.corpus import encode_cached, load_corpus, read_corpus
from lmcore.errors import CorpusError
from lmcore.tokenizers import TokenizerConfig, train_tokenizer
from lmcore.trainer import Trainer


def test_a_folder_of_txt_files_is_read_in_name_order(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "skip.md").write_text("not a corpus file")
    text, files = read_corpus([str(tmp_path)])
    assert text == "first\nsecond" and [f.name for f in files] == ["a.txt", "b.txt"]


def test_split_by_fraction_and_by_validation_file(tmp_path):
    train = write_corpus(tmp_path, 1000)
    by_fraction = load_corpus([str(train)], val_fraction=0.1)
    assert len(by_fraction.val) == 100 and by_fraction.train + by_fraction.val == train.read_text()
    val = tmp_path / "val.txt"
    val.write_text("held out text")
    by_file = load_corpus([str(train)], [str(val)])
    assert by_file.val == "held out text" and by_file.train == train.read_text()
    assert by_file.digest != by_fraction.digest


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing.txt", "does not exist"),
    (lambda d: (d / "empty.txt").write_text("  \n") and d / "empty.txt", "is empty"),
    (lambda d: (d / "bin.txt").write_bytes(b"PK\x03\x04\x00\x00binary") and d / "bin.txt", "binary"),
    (lambda d: (d / "sub").mkdir() or d / "sub", "holds no .txt files"),
])
def test_unusable_corpus_paths_are_explained(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(CorpusError, match=message) as info:
        load_corpus([str(path)])
    assert str(path) in str(info.value)


def test_invalid_utf8_names_the_byte_offset_and_the_way_out(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("abc caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"byte 7 .*encoding_errors") as info:
        load_corpus([str(path)])
    assert str(path) in str(info.value)
    replaced = load_corpus([str(path)], val_fraction=0.5, encoding_errors="replace")
    assert "\ufffd" in replaced.train + replaced.val


def test_empty_validation_split_is_explained(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghi" + " " * 5)
    with pytest.raises(CorpusError, match="validation split is empty"):
        load_corpus([str(path)], val_fraction=0.2)


def test_corpus_shorter_than_one_batch_stops_before_training(tmp_path):
    corpus = write_corpus(tmp_path, 300)
    config = tiny_config(corpus, tmp_path / "runs")
    config.model.context_length = 256
    config.train.context = 256
    trainer = Trainer.new(config)
    failures = []
    trainer.subscribe(lambda e: failures.append(e) if type(e).__name__ == "Failed" else None)
    assert trainer.run() == "failed"
    assert "fewer than one window" in failures[0].message and "train.context = 256" in failures[0].message


def test_rnn_streams_need_enough_tokens():
    with pytest.raises(CorpusError, match="too few for train.batch_size = 20"):
        ContiguousStreams(np.arange(100), batch_size=20, bptt=35)


def test_vocabulary_larger_than_the_corpus_supports_is_explained(tmp_path):
    corpus = write_corpus(tmp_path, 3000)
    config = tiny_config(corpus, tmp_path / "runs")
    config.tokenizer = TokenizerConfig(kind="sentencepiece", vocab_size=50_000)
    messages = []
    trainer = Trainer.new(config)
    trainer.subscribe(lambda e: messages.append(e.message) if type(e).__name__ == "Failed" else None)
    assert trainer.run() == "failed"
    assert "tokenizer.vocab_size" in messages[0] and "50000" in messages[0]


def test_encoding_is_cached_on_disk_and_reports_progress(tmp_path):
    text = write_corpus(tmp_path, 5000).read_text()
    tokenizer = train_tokenizer(TokenizerConfig(kind="char"), text)
    progress = []
    first = encode_cached(tokenizer, text, "key", tmp_path / "cache", progress=progress.append)
    assert progress and progress[-1] == 1.0
    assert isinstance(first, np.memmap) and first.tolist() == tokenizer.encode(text)
    again = []
    second = encode_cached(tokenizer, text, "key", tmp_path / "cache", progress=again.append)
    assert again == [] and np.array_equal(first, second)


def test_random_windows_shift_targets_by_one_and_replay_from_state():
    data = np.arange(1000, dtype=np.uint16)
    windows = RandomWindows(data, batch_size=4, context=8, seed=1)
    state = windows.state_dict()
    x, y = windows.next_batch()
    assert x.shape == (4, 8) and bool((y == x + 1).all())
    windows.load_state_dict(state)
    x2, _ = windows.next_batch()
    assert bool((x == x2).all())


def test_contiguous_streams_continue_across_batches_and_wrap_at_epoch_end():
    streams = ContiguousStreams(np.arange(100), batch_size=2, bptt=8)
    x1, y1 = streams.next_batch()
    x2, _ = streams.next_batch()
    assert bool((x2[:, 0] == y1[:, -1]).all()) and x1[1, 0] == 50
    while not streams.new_sequence:
        streams.next_batch()
    assert streams.epoch == 1


def test_evaluation_windows_cover_the_split_once():
    data = np.arange(101)
    batches = list(evaluation_batches(data, "transformer", context=10, batch_size=3))
    xs = np.concatenate([x.numpy().ravel() for x, _ in batches])
    assert xs.tolist() == list(range(100))
