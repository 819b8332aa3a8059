"""Does pre-training on unlabelled text help a classifier? On the bundled sentiment set (resources/labelled/sentiment),
the same classifier (a small character-level GPT with a linear head over its mean hidden state) is trained (a) from
scratch and (b) from a model pre-trained as a language model on unlabelled text (the training split's review texts
without their labels, and the bundled tinyshakespeare.txt), each with 100% and with 10% (stratified, seeded) of the
training labels, for the same steps with the same seeds. Prints the validation accuracy of the four, the mean over
SEEDS, and the pre-training's wall time.

    OMP_NUM_THREADS=1 python bench/finetune.py           # about 6 minutes on a CPU core
    OMP_NUM_THREADS=1 python bench/finetune.py --quick   # fewer steps: a smoke test of the script, not a result

One thread: these models are small, and on a shared machine two threads that wait on each other ran 5x slower.
"""
from __future__ import annotations

import argparse
import statistics
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
SHAKESPEARE = ROOT / "resources" / "corpora" / "tinyshakespeare.txt"
MODEL = {"family": "transformer", "n_layer": 2, "n_head": 4, "n_embd": 64, "context_length": 64, "dropout": 0.1,
         "positional": "rotary"}  # 64 characters: most of a review sentence
SEEDS = (1337, 1338, 1339)  # the classifiers'; a single run on 300 validation sentences moves by a few points


def settings(name: str, runs_dir: Path, steps: int, seed: int, **top) -> dict:
    """The settings every run shares: the tokenizer, the model, the optimiser, the device."""
    return {"name": name, "runs_dir": str(runs_dir), **top, "tokenizer": {"kind": "char"}, "model": MODEL,
            "optim": {"lr": 2e-3}, "schedule": {"kind": "cosine", "warmup_steps": 20, "min_lr": 2e-4},
            "train": {"batch_size": 32, "context": MODEL["context_length"], "max_steps": steps,
                      "eval_interval": max(steps // 10, 1), "seed": seed, "device": "cpu"}}


def pretrain(folder: Path, steps: int) -> tuple[Path, float, float]:
    """A character GPT trained on the training split's texts and Shakespeare: its run folder, wall time and final
    validation loss."""
    reviews = folder / "reviews.txt"
    reviews.write_text("\n".join(row.text for row in read_labelled(DATA / "train.tsv")) + "\n", encoding="utf-8")
    raw = settings("pretrain", folder / "runs", steps, SEEDS[0], data={"train": [str(reviews), str(SHAKESPEARE)]})
    raw["train"].update(eval_interval=steps, eval_batches=50)  # one evaluation, on 100k characters: its loss
    start = time.perf_counter()
    trainer = Trainer.new(config_from_dict(raw))
    losses = []
    trainer.subscribe(lambda e: losses.append(e.val_loss) if type(e).__name__ == "EvalMetrics" else None)
    if trainer.run() != "finished":
        raise SystemExit(f"pre-training failed: {trainer.folder.read_status().get('message')}")
    return trainer.folder.path, time.perf_counter() - start, losses[-1]


def classify(folder: Path, name: str, train: Path, steps: int, seed: int, init_from: str = "") -> float:
    """The best validation accuracy (of 10 evaluations) of a classifier trained for `steps` on `train`."""
    raw = settings(name, folder / "runs", steps, seed, task="classify", init_from=init_from)
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
    pretrain_steps, steps = (10, 8) if args.quick else (4000, 300)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = read_labelled(DATA / "train.tsv")
        tenth = folder / "train-10pct.tsv"
        tenth.write_text("text\tlabel\n" + "".join(f"{r.text}\t{r.label}\n" for r in
                                                    stratified_split(rows, 0.1, SEEDS[0])[1]), encoding="utf-8")
        source, pretrain_s, pretrain_loss = pretrain(folder, pretrain_steps)
        results = []
        for share, train in (("100%", DATA / "train.tsv"), ("10%", tenth)):
            runs = [(classify(folder, "scratch", train, steps, seed),
                     classify(folder, "pretrained", train, steps, seed, init_from=str(source))) for seed in SEEDS]
            results.append((share, len(read_labelled(train)), runs))
            print(f"{share}: (scratch, pre-trained) per seed {runs}", flush=True)
    print(f"\nsentiment, validation accuracy ({len(read_labelled(DATA / 'val.tsv'))} sentences); "
          f"{steps} classifier steps each; mean over seeds {', '.join(map(str, SEEDS))}")
    print(f"{'labels':>14} {'(a) scratch':>12} {'(b) pre-trained':>16}")
    for share, labels, runs in results:
        scratch, pretrained = (statistics.mean(run[i] for run in runs) for i in (0, 1))
        print(f"{share:>5} ({labels:>5,}) {scratch:>12.1%} {pretrained:>16.1%}")
    print(f"pre-training: {pretrain_steps} steps on the training split's texts and tinyshakespeare.txt, "
          f"{pretrain_s:.0f} s wall time, validation loss {pretrain_loss:.3f} nats/char")


if __name__ == "__main__":
    main()
