"""The `lmcore` command line: train, eval, sample, classify, quantize, tokenizer train, runs, settings, export, import.
With --json, eval, runs and sample print one JSON document on stdout and nothing else there (classify: one JSON
line per text)."""
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


def load_for_inference(args):
    """The model that --device, --checkpoint and RUN (plus the runs after it) give: one run's, or with several,
    their ensemble (--mean); its tokenizer, the device its inputs go to, and each run's (model, checkpoint
    metadata)."""
    from .checkpoint import load_trained_model, model_device
    from .device import pick_device
    from .ensemble import load_ensemble

    device = pick_device(args.device)
    if not args.more_runs:
        model, tokenizer, meta = load_trained_model(Path(args.run), args.checkpoint, device)
        return model, tokenizer, model_device(model), [(model, meta)]
    runs = [Path(run) for run in (args.run, *args.more_runs)]
    ensemble, tokenizer, metas = load_ensemble(runs, args.checkpoint, device, args.mean)
    return ensemble, tokenizer, model_device(ensemble), list(zip(ensemble.models, metas, strict=True))


def cmd_eval(args) -> int:
    from .checkpoint import checkpoint_meta, resolve_checkpoint
    from .corpus import encode_with_progress, read_corpus
    from .evaluation import evaluate_ids
    from .masking import MaskedLM
    from .runs import RunFolder

    if "classifier" in checkpoint_meta(resolve_checkpoint(Path(args.run), args.checkpoint)):
        return eval_classifier(args)
    model, tokenizer, device, loaded = load_for_inference(args)
    text, _ = read_corpus([args.data], "--data")
    ids = encode_with_progress(tokenizer, text)
    runs = [args.run, *args.more_runs]
    context = args.context or min(RunFolder(Path(run)).load_config().train.context for run in runs)
    mlm = MaskedLM.of(tokenizer) if model.family == "encoder" else None  # an encoder is scored on masked tokens

    def report(model, run: str, step: int | None) -> dict:
        result = evaluate_ids(model, ids, context, device, mlm=mlm)
        return {"run": run, "checkpoint": args.checkpoint, "step": step, "data": str(args.data),
                "context": context, "tokens": result.tokens, "loss": result.loss, "perplexity": result.perplexity,
                "bits_per_token": result.bits_per_token,
                "bits_per_char": None if mlm else result.bits_per_char(len(text) / len(ids)),
                "masked_accuracy": result.accuracy if mlm else None}

    members = [report(member, str(run), meta["step"]) for run, (member, meta) in zip(runs, loaded, strict=True)]
    if len(members) == 1:
        if args.json:
            print_json(members[0])
            return 0
        print(f"checkpoint step {members[0]['step']}, {members[0]['tokens']:,} tokens of {args.data}")
        print(_eval_line(members[0]))
        return 0
    ensemble = {**report(model, f"ensemble ({args.mean} mean)", None), "mean": args.mean}
    if args.json:
        print_json({"members": members, "ensemble": ensemble})
        return 0
    print(f"{ensemble['tokens']:,} tokens of {args.data}")
    for row in [*members, ensemble]:
        print(row["run"] + (f" (checkpoint step {row['step']})" if row["step"] is not None else ""))
        print("  " + _eval_line(row))
    return 0


def _eval_line(report: dict) -> str:
    last = (f"masked accuracy {report['masked_accuracy']:.4f}" if report["masked_accuracy"] is not None else
            f"bits/token {report['bits_per_token']:.4f}  bits/char {report['bits_per_char']:.4f}")
    return f"loss {report['loss']:.4f} nats/token  perplexity {report['perplexity']:.3f}  {last}"


