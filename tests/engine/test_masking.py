"""Masked-LM data (lmcore.masking, MaskedWindows): BERT's 15% / 80-10-10 masking, framing and padding, and batches
that replay from their generator's state."""
import numpy as np
import pytest
import torch

from lmcore.batches import MaskedWindows, evaluation_batches, rank_windows
from lmcore.errors import CorpusError, TokenizerError
from lmcore.masking import MASK_RATE, MASK_TOKEN_SHARE, RANDOM_TOKEN_SHARE, MaskedLM
from lmcore.models import IGNORE_INDEX
from lmcore.tokenizers import CharTokenizer

TEXT_VOCAB = 40  # ids 1..39 are text, 0 is <unk>; the special tokens follow, as with_special_tokens puts them
MLM = MaskedLM(cls_id=40, sep_id=41, mask_id=42, pad_id=43, vocab_size=44, unk_id=0)


def windows(B=512, W=30, seed=0):
    return torch.randint(1, TEXT_VOCAB, (B, W), generator=torch.Generator().manual_seed(seed))


def test_masking_statistics_over_many_batches_are_berts():
    generator = torch.Generator().manual_seed(1)
    chosen = masked = randomised = kept = real = 0
    for batch in range(40):  # 40 x 512 sequences of 30 text tokens: about 92,000 chosen
        tokens = MLM.frame(windows(seed=batch))
        inputs, targets = MLM.mask(tokens, generator)
        picked = targets != IGNORE_INDEX
        assert torch.equal(targets[picked], tokens[picked])  # the target is the original token
        assert torch.equal(inputs[~picked], tokens[~picked])  # nothing else changes
        assert not picked[:, 0].any() and not picked[:, -1].any()  # [CLS] and [SEP] are never chosen
        real += tokens[:, 1:-1].numel()
        chosen += int(picked.sum())
        masked += int((inputs[picked] == MLM.mask_id).sum())
        changed = (inputs[picked] != MLM.mask_id) & (inputs[picked] != tokens[picked])
        randomised += int(changed.sum())
        kept += int((inputs[picked] == tokens[picked]).sum())
        replaced = inputs[picked][changed]
        assert bool(((replaced >= 1) & (replaced < TEXT_VOCAB)).all())  # a random text token: no special, no <unk>
    assert chosen / real == pytest.approx(MASK_RATE, abs=0.003)
    assert masked / chosen == pytest.approx(MASK_TOKEN_SHARE, abs=0.01)
    # a random token equals the original 1 time in 39, and then counts as kept
    assert randomised / chosen == pytest.approx(RANDOM_TOKEN_SHARE * 38 / 39, abs=0.006)
    assert kept / chosen == pytest.approx(1 - MASK_TOKEN_SHARE - RANDOM_TOKEN_SHARE * 38 / 39, abs=0.006)


def test_special_tokens_are_never_chosen_wherever_they_stand():
    tokens = MLM.frame(windows())
    tokens[:, 5::3] = MLM.pad_id  # padding (and any special token) in the middle of the text too
    tokens[:, 7::5] = MLM.mask_id
    _, targets = MLM.mask(tokens, torch.Generator().manual_seed(0))
    picked = targets != IGNORE_INDEX
    assert picked.any() and not torch.isin(tokens[picked], torch.tensor(MLM.special_ids)).any()


def test_the_same_generator_state_gives_the_same_masking():
    tokens = MLM.frame(windows(B=8))
    first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = MLM.mask(tokens, first), MLM.mask(tokens, second)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(MLM.mask(tokens, first)[1], a[1])  # and the generator moves on


def test_ranks_mask_their_blocks_as_one_process_masks_the_whole_batch():
    tokens = MLM.frame(windows(B=6))
    whole = MLM.mask(tokens, torch.Generator().manual_seed(3))
    generators = [torch.Generator().manual_seed(3) for _ in range(3)]
    parts = [MLM.mask(tokens[2 * r:2 * r + 2], generators[r], rank=r, world_size=3) for r in range(3)]
    assert torch.equal(torch.cat([p[0] for p in parts]), whole[0])
    assert torch.equal(torch.cat([p[1] for p in parts]), whole[1])
    assert all(torch.equal(g.get_state(), generators[0].get_state()) for g in generators)


def test_frame_and_pad():
    ids, padding = MLM.frame_and_pad([[5, 6, 7], [8]])
    assert ids.tolist() == [[40, 5, 6, 7, 41], [40, 8, 41, 43, 43]]
    assert padding.tolist() == [[False] * 5, [False, False, False, True, True]]
    assert MLM.frame(torch.tensor([[5, 6, 7]])).tolist() == [[40, 5, 6, 7, 41]]


def test_the_masked_lm_comes_from_a_tokenizer_with_special_tokens():
    plain = CharTokenizer("abc")
    with pytest.raises(TokenizerError, match=r"\[MASK\]"):
        MaskedLM.of(plain)
    mlm = MaskedLM.of(plain.with_special_tokens())
    assert (mlm.cls_id, mlm.sep_id, mlm.mask_id, mlm.pad_id, mlm.vocab_size) == (4, 5, 6, 7, 8)
    assert mlm.random_ids.tolist() == [1, 2, 3]


def test_masked_windows_frame_mask_and_replay_from_their_state():
    data = np.arange(1, 1000) % 39 + 1
    batches = MaskedWindows(MLM, data, batch_size=4, context=16, seed=1)
    state = batches.state_dict()
    x, y = batches.next_batch()
    assert x.shape == y.shape == (4, 16) and bool((x[:, 0] == MLM.cls_id).all() and (x[:, -1] == MLM.sep_id).all())
    text = torch.where(y == IGNORE_INDEX, x, y)[:, 1:-1]  # the windows, unmasked: consecutive tokens of the data
    assert bool(((text[:, 1:] - text[:, :-1]) % 39 == 1).all())
    batches.load_state_dict(state)
    x2, y2 = batches.next_batch()
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(CorpusError, match="train.context = 16"):
        MaskedWindows(MLM, data[:15], batch_size=4, context=16, seed=1)


def test_encoder_evaluation_windows_leave_room_for_cls_and_sep():
    data = np.arange(1 + 10 * 14)  # ten windows of 14 text tokens, for sequences of 16
    batches = list(evaluation_batches(data, "encoder", context=16, batch_size=4))
    assert [x.shape for x, _ in batches] == [(4, 14), (4, 14), (2, 14)]
    halves = [rank_windows(data, 16, r, 2, family="encoder") for r in range(2)]
    assert [len(h) for h in halves] == [71, 71] and halves[1][0] == 70
