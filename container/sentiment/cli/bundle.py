"""`sentiment-bundle`: train the default model with `train`, as SageMaker would, and bundle it.

    sentiment-bundle --channels data/channels --output container/sentiment/bundled_model [--epochs 5 ...]

Lays out a SageMaker tree in `--work` (config files, the channels, our program in code/), runs the
training toolkit's `train` on it exactly as the image does, then writes the model in float16 (with
its card and metrics) to `--output`, replacing what was there only once the new one is complete.
Extra arguments are hyperparameters, passed the way SageMaker passes them (as strings).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sentiment.artifacts import load_model, save_model
from sentiment.data.channels import CHANNELS, SENTENCES
from sentiment.errors import SentimentError
from sentiment.files import atomic_directory

PROGRAM = Path(__file__).resolve().parent.parent / "program" / "train_sentiment.py"  # the toolkit runs it
BUNDLED_FILES = ("card.json", "card.md", "metrics.json")
MAX_BUNDLE_MB = 25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sentiment-bundle", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--channels",
        type=Path,
        required=True,
        help="folder with train/, validation/, test/, unlabeled/ (and sentences/, when labelled)",
    )
    parser.add_argument("--output", type=Path, required=True, help="where the bundled model goes")
    parser.add_argument(
        "--work", type=Path, default=Path("build/bundle"), help="the SageMaker tree (default: %(default)s)"
    )
    args, hyperparameters = parser.parse_known_args(argv)
    try:
        base = lay_out(args.work, args.channels, _as_strings(hyperparameters))
        run_toolkit(base)
        bundle(base / "model", args.output)
    except (SentimentError, OSError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def lay_out(work: Path, channels: Path, hyperparameters: dict[str, str]) -> Path:
    """A fresh /opt/ml-shaped tree in `work`, its channels linked to `channels`."""
    shutil.rmtree(work, ignore_errors=True)
    config = work / "input" / "config"
    config.mkdir(parents=True)
    for folder in ("model", "output", "checkpoints", "code"):
        (work / folder).mkdir()
    present = [name for name in (*CHANNELS, SENTENCES) if (channels / name).is_dir()]
    if "train" not in present:
        raise SentimentError(f"{channels} has no train/ channel: run `make data` first")
    (work / "input" / "data").mkdir()
    for name in present:
        (work / "input" / "data" / name).symlink_to((channels / name).resolve())
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (config / "inputdataconfig.json").write_text(json.dumps({name: {"TrainingInputMode": "File"} for name in present}))
    shutil.copy(PROGRAM, work / "code" / PROGRAM.name)
    print(f"bundle: SageMaker tree in {work} with channels {', '.join(present)}; hyperparameters {hyperparameters}")
    return work


def run_toolkit(base: Path) -> None:
    """`train` from sagemaker-training, as the image's entry point runs it."""
    toolkit = Path(sys.executable).with_name("train")
    # SM_STUDIO_LOCAL_MODE: outside SageMaker there are no cluster hostnames for the toolkit to wait for.
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base.resolve()),
        "SAGEMAKER_PROGRAM": PROGRAM.name,
        "SM_STUDIO_LOCAL_MODE": "true",
    }
    print(f"bundle: {toolkit}")
    subprocess.run([str(toolkit)], env=env, check=True)
    if (base / "output" / "failure").exists():
        raise SentimentError(f"training failed: {(base / 'output' / 'failure').read_text()}")


def bundle(model: Path, output: Path) -> None:
    """The trained model in float16 plus its card and metrics, swapped into `output` whole."""
    predictor = load_model(model)
    with atomic_directory(output) as staging:
        save_model(predictor, staging, half=True)
        for name in BUNDLED_FILES:
            shutil.copy(model / name, staging / name)
        size = sum(path.stat().st_size for path in staging.iterdir()) / 1e6
        if size > MAX_BUNDLE_MB:
            raise SentimentError(f"the bundled model would take {size:.1f} MB, over the {MAX_BUNDLE_MB} MB limit")
    print(f"bundle: {output} ({size:.1f} MB)")


def _as_strings(flags: list[str]) -> dict[str, str]:
    """["--epochs", "5"] -> {"epochs": "5"}: SageMaker's form of hyperparameters."""
    if len(flags) % 2 or not all(flag.startswith("--") for flag in flags[::2]):
        raise SentimentError(f"hyperparameters must come as --name value pairs, got {' '.join(flags)}")
    return {flag[2:].replace("-", "_"): value for flag, value in zip(flags[::2], flags[1::2], strict=True)}


if __name__ == "__main__":
    sys.exit(main())