def eval_classifier(args) -> int:
    """lmcore eval for a classifier: accuracy, macro-F1, per-label precision and recall, the confusion matrix."""
    from .classify import Classifier
    from .device import pick_device
    from .labelled import check_labels, read_labelled
    from .runs import RunFolder

    classifier = Classifier.load(Path(args.run), pick_device(args.device), args.checkpoint)
    c = RunFolder(classifier.run_dir).load_config().classify  # the columns the run's own files used
    rows = read_labelled(args.data, c.text_field, c.label_field, field_name="--data")
    check_labels(rows, classifier.labels, "the classifier's labels")
    report = classifier.evaluate(rows)
    labels = classifier.labels
    if args.json:
        print_json({"run": str(args.run), "checkpoint": args.checkpoint, "data": str(args.data), "texts": len(rows),
                    "labels": labels, **dataclasses.asdict(report)})
        return 0
    width = max(len(label) for label in [*labels, "label"]) + 2
    print(f"{len(rows):,} texts of {args.data}")
    print(f"loss {report.loss:.4f}  accuracy {report.accuracy:.4f}  macro-F1 {report.macro_f1:.4f}\n")
    print(f"{'label':{width}}precision  recall")
    for label, precision, recall in zip(labels, report.precision, report.recall, strict=True):
        print(f"{label:{width}}{precision:9.4f}  {recall:6.4f}")
    print("\nconfusion matrix (a row per true label, a column per predicted one)")
    print(" " * width + "".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, report.confusion, strict=True):
        print(f"{label:{width}}" + "".join(f"{count:>{width}}" for count in row))
    return 0


def cmd_classify(args) -> int:
    from .classify import Classifier
    from .device import pick_device

    texts = [*args.text, *(read_texts(args.file) if args.file else [])]
    if not texts:
        raise LMCoreError("Nothing to classify: give --text TEXT (repeatable) or --file FILE (one text per line).")
    classifier = Classifier.load(Path(args.run), pick_device(args.device), args.checkpoint)
    for text, probabilities in zip(texts, classifier.probabilities(texts), strict=True):
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        if args.json:
            print(json.dumps({"text": text, "label": classifier.labels[best],
                              "probabilities": dict(zip(classifier.labels, probabilities, strict=True))},
                             ensure_ascii=False))
        else:
            print(f"{classifier.describe(probabilities)}\t{text}")
    return 0


def read_texts(path: str) -> list[str]:
    """The non-blank lines of a UTF-8 file ('-': standard input), one text each."""
    return [line.strip() for line in read_text_argument(path, "--file").split("\n") if line.strip()]


def cmd_sample(args) -> int:
    from .generation import generate, generate_batch

    prompt = read_prompt(args)
    model, tokenizer, device, _ = load_for_inference(args)
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


def cmd_quantize(args) -> int:
    from .quantize import quantize_run

    print(quantize_run(Path(args.run), Path(args.out) if args.out else None, args.checkpoint))
    return 0


def read_prompt(args) -> str:
    """--prompt's text, or --prompt-file's (UTF-8; '-' reads standard input), exactly: a final newline stays."""
    if args.prompt_file is None:
        return args.prompt
    return read_text_argument(args.prompt_file, "--prompt-file")


