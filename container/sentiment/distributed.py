"""Data parallelism across SageMaker's instances and their devices: ranks, the process group, and the
few collectives training needs.

A job on several instances runs one rank per device of each host (one per host on CPU), as torchrun
numbers them: rank = the host's place among the sorted hosts x ranks per host + the local rank. Rank
0, on the first host, is the master: it hosts the rendezvous, fits what is fitted once and writes the
model. `Group` is what training is handed; a group of one rank starts nothing and every collective
returns its input, so a single-host job runs exactly as it did before there were groups.

torch.distributed carries it: gloo on CPU, nccl on CUDA (the LSTM's gradients, through
DistributedDataParallel), and always a gloo group for the counts and objects held in host memory. A
rank that fails leaves its reason in the rendezvous store, so its peers, whose next collective then
breaks, can say which host failed and why instead of only that a connection closed.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from sentiment.errors import SentimentError

T = TypeVar("T")

TIMEOUT = timedelta(minutes=30)  # torch's default: long enough for a slow host to read its channels
# How long a failing master keeps the rendezvous store up for its peers to read why: the store lives in its process.
FAILURE_GRACE = timedelta(seconds=30)


class RankFailure(SentimentError):
    """A collective could not complete because a rank failed; the message names its host and the reason."""


@dataclass(frozen=True)
class Rendezvous:
    """Where and as whom one rank joins the job."""

    hosts: tuple[str, ...]  # sorted: the first is the master
    host_rank: int
    local_rank: int = 0
    local_ranks: int = 1  # ranks per host: its devices (GPUs), 1 on CPU
    master_address: str = "127.0.0.1"
    master_port: int = 29500
    backend: str = "gloo"  # nccl on CUDA

    @property
    def rank(self) -> int:
        return self.host_rank * self.local_ranks + self.local_rank

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.local_ranks

    @property
    def host(self) -> str:
        return self.hosts[self.host_rank]


class Group:
    """The ranks of one training job and the collectives between them (see the module's docstring)."""

    def __init__(
        self,
        rendezvous: Rendezvous | None = None,
        store: dist.Store | None = None,
        objects: dist.ProcessGroup | None = None,
    ) -> None:
        self.rendezvous = rendezvous or Rendezvous(hosts=(socket.gethostname(),), host_rank=0)
        self._store = store
        self._objects = objects  # the gloo group for host-memory collectives

    @property
    def rank(self) -> int:
        return self.rendezvous.rank

    @property
    def world_size(self) -> int:
        return self.rendezvous.world_size

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def describe(self, rank: int | None = None) -> str:
        """'algo-2 (rank 1 of 2)' for `rank` (default: this one)."""
        rank = self.rank if rank is None else rank
        return f"{self.rendezvous.hosts[rank // self.rendezvous.local_ranks]} (rank {rank} of {self.world_size})"

    # -- collectives: each returns the same result on every rank ------------------------------------

    def sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of every rank's `array` (same shape and dtype on each)."""
        if not self.distributed:
            return array
        tensor = torch.from_numpy(np.ascontiguousarray(array)).clone()
        self.sum_tensor(tensor)
        return tensor.numpy()

    def sum_tensor(self, tensor: torch.Tensor) -> None:
        """Sum a CPU tensor over the ranks, in place."""
        if self.distributed:
            self._collective(dist.all_reduce, tensor, group=self._objects)

    def total(self, value: float) -> float:
        return float(self.sum(np.array([value], dtype=np.float64))[0])

    def max(self, value: int) -> int:
        return max(self.gather(value))

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order (pickled: for counts and small arrays, not for tensors on a device)."""
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world_size
        self._collective(dist.all_gather_object, values, value, group=self._objects)
        return values

    def broadcast(self, value: T) -> T:
        """The master's `value` on every rank."""
        if not self.distributed:
            return value
        holder = [value]
        self._collective(dist.broadcast_object_list, holder, src=0, group=self._objects)
        return holder[0]

    def same(self, value: Any) -> bool:
        """Whether every rank holds an equal `value` (a checkpoint's epoch, say)."""
        values = self.gather(value)
        return all(other == values[0] for other in values)

    def barrier(self) -> None:
        if self.distributed:
            self._collective(dist.barrier, group=self._objects)

    def _collective(self, operation: Any, *args: Any, **kwargs: Any) -> None:
        try:
            operation(*args, **kwargs)
        except (RuntimeError, pickle.UnpicklingError, EOFError) as error:
            raise RankFailure(self.failure_reason(error)) from error

    # -- failures -----------------------------------------------------------------------------------

    def publish_failure(self, reason: str) -> None:
        """Leave this rank's reason where its peers look for it when their collectives break. The master,
        whose process holds the store, then breaks its connections at once and waits (at most FAILURE_GRACE)
        until every peer has read it."""
        if self._store is None:
            return
        with contextlib.suppress(RuntimeError):  # the master (and its store) is gone already: nothing to tell
            self._store.set(f"failure/{self.rank}", reason)
        if self.is_master and dist.is_initialized():
            dist.destroy_process_group()  # the peers' collectives fail now, not at their timeout
            with contextlib.suppress(RuntimeError):  # DistStoreError on the timeout: a peer that never looked
                self._store.wait([f"read/{rank}" for rank in range(1, self.world_size)], FAILURE_GRACE)

    def failure_reason(self, error: BaseException) -> str:
        """Why the job failed when `error` broke a collective: a peer's published reason, else which
        peer stopped answering (the host whose address the error names, or that no longer resolves)."""
        published = {rank: self._published(rank) for rank in range(self.world_size) if rank != self.rank}
        if self._store is not None:
            with contextlib.suppress(RuntimeError):  # tell a failing master it may go
                self._store.set(f"read/{self.rank}", "1")
        for rank, reason in published.items():
            if reason is not None:
                return f"{self.describe(rank)} failed: {reason}"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"{self._lost_peers(str(error))} stopped during training ({first_line[:300]})"

    def _published(self, rank: int) -> str | None:
        if self._store is None:
            return None
        key = f"failure/{rank}"
        try:
            return self._store.get(key).decode("utf-8", "replace") if self._store.check([key]) else None
        except RuntimeError:  # the store went with the master
            return None

    def _lost_peers(self, message: str) -> str:
        hosts = self.rendezvous.hosts
        others = [host for host in hosts if host != self.rendezvous.host]
        addresses = set(re.findall(r"\d{1,3}(?:\.\d{1,3}){3}", message))
        named, gone = [], []
        for host in others:
            try:
                address = socket.gethostbyname(host)
            except OSError:  # a stopped container's name leaves the network's DNS with it
                gone.append(host)
                continue
            if address in addresses:
                named.append(host)
        suspects = (named if len(named) == 1 else None) or (gone if len(gone) == 1 else None) or others
        if len(suspects) == 1:
            return f"{suspects[0]} (rank {hosts.index(suspects[0]) * self.rendezvous.local_ranks} of {self.world_size})"
        return "one of " + ", ".join(suspects)

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def is_communication_error(error: BaseException) -> bool:
    """Whether `error` is torch.distributed's (or gloo's, nccl's) failing to reach a peer, not this rank's own."""
    text = str(error).lower()
    return isinstance(error, dist.DistError) or any(word in text for word in ("gloo", "nccl", "connection closed"))


SOLO = Group()  # a job of one rank: nothing to start, every collective its input


def start(rendezvous: Rendezvous) -> Group:
    """Join the job's process group (blocks until every rank has joined, at most TIMEOUT)."""
    if rendezvous.world_size == 1:
        return Group(rendezvous)
    store = dist.TCPStore(
        rendezvous.master_address,
        rendezvous.master_port,
        rendezvous.world_size,
        is_master=rendezvous.rank == 0,
        timeout=TIMEOUT,
    )
    dist.init_process_group(
        rendezvous.backend, store=store, rank=rendezvous.rank, world_size=rendezvous.world_size, timeout=TIMEOUT
    )
    objects = dist.new_group(backend="gloo") if rendezvous.backend != "gloo" else None
    return Group(rendezvous, store, objects)
