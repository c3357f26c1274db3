"""`sentiment-train`: the training job. SageMaker's toolkit (`train`) runs it with the job's
hyperparameters as flags; people run it the same way, paths taken from the SageMaker contract.

    SAGEMAKER_BASE_DIR=local_test/test_dir sentiment-train --model lstm --epochs 3

Reads the channels (train required; validation carved from train when absent; test, unlabeled and
sentences, soft-labelled short texts for the LSTM, optional), trains, writes the model, its metrics
and card to the model folder and, with a test channel, the evaluation report to the output data
folder. On any failure it writes the reason to
the `failure` file and exits non-zero, before any work when the hyperparameters are wrong.

On several instances (resourceconfig.json naming more than one host) or GPUs, it runs one rank per
GPU of each host (one per host on CPU; `sentiment.distributed`): each reads its part of each channel
(whole files of a ShardedByS3Key channel, a block of the records of a FullyReplicated one) and keeps
its own checkpoints; the master (rank 0, on the first host) alone writes the model, metrics and
evaluation. Every host exits 0 when the job succeeds; when a rank fails, every host that notices
fails too, its failure file naming the host that failed and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sentiment.artifacts import save_model
from sentiment.checkpoints import CheckpointStore
from sentiment.cli.logs import log_lines_to
from sentiment.contract import Cluster, TrainingPaths, channel_distributions
from sentiment.data.channels import (
    SENTENCES,
    WHOLE,
    ChannelPart,
    SoftLabeled,
    read_channel,
    read_sentences,
    sentences_details,
)
from sentiment.data.splits import carve_validation
from sentiment.data.table import ReviewTable
from sentiment.distributed import SOLO, Group, RankFailure, Rendezvous, is_communication_error, start
from sentiment.errors import DataError, SentimentError
from sentiment.evaluation import card_traffic, evaluate, model_card, render_card, summary, write_evaluation
from sentiment.files import read_json, write_bytes_atomic, write_json_atomic
from sentiment.hyperparameters import HyperparameterError, Hyperparameters, describe, parse_hyperparameters
from sentiment.training import fit, job_fingerprint

log = logging.getLogger("sentiment.train")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print(__doc__ + "\nHyperparameters (--name value; also read from hyperparameters.json):\n" + describe())
        return 0
    log_lines_to("stdout")
    paths = TrainingPaths.from_environment()
    try:
        hp = parse_hyperparameters(args, strings=_hyperparameters_file(paths.hyperparameters))
        job = Job(
            hp, paths, Cluster.from_files(paths), channel_distributions(paths.input_data_config), _ranks_per_host(hp)
        )
        _check_distributable(job)
    except HyperparameterError as error:
        return _fail(paths, f"Invalid hyperparameters: {error}")
    except SentimentError as error:
        return _fail(paths, f"{type(error).__name__}: {error}")
    if job.ranks_per_host == 1:
        return train_rank(job, 0)
    return run_ranks_of_host(job)


@dataclass(frozen=True)
class Job:
    """What every rank of a training job is told: settings, paths, the cluster and its channels' distribution."""

    hp: Hyperparameters
    paths: TrainingPaths
    cluster: Cluster
    distributions: dict[str, str]  # channel -> S3DistributionType
    ranks_per_host: int = 1

    def rendezvous(self, local_rank: int) -> Rendezvous:
        cluster = self.cluster
        return Rendezvous(
            hosts=cluster.hosts,
            host_rank=cluster.host_rank,
            local_rank=local_rank,
            local_ranks=self.ranks_per_host,
            master_address=cluster.master_address,
            master_port=cluster.master_port,
            backend="nccl" if _uses_cuda(self.hp) else "gloo",
        )


def _uses_cuda(hp: Hyperparameters) -> bool:
    return hp.device != "cpu" and torch.cuda.is_available()


def _ranks_per_host(hp: Hyperparameters) -> int:
    """One rank per GPU the job trains on, one on CPU (torchrun's nproc_per_node)."""
    return torch.cuda.device_count() if _uses_cuda(hp) else 1


def _check_distributable(job: Job) -> None:
    """Settings a job on several ranks cannot honour, refused before any host starts work."""
    ranks = len(job.cluster.hosts) * job.ranks_per_host
    if ranks > 1 and job.hp.lstm.pretrain_epochs > 0:
        raise HyperparameterError(
            f"pretrain_epochs={job.hp.lstm.pretrain_epochs:g}: language-model pretraining runs on one rank only, and "
            f"this job has {ranks} ({len(job.cluster.hosts)} host(s)); train on one instance or set pretrain_epochs 0"
        )


def run_ranks_of_host(job: Job) -> int:
    """This host's ranks (one per GPU) as processes of their own; 0 when all of them succeed."""
    context = torch.multiprocessing.start_processes(
        _rank_process, args=(job,), nprocs=job.ranks_per_host, join=False, start_method="spawn"
    )
    try:
        while not context.join():
            pass
    except torch.multiprocessing.ProcessExitedException:
        return 1  # the rank wrote the failure file
    return 0


