"""Masked-language-model data, as BERT makes it: each window of text is framed as [CLS] window [SEP]; 15% of its
tokens are chosen, and of those 80% are replaced by [MASK], 10% by a random token and 10% kept as they are. The
model learns to predict the chosen tokens; every other target is IGNORE_INDEX, which the loss skips.

    mlm = MaskedLM.of(tokenizer)                              # an encoder run's tokenizer (with special tokens)
    inputs, targets = mlm.mask(mlm.frame(windows), generator)  # windows [B, W] -> both [B, W + 2]
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from .errors import TokenizerError
from .models.encoder import IGNORE_INDEX

MASK_RATE = 0.15  # share of the tokens chosen for prediction (never a special token)
MASK_TOKEN_SHARE = 0.8  # of the chosen: replaced by [MASK]
RANDOM_TOKEN_SHARE = 0.1  # ... by a random token of the text's vocabulary; the rest are kept as they are
FRAME = 2  # [CLS] and [SEP]: a sequence of train.context tokens holds train.context - 2 tokens of text
EVAL_MASK_SEED = 20181011  # the validation masking, the same in every evaluation (and every run), so values compare


@dataclass(frozen=True)
class MaskedLM:
    """The special token ids of a masked LM's tokenizer, and what the objective does with them."""

    cls_id: int
    sep_id: int
    mask_id: int
    pad_id: int
    vocab_size: int
    unk_id: int | None = None

    @classmethod
    def of(cls, tokenizer) -> MaskedLM:
        ids = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id, tokenizer.pad_id)
        if None in ids:
            raise TokenizerError(f"This {tokenizer.kind} tokenizer has no [CLS], [SEP], [MASK] and [PAD] tokens, "
                                 "which a masked language model needs; use the tokenizer/ folder of the encoder's "
                                 "own run, or start a new encoder run, which adds them.")
        return cls(*ids, tokenizer.vocab_size, tokenizer.unk_id)

    @property
    def special_ids(self) -> tuple[int, ...]:
        return self.cls_id, self.sep_id, self.mask_id, self.pad_id

    @cached_property
    def random_ids(self) -> Tensor:
        """What a chosen token may be replaced by: any token but the special ones and <unk>."""
        excluded = {*self.special_ids, self.unk_id}
        return torch.tensor([i for i in range(self.vocab_size) if i not in excluded], dtype=torch.long)

    def frame(self, windows: Tensor) -> Tensor:
        """Windows of text [B, W] -> sequences [B, W + 2]: [CLS] window [SEP]."""
        B = windows.size(0)
        return torch.cat((windows.new_full((B, 1), self.cls_id), windows, windows.new_full((B, 1), self.sep_id)), 1)

    def frame_and_pad(self, texts: list[list[int]]) -> tuple[Tensor, Tensor]:
        """Texts of any lengths -> ids [B, T] ([CLS] text [SEP], then [PAD] up to the longest) and the padding
        mask [B, T] (True at [PAD]) that EncoderLM takes as key_padding_mask."""
        ids = torch.full((len(texts), max(map(len, texts)) + FRAME), self.pad_id, dtype=torch.long)
        for row, text in zip(ids, texts, strict=True):
            row[:len(text) + FRAME] = torch.tensor([self.cls_id, *text, self.sep_id])
        return ids, ids == self.pad_id

    def mask(self, tokens: Tensor, generator: torch.Generator, rank: int = 0,
             world_size: int = 1) -> tuple[Tensor, Tensor]:
        """(inputs, targets) from sequences [B, T]: MASK_RATE of the non-special positions chosen, and of those
        MASK_TOKEN_SHARE replaced by [MASK], RANDOM_TOKEN_SHARE by a random token, the rest kept; targets hold
        the original token at the chosen positions and IGNORE_INDEX elsewhere.

        In a distributed run `tokens` is rank `rank`'s block of the global batch: the random draws cover the
        whole global batch and the rank keeps its rows, so every rank's generator advances alike and the ranks
        together mask as one process would."""
        B, T = tokens.shape
        rows = slice(rank * B, (rank + 1) * B)
        choose, action = torch.rand(2, world_size * B, T, generator=generator)[:, rows]
        pick = torch.randint(len(self.random_ids), (world_size * B, T), generator=generator)[rows]
        chosen = (choose < MASK_RATE) & ~torch.isin(tokens, torch.tensor(self.special_ids))
        inputs = tokens.clone()
        inputs[chosen & (action < MASK_TOKEN_SHARE)] = self.mask_id
        randomised = chosen & (action >= MASK_TOKEN_SHARE) & (action < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE)
        inputs[randomised] = self.random_ids[pick[randomised]]
        return inputs, torch.where(chosen, tokens, IGNORE_INDEX)
