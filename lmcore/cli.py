"""The `lmcore` command line: train, eval, sample, tokenizer train, runs, settings, export tensorboard. With --json,
eval, runs and sample print one JSON document on stdout and nothing else there."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import typing
from pathlib import Path
from typing import Any

from .config import RunConfig, settings_markdown, settings_text
from .errors import LMCoreError
from .generation import SamplingSettings
from .progress import ProgressBar
from .tokenizers import TokenizerConfig

CHECKPOINTS = ("best", "last")
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130


def cmd_train(args) -> int:
    from .event_stream import report_failure, stream_events

    try:
        trainer = _make_trainer(args)
    except LMCoreError as exc:
        if args.events:
            report_failure(str(exc))
        raise
    if args.events:
        stream_events(trainer, resumed=bool(args.resume))
    else:
        trainer.subscribe(ProgressBar(quiet=args.quiet))
    # Ctrl-C asks for a clean stop (checkpoint saved) instead of killing the run mid-step, and the exit code says
    # so, as a shell's does for a program ended by Ctrl-C: a script can tell a stopped run from a finished one.
    interrupted = []

    def stop(*_) -> None:
        interrupted.append(True)
        trainer.request_stop()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        status = trainer.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    if status == "stopped" and interrupted:
        return EXIT_INTERRUPTED
    return 0 if status in ("finished", "stopped") else 1


def _make_trainer(args):
    from . import tensorboard
    from .config import load_config
    from .trainer import Trainer

    if args.resume:
        trainer = Trainer.resume(args.resume, args.set)
        for change in trainer.changed_settings:
            print(f"resuming with {change}", file=sys.stderr)
    elif not args.config:
        raise LMCoreError("Give a config file (lmcore train CONFIG.toml) or --resume RUN_FOLDER.")
    else:
        config = load_config(args.config, args.set)
        tensorboard.check(config)  # before the run folder is made
        trainer = Trainer.new(config, runs_dir=args.runs_dir)
    tensorboard.attach(trainer)  # with train.tensorboard = true: the window's runs too (lmcore train --events -)
    return trainer


def cmd_eval(args) -> int:
    from .corpus import encode_with_progress, read_corpus
    from .device import pick_device
    from .checkpoint import load_trained_model
    from .evaluation import evaluate_ids
    from .masking import MaskedLM
    from .runs import RunFolder

    device = pick_device(args.device)
    model, tokenizer, meta = load_trained_model(Path(args.run), args.checkpoint, device)
    text, _ = read_corpus([args.data], "--data")
    ids = encode_with_progress(tokenizer, text)
    context = args.context or RunFolder(Path(args.run)).load_config().train.context
    mlm = MaskedLM.of(tokenizer) if model.family == "encoder" else None  # an encoder is scored on masked tokens
    result = evaluate_ids(model, ids, context, device, mlm=mlm)
    report = {"run": str(args.run), "checkpoint": args.checkpoint, "step": meta["step"], "data": str(args.data),
              "context": context, "tokens": result.tokens, "loss": result.loss, "perplexity": result.perplexity,
              "bits_per_token": result.bits_per_token,
              "bits_per_char": None if mlm else result.bits_per_char(len(text) / len(ids)),
              "masked_accuracy": result.accuracy if mlm else None}
    if args.json:
        print_json(report)
        return 0
    print(f"checkpoint step {report['step']}, {result.tokens:,} tokens of {args.data}")
    last = (f"masked accuracy {result.accuracy:.4f}" if mlm else
            f"bits/token {result.bits_per_token:.4f}  bits/char {report['bits_per_char']:.4f}")
    print(f"loss {result.loss:.4f} nats/token  perplexity {result.perplexity:.3f}  {last}")
    return 0


def cmd_sample(args) -> int:
    from .device import pick_device
    from .generation import generate, generate_batch
    from .checkpoint import load_trained_model

    prompt = read_prompt(args)
    device = pick_device(args.device)
    model, tokenizer, _ = load_trained_model(Path(args.run), args.checkpoint, device)
    settings = SamplingSettings(args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                                args.repetition_penalty, args.greedy, args.seed, args.stop)
    if args.num_samples == 1 and not args.json:  # streamed as it is generated
        sys.stdout.write(prompt)
        for token in generate(model, tokenizer, prompt, settings, device):
            sys.stdout.write(token.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    samples = generate_batch(model, tokenizer, prompt, settings, args.num_samples, device)
    if args.json:
        print_json([{"seed": sample.seed, "prompt": prompt, "text": sample.text,
                     "tokens": [{"id": t.id, "text": t.text, "probability": t.probability} for t in sample.tokens]}
                    for sample in samples])
        return 0
    for i, sample in enumerate(samples):
        print(f"--- sample {i + 1} of {len(samples)} (seed {sample.seed}) ---")
        print(prompt + sample.text)
    return 0


def read_prompt(args) -> str:
    """--prompt's text, or --prompt-file's (UTF-8; '-' reads standard input), exactly: a final newline stays."""
    if args.prompt_file is None:
        return args.prompt
    try:
        if args.prompt_file == "-":
            return sys.stdin.read()
        return Path(args.prompt_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise LMCoreError(f"--prompt-file {args.prompt_file}: {exc.strerror or exc}; give a readable text file, or "
                          "- for standard input.") from None
    except UnicodeDecodeError as exc:
        raise LMCoreError(f"--prompt-file {args.prompt_file} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                          "save it as UTF-8.") from None


def print_json(document: Any) -> None:
    """One JSON document on stdout, and nothing else there. A number that is not finite (JSON has none) is null."""
    def finite(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [finite(item) for item in value]
        return value

    print(json.dumps(finite(document), indent=2, ensure_ascii=False))


def cmd_tokenizer_train(args) -> int:
    from .corpus import read_corpus
    from .tokenizers import train_tokenizer

    config = TokenizerConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TokenizerConfig)})
    config.validate()
    text, _ = read_corpus(args.data, "data")
    tokenizer = train_tokenizer(config, text, progress=lambda message: print(message, file=sys.stderr))
    tokenizer.save(Path(args.out))
    ids = tokenizer.encode(text[:100_000], unknown="replace")
    print(f"{tokenizer.kind} tokenizer with {tokenizer.vocab_size:,} tokens saved to {args.out} "
          f"({min(len(text), 100_000) / max(len(ids), 1):.2f} characters per token on the first 100k characters)")
    return 0


def cmd_runs(args) -> int:
    from .runs import list_runs

    runs = list_runs(Path(args.runs_dir))
    if args.json:
        print_json([{**dataclasses.asdict(run), "path": str(run.path)} for run in runs])
        return 0
    if not runs:
        print(f"No runs in {args.runs_dir}.")
        return 0
    print(f"{'run':40} {'model':12} {'params':>10} {'step':>7} {'best val':>9}  status")
    for run in runs:
        best = f"{run.best_val_loss:.4f}" if run.best_val_loss is not None else "-"
        print(f"{run.name:40} {run.family:12} {run.parameters:>10,} {run.step:>7} {best:>9}  {run.status}")
    return 0


def cmd_export_tensorboard(args) -> int:
    from .tensorboard import export_run, summary_writer_class

    summary_writer_class()  # the package is there, or say what to install
    for run in args.runs:
        print(f"{run}: wrote {export_run(Path(run), replace=args.replace)}")
    return 0


def cmd_settings(args) -> int:
    sys.stdout.write(settings_markdown() if args.markdown else settings_text())
    return 0


def add_setting_options(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One option per field of the settings dataclass `config_class` (--vocab-size for vocab_size), with the field's
    default, choices and help."""
    hints = typing.get_type_hints(config_class)
    for f in dataclasses.fields(config_class):
        flag, hint, help = "--" + f.name.replace("_", "-"), hints[f.name], f.metadata["help"].replace("%", "%%")
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help)
        else:
            parser.add_argument(flag, type=hint, default=f.default, choices=f.metadata.get("choices"),
                                help=f"{help} (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lmcore", description="Train, evaluate and sample language models.")
    parser.add_argument("--version", action="version", version=f"lmcore {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a TOML config (or resume a run)",
                                description="Train a model. Example: lmcore train resources/presets/baby-gpt-char.toml "
                                            "--set train.max_steps=500",
                                epilog="The settings of a config file (each also for --set):\n\n" + settings_text(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("config", nargs="?", help="a TOML config file (see resources/presets)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set train.batch_size=32 (repeatable); with --resume only "
                            "train.max_steps, train.eval_interval, train.log_interval and train.eval_batches")
    train.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last checkpoint")
    train.add_argument("--runs-dir", help="where run folders go (default: the config's runs_dir)")
    train.add_argument("--quiet", action="store_true", help="no progress output (a failure is still shown)")
    train.add_argument("--events", choices=["-"], metavar="-",
                       help="'-': write events as JSON lines to stdout and obey control lines from stdin, for a "
                            "supervising program (see docs/event-protocol.md); no progress bar")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="loss, perplexity and bits per character of a run on a text file")
    evaluate.add_argument("run", help="a run folder or checkpoint file")
    evaluate.add_argument("--data", required=True, help="a .txt file to evaluate on")
    evaluate.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    evaluate.add_argument("--context", type=int, default=0, help="tokens per window (default: the run's)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON object")
    evaluate.set_defaults(func=cmd_eval)

    sampling = SamplingSettings()  # the defaults, as the Generate tab has them too
    sample = commands.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run", help="a run folder or checkpoint file")
    prompt = sample.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="text to continue")
    prompt.add_argument("--prompt-file", metavar="FILE",
                        help="continue the text of this UTF-8 file, exactly (a final newline too); - reads it from "
                             "standard input")
    sample.add_argument("--num-samples", type=int, default=1, metavar="N",
                        help="N samples, generated together as one batch; sample i uses seed --seed + i")
    sample.add_argument("--max-new-tokens", type=int, default=sampling.max_new_tokens)
    sample.add_argument("--temperature", type=float, default=sampling.temperature)
    sample.add_argument("--top-k", type=int, default=sampling.top_k, help="keep the k most likely tokens (0: all)")
    sample.add_argument("--top-p", type=float, default=sampling.top_p, help="nucleus sampling threshold (1: off)")
    sample.add_argument("--repetition-penalty", type=float, default=sampling.repetition_penalty)
    sample.add_argument("--greedy", action="store_true", default=sampling.greedy,
                        help="always take the most likely token")
    sample.add_argument("--seed", type=int, default=sampling.seed)
    sample.add_argument("--stop", action="append", default=sampling.stop,
                        help="stop when the output contains this (repeatable)")
    sample.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    sample.add_argument("--device", default="auto")
    sample.add_argument("--json", action="store_true",
                        help="print a JSON list of the samples, each with its seed, text and tokens (id, text and "
                             "probability under the model, before temperature and filtering)")
    sample.set_defaults(func=cmd_sample)

    tokenizer = commands.add_parser("tokenizer", help="tokenizer tools")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", required=True)
    tok_train = tokenizer_commands.add_parser("train", help="train a tokenizer on text files and save it")
    tok_train.add_argument("data", nargs="+", help=".txt files or folders")
    tok_train.add_argument("--out", required=True, help="folder to write tokenizer.json (+ tokenizer.model)")
    add_setting_options(tok_train, TokenizerConfig)
    tok_train.set_defaults(func=cmd_tokenizer_train)

    settings = commands.add_parser("settings", help="every setting of a config file: default, range, what it does")
    settings.add_argument("--markdown", action="store_true", help="as Markdown (docs/configuration.md)")
    settings.set_defaults(func=cmd_settings)

    runs = commands.add_parser("runs", help="list the runs in a runs folder")
    runs.add_argument("--runs-dir", default=RunConfig().runs_dir)
    runs.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    runs.set_defaults(func=cmd_runs)

    export = commands.add_parser("export", help="write a run's metrics in another tool's format")
    export_commands = export.add_subparsers(dest="export_command", required=True)
    tensorboard = export_commands.add_parser(
        "tensorboard", help="TensorBoard event files in RUN/tensorboard/, from metrics.jsonl and config.toml",
        description="Write TensorBoard event files for runs trained without train.tensorboard: the scalars of every "
                    "step and evaluation, and the config as hparams with the final results. There are no text "
                    "samples: only a run trained with train.tensorboard = true has them. Needs pip install "
                    "'lm-workbench[tensorboard]'. Then: tensorboard --logdir RUNS_DIR")
    tensorboard.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    tensorboard.add_argument("--replace", action="store_true",
                             help="delete the TensorBoard files a run already has and write them afresh")
    tensorboard.set_defaults(func=cmd_export_tensorboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LMCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