def _rank_process(local_rank: int, job: Job) -> None:
    log_lines_to("stdout")
    code = train_rank(job, local_rank)
    if code:
        raise SystemExit(code)


def train_rank(job: Job, local_rank: int) -> int:
    """Run one rank of the job to its end: 0 on success, else 1 with the failure file written."""
    rendezvous = job.rendezvous(local_rank)
    group = Group(rendezvous)
    if rendezvous.world_size > 1:
        print(
            f"rank {rendezvous.rank} of {rendezvous.world_size} on {rendezvous.host}; master {rendezvous.hosts[0]}",
            flush=True,
        )
    try:
        if rendezvous.world_size > 1:
            _use_network_interface(job.cluster.network_interface)
            if rendezvous.backend == "nccl":
                torch.cuda.set_device(local_rank)
            group = start(rendezvous)
        run(job.hp, job.paths, group, job.distributions)
    except RankFailure as error:  # a peer failed: its host and reason are the job's
        return _fail(job.paths, str(error))
    except SentimentError as error:
        return _fail_rank(job.paths, group, f"{type(error).__name__}: {error}")
    except Exception as error:  # the failure file must say why, whatever broke
        if group.distributed and is_communication_error(error):
            return _fail(job.paths, group.failure_reason(error))
        traceback.print_exc()
        return _fail_rank(job.paths, group, f"Unexpected {type(error).__name__}: {error}")
    finally:
        group.close()
    return 0


def _use_network_interface(interface: str | None) -> None:
    """The interface SageMaker names for the ranks' traffic, unless the environment already chose one."""
    if interface:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)


def run(
    hp: Hyperparameters, paths: TrainingPaths, group: Group = SOLO, distributions: dict[str, str] | None = None
) -> None:
    started = time.perf_counter()
    print(f"hyperparameters: {json.dumps(hp.flat(), sort_keys=True)}", flush=True)
    channels, data = _read_channels(hp, paths, group, distributions or {})
    train, validation, test, unlabeled = (channels.get(name) for name in ("train", "validation", "test", "unlabeled"))
    assert train is not None and validation is not None
    sentences, sentences_entry = _read_sentences(paths, group, (distributions or {}).get(SENTENCES))
    job = job_fingerprint(hp, train, validation, unlabeled, sentences)
    # Each rank keeps its own checkpoints: SageMaker syncs every host's folder to the same S3 prefix.
    folder = paths.checkpoints / f"rank-{group.rank}-of-{group.world_size}" if group.distributed else paths.checkpoints
    store = CheckpointStore(folder, job)
    result = fit(hp, train, validation, unlabeled, store, report=_report, group=group, sentences=sentences)
    seconds = time.perf_counter() - started

    test_metrics = None
    if test is not None:
        scored = group.gather((test.label, result.predictor.predict_proba(test.text)))  # each rank its part
        labels, probabilities = (np.concatenate(column) for column in zip(*scored, strict=True))
        test_metrics = evaluate(labels, probabilities)
        print(
            f"test_acc={test_metrics['accuracy']:.4f} test_auc={test_metrics['roc_auc']:.4f} "
            f"test_reviews={len(labels)}",
            flush=True,
        )
    group.barrier()  # every rank got here: the job has succeeded, and only now is anything written
    if not group.is_master:
        print(f"{group.describe()}: done; the master, {group.describe(0)}, writes the model", flush=True)
        return
    if test_metrics is not None:
        write_evaluation(
            paths.output_data, "Test evaluation", test_metrics, result.history, {"model": hp.model, "preset": hp.preset}
        )
    # The validation reviews stand for new traffic: held out like it, unlike train, whose words the vocabulary holds.
    traffic = card_traffic(result.predictor, validation, "validation")
    card = model_card(hp, channels, result.timings, result.validation, seconds, test_metrics, traffic, data)
    if sentences_entry is not None:
        card["data"][SENTENCES] = sentences_entry
    paths.model.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        paths.model / "metrics.json",
        {"validation": result.validation, "test": summary(test_metrics), "history": result.history},
    )
    write_json_atomic(paths.model / "card.json", card)
    write_bytes_atomic(paths.model / "card.md", render_card(card).encode("utf-8"))
    save_model(result.predictor, paths.model)
    print(
        f"model: {paths.model} ({_size_mb(paths.model):.1f} MB) in {seconds:.0f} s",
        flush=True,
    )


