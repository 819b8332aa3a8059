"""Batches: random windows for Transformers, masked ones for the encoder, contiguous streams for RNNs, the
evaluation batches of the validation split, and each rank's share of it."""
from __future__ import annotations

import numpy as np
import torch

from .errors import CorpusError
from .masking import FRAME, MaskedLM


class RandomWindows:
    """nanoGPT-style batches: `batch_size` windows at random offsets. For Transformers.

    In a distributed run every rank draws the offsets of the whole global batch (world_size * batch_size) from
    the same seed and keeps its own block of them, so the ranks see different windows that together are exactly
    the batch one process with world_size * batch_size would see. The generator state is the same on every rank.
    """

    frame = 0  # tokens each sequence adds around its window of text (MaskedWindows: [CLS] and [SEP])

    def __init__(self, data: np.ndarray, batch_size: int, context: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        if len(data) < context - self.frame + 2:
            raise CorpusError(
                f"The training split has {len(data)} tokens, fewer than one window of train.context = {context} "
                "plus one; use a longer corpus or a smaller context."
            )
        self.data, self.batch_size, self.context = data, batch_size, context - self.frame
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(len(self.data) - self.context - 1, (self.batch_size * self.world_size,),
                               generator=self.generator)
        mine = starts[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        rows = np.stack([self.data[s:s + self.context + 1] for s in mine.tolist()]).astype(np.int64)
        block = torch.from_numpy(rows)
        return block[:, :-1], block[:, 1:]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    @property
    def new_sequence(self) -> bool:
        return True  # every window starts fresh; there is no state to carry


class MaskedWindows(RandomWindows):
    """Batches for a masked LM (the encoder): random windows of train.context - 2 tokens, each framed as
    [CLS] window [SEP] and masked (lmcore.masking); targets are IGNORE_INDEX but at the chosen positions.

    One generator draws the offsets and then the masking, so its state (saved in checkpoints) replays both.
    """

    frame = FRAME

    def __init__(self, mlm: MaskedLM, data: np.ndarray, batch_size: int, context: int, seed: int, rank: int = 0,
                 world_size: int = 1):
        super().__init__(data, batch_size, context, seed, rank, world_size)
        self.mlm = mlm

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        windows, _ = super().next_batch()
        return self.mlm.mask(self.mlm.frame(windows), self.generator, self.rank, self.world_size)


class ContiguousStreams:
    """Batches for truncated BPTT, as in the PyTorch word-language-model example.

    The token stream is cut into `batch_size` parallel streams; consecutive batches continue each stream,
    so the RNN's hidden state can be carried across them. `new_sequence` is True at each epoch start,
    when the trainer must reset that state. With several ranks, each takes its own slice of the streams.
    """

    def __init__(self, data: np.ndarray, batch_size: int, bptt: int, rank: int = 0, world_size: int = 1,
                 split: str = "training"):
        total_streams = batch_size * world_size
        length = len(data) // total_streams
        if length < bptt + 1:
            raise CorpusError(
                f"The {split} split has {len(data)} tokens: too few for train.batch_size = {batch_size} streams "
                f"of train.context = {bptt} tokens each; use a longer corpus or smaller batch or context."
            )
        streams = np.asarray(data[: length * total_streams], dtype=np.int64).reshape(total_streams, length)
        self.streams = torch.from_numpy(streams[rank * batch_size:(rank + 1) * batch_size].copy())
        self.bptt, self.position, self.epoch = bptt, 0, 0

    @property
    def new_sequence(self) -> bool:
        return self.position == 0

    @property
    def batches_per_epoch(self) -> int:
        return -(-(self.streams.shape[1] - 1) // self.bptt)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(self.bptt, self.streams.shape[1] - 1 - self.position)
        x = self.streams[:, self.position:self.position + n]
        y = self.streams[:, self.position + 1:self.position + 1 + n]
        self.position += n
        if self.position >= self.streams.shape[1] - 1:
            self.position, self.epoch = 0, self.epoch + 1
        return x, y

    def state_dict(self) -> dict:
        return {"position": self.position, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.position, self.epoch = int(state["position"]), int(state["epoch"])


def evaluation_batches(data: np.ndarray, family: str, context: int, batch_size: int, max_batches: int = 0):
    """Batches (x, y) covering the validation split once: non-overlapping windows for Transformers (of
    window_length(family, context) tokens: the encoder's leave room for [CLS] and [SEP], and it ignores y),
    contiguous streams (state carried by the caller) for RNNs. `max_batches` > 0 stops early.

    Raises CorpusError at once (not on first iteration) when the split is too short for one batch."""
    data = np.asarray(data, dtype=np.int64)
    if family == "rnn":
        streams = ContiguousStreams(data, batch_size, context, split="validation")
        count = streams.batches_per_epoch if max_batches == 0 else min(streams.batches_per_epoch, max_batches)
        return (streams.next_batch() for _ in range(count))
    window = window_length(family, context)
    n_windows = (len(data) - 1) // window
    if n_windows == 0:
        raise CorpusError(
            f"The validation split has {len(data)} tokens, fewer than one window of train.context = {context} "
            "plus one; raise data.val_fraction, give a longer validation file, or use a smaller context."
        )
    inputs = torch.from_numpy(data[: n_windows * window].reshape(n_windows, window))
    targets = torch.from_numpy(data[1: n_windows * window + 1].reshape(n_windows, window))
    starts = range(0, n_windows, batch_size)
    if max_batches:
        starts = starts[:max_batches]
    return ((inputs[s:s + batch_size], targets[s:s + batch_size]) for s in starts)


def window_length(family: str, context: int) -> int:
    """Tokens of text in one sequence of train.context tokens: all of them, but the encoder's [CLS] and [SEP]."""
    return context - FRAME if family == "encoder" else context


def rank_windows(data: np.ndarray, context: int, rank: int, world_size: int, max_windows: int = 0,
                 family: str = "transformer") -> np.ndarray:
    """The part of `data` holding rank `rank`'s share of the evaluation windows (of the first `max_windows`,
    if > 0): consecutive windows split as evenly as possible, so the ranks together cover each window once."""
    window = window_length(family, context)
    n_windows = (len(data) - 1) // window
    if max_windows:
        n_windows = min(n_windows, max_windows)
    if world_size > 1 and n_windows < world_size:  # one process without a window: evaluation_batches says why
        raise CorpusError(
            f"The validation split has {len(data)} tokens, {n_windows} window(s) of train.context = {context} "
            f"plus one, fewer than the {world_size} processes evaluating it. Raise data.val_fraction, give a "
            "longer validation file, or use a smaller context."
        )
    first, last = rank * n_windows // world_size, (rank + 1) * n_windows // world_size
    return data[first * window:last * window + 1]
