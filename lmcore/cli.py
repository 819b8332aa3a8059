"""The `lmcore` command line: train, eval, sample, tokenizer train, runs, settings."""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
import typing
from pathlib import Path

from . import events as ev
from .config import RunConfig, settings_markdown, settings_text
from .errors import LMCoreError
from .generation import SamplingSettings
from .tokenizers import TokenizerConfig

CHECKPOINTS = ("best", "last")


class ProgressBar:
    """A one-line live progress bar on stderr: step, loss, tokens/s, ETA. Evaluations get their own line.
    `quiet` shows a failure alone: that is never hidden."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream, self.max_steps, self.start_step, self.last_draw = stream or sys.stderr, 1, 0, 0.0
        self.quiet = quiet

    def __call__(self, event) -> None:
        if self.quiet and not isinstance(event, ev.Failed):
            return
        if isinstance(event, ev.Preparing):
            fraction = f" {event.fraction:4.0%}" if event.fraction is not None else ""
            self._line(f"{event.message}{fraction}")
        elif isinstance(event, ev.Started):
            self.max_steps, self.start_step = event.max_steps, event.start_step
            self._print(f"run {event.run_dir}\n  {event.parameters:,} parameters on {event.device}, "
                        f"{event.tokens_per_step:,} tokens/step, steps {event.start_step}..{event.max_steps}")
        elif isinstance(event, ev.StepMetrics):
            now = time.monotonic()
            if now - self.last_draw < 0.1 and event.step != self.max_steps:
                return
            self.last_draw = now
            done = event.step / self.max_steps
            bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
            steps_left = self.max_steps - event.step
            step_time = self.tokens_per_step_time(event)
            eta = _duration(steps_left * step_time) if step_time else "?"
            self._line(f"[{bar}] {event.step}/{self.max_steps} loss {event.loss:.4f} "
                       f"{event.tokens_per_s:,.0f} tok/s ETA {eta}")
        elif isinstance(event, ev.EvalMetrics):
            bpc = f" bpc {event.val_bits_per_char:.3f}" if event.val_bits_per_char is not None else ""
            self._print(f"step {event.step}: val loss {event.val_loss:.4f} ppl {event.val_perplexity:.2f}{bpc}"
                        + (" (best)" if event.best else ""))
        elif isinstance(event, ev.Finished):
            best = f"{event.best_val_loss:.4f}" if event.best_val_loss is not None else "n/a"
            self._print(f"{event.status} at step {event.step}; best val loss {best}; run folder {event.run_dir}")
        elif isinstance(event, ev.Failed):
            self._print(f"failed at step {event.step}: {event.message}")

    def tokens_per_step_time(self, event: ev.StepMetrics) -> float:
        done = event.step - self.start_step
        return event.elapsed / done if done > 0 else 0.0

    def _line(self, text: str) -> None:
        self.stream.write("\r\033[K" + text if self.stream.isatty() else text + "\n")
        self.stream.flush()

    def _print(self, text: str) -> None:
        self.stream.write(("\r\033[K" if self.stream.isatty() else "") + text + "\n")
        self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
    from .config import load_config
    from .trainer import Trainer

    if args.resume:
        trainer = Trainer.resume(args.resume, args.set)
        for change in trainer.changed_settings:
            print(f"resuming with {change}", file=sys.stderr)
        return trainer
    if not args.config:
        raise LMCoreError("Give a config file (lmcore train CONFIG.toml) or --resume RUN_FOLDER.")
    return Trainer.new(load_config(args.config, args.set), runs_dir=args.runs_dir)


def cmd_eval(args) -> int:
    from .corpus import encode_with_progress, read_corpus
    from .device import pick_device
    from .evaluation import evaluate_ids
    from .checkpoint import load_trained_model
    from .runs import RunFolder

    device = pick_device(args.device)
    model, tokenizer, meta = load_trained_model(Path(args.run), args.checkpoint, device)
    text, _ = read_corpus([args.data], "--data")
    ids = encode_with_progress(tokenizer, text)
    context = args.context or RunFolder(Path(args.run)).load_config().train.context
    result = evaluate_ids(model, ids, context, device)
    print(f"checkpoint step {meta['step']}, {result.tokens:,} tokens of {args.data}")
    print(f"loss {result.loss:.4f} nats/token  perplexity {result.perplexity:.3f}  "
          f"bits/token {result.bits_per_token:.4f}  bits/char {result.bits_per_char(len(text) / len(ids)):.4f}")
    return 0


def cmd_sample(args) -> int:
    from .device import pick_device
    from .generation import generate
    from .checkpoint import load_trained_model

    device = pick_device(args.device)
    model, tokenizer, _ = load_trained_model(Path(args.run), args.checkpoint, device)
    settings = SamplingSettings(args.max_new_tokens, args.temperature, args.top_k, args.top_p,
                                args.repetition_penalty, args.greedy, args.seed, args.stop)
    sys.stdout.write(args.prompt)
    for token in generate(model, tokenizer, args.prompt, settings, device):
        sys.stdout.write(token.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


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
    if not runs:
        print(f"No runs in {args.runs_dir}.")
        return 0
    print(f"{'run':40} {'model':12} {'params':>10} {'step':>7} {'best val':>9}  status")
    for run in runs:
        best = f"{run.best_val_loss:.4f}" if run.best_val_loss is not None else "-"
        print(f"{run.name:40} {run.family:12} {run.parameters:>10,} {run.step:>7} {best:>9}  {run.status}")
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
    evaluate.set_defaults(func=cmd_eval)

    sampling = SamplingSettings()  # the defaults, as the Generate tab has them too
    sample = commands.add_parser("sample", help="generate text from a trained run")
    sample.add_argument("run", help="a run folder or checkpoint file")
    sample.add_argument("--prompt", default="", help="text to continue")
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
    runs.set_defaults(func=cmd_runs)
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