def _read_channels(
    hp: Hyperparameters, paths: TrainingPaths, group: Group, distributions: dict[str, str]
) -> tuple[dict[str, ReviewTable], dict[str, dict[str, Any]] | None]:
    """This rank's part of each channel (validation whole: every rank selects and weights on all of it),
    and on several ranks what the model card says of the channels whole."""
    folder = paths.channel("train")
    if folder is None:
        raise DataError(f"no train channel: expected reviews in {paths.channels / 'train'} (or SM_CHANNEL_TRAIN)")
    channels = {"train": read_channel(folder, "train", paths.cache, _part(group, distributions.get("train")))}
    for name in ("validation", "test", "unlabeled"):
        folder = paths.channel(name)
        if folder is not None:
            channels[name] = read_channel(folder, name, paths.cache, _part(group, distributions.get(name)))
    if "validation" not in channels:
        channels["train"], channels["validation"] = carve_validation(channels["train"], hp.validation_fraction, hp.seed)
        print(f"validation: {len(channels['validation']):,} reviews carved from train (seed {hp.seed})", flush=True)
    summaries = group.gather(
        {name: (len(table), table.label_counts(), table.digest()) for name, table in channels.items()}
    )
    for name in channels:
        reviews = sum(summary[name][0] for summary in summaries)
        counts = {label: sum(summary[name][1][label] for summary in summaries) for label in summaries[0][name][1]}
        shown = ", ".join(f"{n:,} {label}" for label, n in counts.items() if n)
        mine = f"; this rank holds {len(channels[name]):,}" if group.distributed else ""
        print(f"channel {name}: {reviews:,} reviews ({shown}{mine})", flush=True)
        if name != "unlabeled":
            _require_both_labels(name, reviews, counts)
    if not group.distributed:
        return channels, None
    channels["validation"] = ReviewTable.concat(group.gather(channels["validation"]))
    data = {
        name: {
            "reviews": sum(summary[name][0] for summary in summaries),
            "parts": len(summaries),
            # The digest of the parts' digests, in rank order: the same parts give the same card.
            "sha256": _parts_digest([summary[name][2] for summary in summaries]),
        }
        for name in summaries[0]
    }
    return channels, data


def _read_sentences(
    paths: TrainingPaths, group: Group, distribution: str | None
) -> tuple[SoftLabeled | None, dict[str, Any] | None]:
    """This rank's part of the `sentences` channel, when the job has one, and what the card says of it whole."""
    folder = paths.channel(SENTENCES)
    if folder is None:
        return None, None
    sentences = read_sentences(folder, _part(group, distribution))
    parts = group.gather((len(sentences), sentences.digest(), float(sentences.scores.sum())))
    count = sum(part[0] for part in parts)
    digest = _parts_digest([part[1] for part in parts])
    mean = sum(part[2] for part in parts) / count
    print(f"channel {SENTENCES}: {count:,} soft-labelled texts (mean score {mean:.3f})", flush=True)
    entry = {"reviews": count, "sha256": digest, "mean_score": round(mean, 4), "labelled_by": sentences_details(folder)}
    return sentences, entry


def _parts_digest(digests: list[str]) -> str:
    """A channel's digest from its parts' digests, in rank order (one part: its own digest)."""
    return digests[0] if len(digests) == 1 else hashlib.sha256(" ".join(digests).encode()).hexdigest()


def _part(group: Group, distribution: str | None) -> ChannelPart:
    """This rank's part of a channel: SageMaker has already dealt a sharded channel's files among the hosts,
    so its ranks share this host's files; a replicated channel is whole on every host, so its records are
    divided among all ranks."""
    if not group.distributed:
        return WHOLE
    rendezvous = group.rendezvous
    if distribution == "ShardedByS3Key":
        return ChannelPart(rendezvous.local_rank, rendezvous.local_ranks, "files")
    return ChannelPart(group.rank, group.world_size, "records")


def _require_both_labels(name: str, reviews: int, counts: dict[str, int]) -> None:
    """A channel of one class teaches nothing (it would train to a constant) and cannot be evaluated."""
    missing = [label for label in ("positive", "negative") if counts[label] == 0]
    if missing:
        present = "positive" if counts["positive"] else "negative"
        raise DataError(
            f"channel {name!r}: all {reviews:,} reviews are {present}, none {missing[0]}: "
            "a sentiment model needs both positive and negative reviews in train, validation and test"
        )


def _size_mb(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file()) / 1e6


def _hyperparameters_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        document = read_json(path)
    except ValueError as error:
        raise HyperparameterError(str(error)) from None
    if not isinstance(document, dict):
        raise HyperparameterError(f"{path}: expected a JSON object of name: value")
    return document


def _report(line: str) -> None:
    print(line, flush=True)


def _fail_rank(paths: TrainingPaths, group: Group, reason: str) -> int:
    """This rank's own failure: on several ranks, named by its host and left for its peers to report."""
    if not group.distributed:
        return _fail(paths, reason)
    code = _fail(paths, f"{group.describe()} failed: {reason}")
    group.publish_failure(reason)  # after the file: a failing master waits here for its peers to read it
    return code


def _fail(paths: TrainingPaths, reason: str) -> int:
    print(f"error: {reason}", file=sys.stderr, flush=True)
    try:
        paths.write_failure(reason)
    except OSError as error:
        print(f"error: could not write {paths.failure}: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
