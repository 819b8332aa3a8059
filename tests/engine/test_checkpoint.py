import json

import pytest
import torch
from safetensors.torch import save_file

from lmcore.checkpoint import (Checkpoint, load_checkpoint, optimizer_from_tensors, optimizer_to_tensors,
                               save_checkpoint)
from lmcore.errors import CheckpointError
from lmcore.models import TransformerConfig, build_model


def tiny_model():
    torch.manual_seed(0)
    return build_model(TransformerConfig(vocab_size=11, n_layer=1, n_head=2, n_embd=16, context_length=8))


def test_round_trip_keeps_weights_tied_weights_optimizer_and_metadata(tmp_path):
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randint(0, 11, (2, 8)), targets=torch.randint(0, 11, (2, 8))).loss.backward()
    optimizer.step()
    tensors, hyper = optimizer_to_tensors(optimizer)
    path = tmp_path / "ck.safetensors"
    rng = torch.get_rng_state()
    save_checkpoint(path, Checkpoint({"step": 5, "optimizer": hyper}, model.state_dict(), tensors,
                                     {"rng.torch": rng}), summary={"step": 5})
    loaded = load_checkpoint(path)
    assert loaded.meta["step"] == 5 and json.loads(path.with_suffix(".json").read_text())["step"] == 5
    fresh = tiny_model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    fresh.load_state_dict(loaded.model)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))
    assert fresh.wte.weight.data_ptr() == fresh.output.proj.weight.data_ptr()  # still tied after loading
    again = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    optimizer_from_tensors(again, loaded.optimizer, loaded.meta["optimizer"])
    for old_param, new_param in zip(model.parameters(), fresh.parameters(), strict=True):
        a, b = optimizer.state[old_param], again.state[new_param]
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert torch.equal(loaded.extra["rng.torch"], rng)


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    model = tiny_model()
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, Checkpoint({"step": 1}, model.state_dict()))
    before = path.read_bytes()

    def crash(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("lmcore.fileio.os.replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, Checkpoint({"step": 2}, model.state_dict()))
    assert path.read_bytes() == before and load_checkpoint(path).meta["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temp file left behind


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "corrupt or truncated"),
    (lambda b: b"not a checkpoint at all", "corrupt or truncated"),
])
def test_damaged_checkpoints_are_explained(tmp_path, damage, message):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, Checkpoint({"step": 1}, tiny_model().state_dict()))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_a_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an LM Workbench checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_is_explained(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_checkpoints_hold_no_pickle(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, Checkpoint({"step": 1}, tiny_model().state_dict()))
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_len])
    assert json.loads(header["__metadata__"]["lmcore"])["format"] == "lmcore-checkpoint"
    assert b"\x80\x04" not in path.read_bytes()[:8 + header_len]  # no pickle protocol marker in the header