def read_text_argument(path: str, option: str) -> str:
    """The text of the UTF-8 file an option names ('-': standard input), exactly, or an LMCoreError naming it."""
    try:
        if path == "-":
            return sys.stdin.read()
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LMCoreError(f"{option} {path}: {exc.strerror or exc}; give a readable text file, or "
                          "- for standard input.") from None
    except UnicodeDecodeError as exc:
        raise LMCoreError(f"{option} {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
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


def cmd_export(args) -> int:
    """lmcore export RUN --to hf|onnx|safetensors DIR; lmcore export tensorboard RUN... (also --to tensorboard)."""
    from .interop import EXPORT_FORMATS, export_run

    # argparse takes the folder after --to FORMAT as the option's (it never returns to positionals after an option)
    to, paths = (args.to[0], args.paths + args.to[1:]) if args.to else (None, list(args.paths))
    if to is None and paths[0] == "tensorboard":
        to, paths = "tensorboard", paths[1:]
    if to == "tensorboard":
        return export_tensorboard(paths, args.replace)
    if to not in EXPORT_FORMATS or len(paths) != 2:
        raise LMCoreError(f"lmcore export {' '.join(paths)} --to {to}: give a run, a format (hf, onnx, safetensors) "
                          "and a folder: lmcore export RUN --to hf|onnx|safetensors DIR (or lmcore export "
                          "tensorboard RUN...).")
    files = export_run(Path(paths[0]), to, Path(paths[1]), args.checkpoint)
    print(f"{paths[0]}: wrote {len(files)} file(s) to {paths[1]}: " + ", ".join(p.name for p in files))
    return 0


def export_tensorboard(runs: list[str], replace: bool) -> int:
    from .tensorboard import export_run, summary_writer_class

    if not runs:
        raise LMCoreError("Give the run folders to write TensorBoard files for: lmcore export tensorboard RUN...")
    summary_writer_class()  # the package is there, or say what to install
    for run in runs:
        print(f"{run}: wrote {export_run(Path(run), replace=replace)}")
    return 0


def cmd_import(args) -> int:
    from .interop import import_huggingface, import_nanogpt

    if args.kind == "hf":
        run = import_huggingface(Path(args.source), args.runs_dir, args.name, args.tokenizer)
    else:
        run = import_nanogpt(Path(args.source), args.runs_dir, args.name, args.corpus, args.tokenizer, args.n_head)
    print(f"imported {args.source} as run {run}")
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


def add_ensemble_options(parser: argparse.ArgumentParser, what: str) -> None:
    from .ensemble import MEANS

    parser.add_argument("more_runs", nargs="*", metavar="RUN", help=f"more runs sharing its tokenizer: {what}")
    parser.add_argument("--mean", default=MEANS[0], choices=MEANS,
                        help="with several runs, mix their next-token distributions by the mean of the "
                             "probabilities (the default) or of the log-probabilities")


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

    evaluate = commands.add_parser("eval", help="loss, perplexity and bits per character of a run on a text file; "
                                                "a classifier's accuracy, macro-F1 and confusion matrix on labelled "
                                                "data")
    evaluate.add_argument("run", help="a run folder or checkpoint file")
    add_ensemble_options(evaluate, "each is evaluated, and their ensemble")
    evaluate.add_argument("--data", required=True,
                          help="a .txt file to evaluate on (a classifier: a labelled .tsv, .csv or .jsonl file)")
    evaluate.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    evaluate.add_argument("--context", type=int, default=0, help="tokens per window (default: the run's)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON object")
    evaluate.set_defaults(func=cmd_eval)

    classify = commands.add_parser("classify", help="label texts with a trained classifier (task = \"classify\")")
    classify.add_argument("run", help="a classifier's run folder or checkpoint file")
    classify.add_argument("--text", action="append", default=[], help="a text to classify (repeatable)")
    classify.add_argument("--file", metavar="FILE", help="classify each line of this UTF-8 file; - reads standard input")
    classify.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    classify.add_argument("--device", default="auto")
    classify.add_argument("--json", action="store_true",
                          help="one JSON object per text (JSON lines): its text, label and each label's probability")
    classify.set_defaults(func=cmd_classify)

    sampling = SamplingSettings()  # the defaults, as the Generate tab has them too
    sample = commands.add_parser("sample", help="generate text from a trained run (or from several together)")
    sample.add_argument("run", help="a run folder or checkpoint file")
    add_ensemble_options(sample, "samples come from their ensemble")
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

    quantize = commands.add_parser("quantize", help="write an int8 copy of a run, for inference on the CPU")
    quantize.add_argument("run", help="a run folder or checkpoint file")
    quantize.add_argument("--out", help="the new run folder (default: RUN-int8 beside the run)")
    quantize.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    quantize.set_defaults(func=cmd_quantize)

    tokenizer = commands.add_parser("tokenizer", help="tokenizer tools")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", required=True)
    tok_train = tokenizer_commands.add_parser("train", help="train a tokenizer on text files and save it")
    tok_train.add_argument("data", nargs="+", help=".txt files or folders")
    tok_train.add_argument("--out", required=True, help="folder to write lmcore-tokenizer.json (+ tokenizer.model)")
    add_setting_options(tok_train, TokenizerConfig)
    tok_train.set_defaults(func=cmd_tokenizer_train)

    settings = commands.add_parser("settings", help="every setting of a config file: default, range, what it does")
    settings.add_argument("--markdown", action="store_true", help="as Markdown (docs/configuration.md)")
    settings.set_defaults(func=cmd_settings)

    runs = commands.add_parser("runs", help="list the runs in a runs folder")
    runs.add_argument("--runs-dir", default=RunConfig().runs_dir)
    runs.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    runs.set_defaults(func=cmd_runs)

    export = commands.add_parser(
        "export", help="a run's model for another tool (hf, onnx, safetensors), or its metrics for TensorBoard",
        usage="lmcore export RUN --to {hf,onnx,safetensors} DIR\n       lmcore export tensorboard RUN [RUN ...] "
              "[--replace]",
        description="lmcore export RUN --to hf DIR: a Hugging Face folder for a GPT run, a GPT2LMHeadModel (learned or "
                    "sinusoidal positions) or a GPTNeoXForCausalLM (rotary positions), with its tokenizer; --to onnx: DIR/model.onnx, input_ids "
                    "to logits, checked with onnxruntime (pip install 'lm-workbench[onnx]'); --to safetensors: the "
                    "weights alone with the model config and the tokenizer, no optimizer state.\n\n"
                    "lmcore export tensorboard RUN...: TensorBoard event files in RUN/tensorboard/ for runs trained "
                    "without train.tensorboard, from metrics.jsonl and config.toml: the scalars of every step and "
                    "evaluation, and the config as hparams with the final results (no text samples: only a run "
                    "trained with train.tensorboard = true has them). Needs pip install 'lm-workbench[tensorboard]'. "
                    "Then: tensorboard --logdir RUNS_DIR",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("paths", nargs="+", metavar="RUN DIR", help="a run folder (or checkpoint file) and the "
                                                                      "folder to write; or tensorboard and run folders")
    export.add_argument("--to", nargs="+", metavar=("FORMAT", "DIR"),
                        help="the format: hf, onnx, safetensors (or tensorboard), then the folder to write")
    export.add_argument("--checkpoint", default=CHECKPOINTS[0], choices=CHECKPOINTS)
    export.add_argument("--replace", action="store_true",
                        help="tensorboard: delete the TensorBoard files a run already has and write them afresh")
    export.set_defaults(func=cmd_export)

    imports = commands.add_parser("import", help="a GPT-2 (Hugging Face folder) or nanoGPT checkpoint as a new run",
                                  description="Import a model from files on disk (nothing is downloaded) as a run: "
                                              "it then generates, evaluates, shows its attention and fine-tunes "
                                              "(init_from) like any other.")
    import_kinds = imports.add_subparsers(dest="kind", required=True)
    hf = import_kinds.add_parser("hf", help="a Hugging Face GPT-2 or GPT-NeoX folder (of the shape lmcore exports): "
                                            "config.json, model.safetensors, tokenizer.json (or vocab.json + "
                                            "merges.txt)")
    hf.add_argument("source", metavar="DIR", help="the model's folder")
    nanogpt = import_kinds.add_parser("nanogpt", help="a nanoGPT checkpoint (ckpt.pt), read without unpickling code")
    nanogpt.add_argument("source", metavar="CKPT", help="nanoGPT's ckpt.pt (or a saved state dict)")
    nanogpt.add_argument("--corpus", metavar="FILE", help="a character model's corpus (nanoGPT's input.txt): its "
                                                          "vocabulary is rebuilt from it as prepare.py builds it")
    nanogpt.add_argument("--n-head", type=int, help="attention heads, for a bare state dict without model_args")
    for kind in (hf, nanogpt):
        kind.add_argument("--tokenizer", metavar="PATH", help="a tokenizer.json, or a folder with it or GPT-2's "
                                                              "vocab.json + merges.txt (default for hf: DIR's own)")
        kind.add_argument("--name", help="the run's name (default: the folder's or file's)")
        kind.add_argument("--runs-dir", default=RunConfig().runs_dir)
    imports.set_defaults(func=cmd_import)
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
