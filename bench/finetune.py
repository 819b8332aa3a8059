"""Does pre-training on unlabelled text help a classifier? On the bundled sentiment set (resources/labelled/sentiment),
the same classifier (a small character-level GPT with a linear head over its mean hidden state) is trained (a) from
scratch and (b) from a model pre-trained as a language model on the training split's review texts without their
labels, each with 100% and with 10% (stratified, seeded) of the training labels, for the same steps with the same
seed. Prints the validation accuracy of the four and the pre-training's wall time.

    python bench/finetune.py            # about 10 minutes on two quiet CPU cores
    python bench/finetune.py --quick    # fewer steps: a smoke test of the script, not a result
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lmcore.config import config_from_dict  # noqa: E402
from lmcore.labelled import read_labelled, stratified_split  # noqa: E402
from lmcore.trainer import Trainer  # noqa: E402

DATA = ROOT / "resources" / "labelled" / "sentiment"
MODEL = {"family": "transformer", "n_layer": 2, "n_head": 4, "n_embd": 64, "context_length": 64, "dropout": 0.1,
         "positional": "rotary"}  # 64 characters: most of a review sentence
SEED = 1337


def settings(name: str, runs_dir: Path, steps: int, **top) -> dict:
    """The settings all five runs share: the model, the optimiser, the seed, the device."""
    return {"name": name, "runs_dir": str(runs_dir), **top, "tokenizer": {"kind": "char"}, "model": MODEL,
            "optim": {"lr": 2e-3}, "schedule": {"kind": "cosine", "warmup_steps": 20, "min_lr": 2e-4},
            "train": {"batch_size": 32, "context": MODEL["context_length"], "max_steps": steps, "eval_interval": steps, "seed": SEED,
                      "device": "cpu"}}


def pretrain(folder: Path, steps: int) -> tuple[Path, float]:
    """A character GPT trained on the training split's texts alone: its run folder and wall time."""
    corpus = folder / "reviews.txt"
    corpus.write_text("\n".join(row.text for row in read_labelled(DATA / "train.tsv")) + "\n", encoding="utf-8")
    config = config_from_dict({**settings("pretrain", folder / "runs", steps), "data": {"train": [str(corpus)]}})
    start = time.perf_counter()
    trainer = Trainer.new(config)
    if trainer.run() != "finished":
        raise SystemExit(f"pre-training failed: {trainer.folder.read_status().get('message')}")
    return trainer.folder.path, time.perf_counter() - start


def classify(folder: Path, name: str, train: Path, steps: int, init_from: str = "") -> float:
    """The best validation accuracy of a classifier trained for `steps` on `train`."""
    raw = settings(name, folder / "runs", steps, task="classify", init_from=init_from)
    raw["train"]["eval_interval"] = max(steps // 4, 1)
    raw["data"] = {"train": [str(train)], "val": [str(DATA / "val.tsv")]}
    raw["classify"] = {"pooling": "mean", "body_lr_scale": 1.0}
    trainer = Trainer.new(config_from_dict(raw))
    best = []
    trainer.subscribe(lambda e: best.append(e.accuracy) if type(e).__name__ == "ClassifyMetrics" else None)
    if trainer.run() != "finished":
        raise SystemExit(f"{name} failed: {trainer.folder.read_status().get('message')}")
    return max(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each, to check the script runs")
    args = parser.parse_args()
    pretrain_steps, steps = (10, 8) if args.quick else (300, 150)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = read_labelled(DATA / "train.tsv")
        tenth = folder / "train-10pct.tsv"
        tenth.write_text("text\tlabel\n" + "".join(f"{r.text}\t{r.label}\n" for r in
                                                    stratified_split(rows, 0.1, SEED)[1]), encoding="utf-8")
        source, pretrain_s = pretrain(folder, pretrain_steps)
        results = []
        for share, train in (("100%", DATA / "train.tsv"), ("10%", tenth)):
            labels = len(read_labelled(train))
            scratch = classify(folder, "scratch", train, steps)
            pretrained = classify(folder, "pretrained", train, steps, init_from=str(source))
            results.append((share, labels, scratch, pretrained))
    print(f"\nsentiment, validation accuracy ({len(read_labelled(DATA / 'val.tsv'))} sentences); "
          f"{steps} classifier steps each, seed {SEED}")
    print(f"{'labels':>14} {'(a) scratch':>12} {'(b) pre-trained':>16}")
    for share, labels, scratch, pretrained in results:
        print(f"{share:>5} ({labels:>5,}) {scratch:>12.1%} {pretrained:>16.1%}")
    print(f"pre-training: {pretrain_steps} steps on the training split's texts, {pretrain_s:.0f} s wall time")


if __name__ == "__main__":
    main()
