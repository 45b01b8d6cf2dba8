"""Communicator for ranks that are threads of one process.

Threads share memory, so no bytes need to move: a collective is a meeting.
Every rank puts (a reference to) its array on a shared board of slots, one
slot per rank, and waits at a barrier until everyone has. Then each rank
reads all the slots and computes the result for itself, in rank order, so
every rank computes the same bits. A second barrier keeps anyone from
writing the next value into a slot before everyone has finished reading:

    rank r:  slots[r] = x  ->  barrier  ->  result = f(slots[0], ..., slots[n-1])  ->  barrier

Messages (``send``/``recv``) go through one queue per receiving rank; a copy
of the array travels, so the sender may change its own afterwards.

A ``ThreadWorld`` holds what the ranks share; each thread works through its
own ``ThreadCommunicator`` (``world.communicator(rank)``). If a rank fails,
``world.abort(rank, reason)`` releases everyone waiting, who then raise
``CommunicatorError`` naming that rank; a rank that does not arrive within
``timeout`` seconds is named the same way.
"""
from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Callable

import numpy as np

from tinyai.backend.settings import is_int
from tinyai.parallel.comm.base import Communicator, CommunicatorError
from tinyai.parallel.comm.payload import (
    Payload,
    block_bounds,
    check_color,
    check_op,
    check_rank,
    check_same,
    check_tag,
    check_timeout,
    nothing_arrived,
    reduce_in_rank_order,
    split_groups,
    take_message,
)


class ThreadWorld:
    """What ``size`` threads share to talk: boards, barriers, message queues, and who failed.

    Make one per group of threads; each thread then works through its own
    ``world.communicator(rank)``. ``tinyai.parallel.spmd`` does this for you.

    Args:
        size: number of ranks.
        timeout: seconds a rank waits for a peer (in a collective or a recv)
            before naming it as failed.

    >>> world = ThreadWorld(2)
    >>> # in thread r:  comm = world.communicator(r); comm.allreduce(x)
    """

    def __init__(self, size: int, timeout: float = 60.0) -> None:
        if not is_int(size) or size < 1:
            raise ValueError(f"ThreadWorld: size must be an int >= 1, got {size!r}")
        self.size = size
        self.timeout = check_timeout(timeout, "ThreadWorld")
        self.inboxes = [queue.Queue() for _ in range(size)]  # (context, source, tag, array)
        self.pending: list[list[tuple]] = [[] for _ in range(size)]  # received early, per rank
        self.failure: CommunicatorError | None = None
        self._lock = threading.Lock()
        self._contexts = itertools.count()
        self._groups: list[_Group] = []
        self._subsets: dict[tuple[int, ...], _Group] = {}
        self.root = self.new_group(list(range(size)))

    def new_group(self, members: list[int]) -> "_Group":
        """A board and barrier for the world ranks ``members`` (in their new rank order)."""
        with self._lock:
            group = _Group(members, next(self._contexts))
            self._groups.append(group)
            if self.failure is not None:
                group.barrier.abort()
        return group

    def communicator(self, rank: int, members: Any = None) -> "ThreadCommunicator":
        """Rank ``rank``'s communicator over the whole world, or over the world ranks ``members`` only.

        ``members`` (a list of world ranks, default all) lets a step use fewer
        ranks than the world has without a collective ``split``: every
        thread of the step must pass the same list.
        """
        if members is None:
            group = self.root
        else:
            members = [int(m) for m in members]
            if not members or len(set(members)) != len(members) or not all(0 <= m < self.size for m in members):
                raise ValueError(f"ThreadWorld.communicator: members must be distinct ranks of 0 .. {self.size - 1}, "
                                 f"got {members}")
            with self._lock:
                group = self._subsets.get(tuple(members))
            if group is None:
                made = self.new_group(members)
                with self._lock:  # the first thread to ask makes it; the others take that one
                    group = self._subsets.setdefault(tuple(members), made)
        return ThreadCommunicator(self, group, check_rank(rank, len(group.members), "rank",
                                                          "ThreadWorld.communicator"))

    def reset(self) -> None:
        """Forget a failure, for another round of work; only when no rank is inside a collective or recv."""
        with self._lock:
            self.failure = None
            for group in self._groups:
                group.barrier.reset()
            for inbox, pending in zip(self.inboxes, self.pending):
                pending.clear()
                while not inbox.empty():
                    inbox.get_nowait()

    def abort(self, rank: int | None = None, reason: str = "") -> None:
        """Record that ``rank`` failed and release every rank waiting in a collective or a recv.

        The first failure recorded is the one everybody reports.
        """
        with self._lock:
            if self.failure is None:
                who = f"rank {rank}" if rank is not None else "a rank"
                self.failure = CommunicatorError(f"{who} failed" + (f": {reason}" if reason else ""), rank=rank)
            groups = list(self._groups)
        for group in groups:
            group.barrier.abort()

    @property
    def aborted(self) -> bool:
        return self.failure is not None


class _Group:
    """The shared part of one communicator: its members (world ranks), board and barrier."""

    def __init__(self, members: list[int], context: int) -> None:
        self.members = members
        self.context = context
        self.slots: list[Any] = [None] * len(members)
        self.barrier = threading.Barrier(len(members))
        self.arrivals = [0] * len(members)  # barriers each rank has reached: tells who is late


class ThreadCommunicator(Communicator):
    """One thread's communicator (see the module docstring); get it from ``ThreadWorld.communicator``."""

    def __init__(self, world: ThreadWorld, group: _Group, rank: int) -> None:
        self._world = world
        self._group = group
        self._rank = rank

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def size(self) -> int:
        return len(self._group.members)

    @property
    def timeout(self) -> float:
        return self._world.timeout

    # --- the meeting every collective is made of -------------------------------------------

    def _sync(self, op: str) -> None:
        """Wait until every rank of the group is here, or raise naming the rank that is not."""
        group = self._group
        group.arrivals[self._rank] += 1
        try:
            timeout = self._world.timeout
            group.barrier.wait(None if timeout == float("inf") else timeout)  # (a lock refuses an infinite wait)
        except threading.BrokenBarrierError:
            if self._world.failure is None:  # nobody failed: the barrier timed out
                mine = group.arrivals[self._rank]
                late = [group.members[r] for r, n in enumerate(group.arrivals) if n < mine]
                self._world.abort(late[0] if late else None,
                                  f"did not arrive at {op} within {self._world.timeout:g} s")
            raise self._error(op) from None

    def _error(self, op: str) -> CommunicatorError:
        failure = self._world.failure
        return CommunicatorError(f"{op} on rank {self._rank}: {failure}", op, failure.rank if failure else None)

    def _meet(self, op: str, mine: Any, read: Callable[[list[Any]], Any]) -> Any:
        """Post ``mine``, wait for all, compute ``read(all slots)``, wait again; raise read's error on every rank."""
        if self._world.failure is not None:
            raise self._error(op)
        group = self._group
        group.slots[self._rank] = mine
        self._sync(op)
        error, result = None, None
        try:
            result = read(list(group.slots))
        except Exception as exc:  # every rank sees the same slots, so every rank raises the same
            error = exc
        self._sync(op)
        if error is not None:
            raise error
        return result

    # --- collectives -------------------------------------------------------------------------

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        payload = Payload(array, "allreduce")
        check_op(op, "allreduce", payload.dtype)

        def read(payloads: list[Payload]) -> Any:
            _check_payloads("allreduce", payloads)
            return reduce_in_rank_order([p.array for p in payloads], op, payload.xp)

        return payload.give_back(self._meet("allreduce", payload, read))

    def allgather(self, array: Any) -> Any:
        payload = Payload(array, "allgather")

        def read(payloads: list[Payload]) -> Any:
            _check_payloads("allgather", payloads, trailing_only=True)
            return payload.xp.concatenate([p.array.reshape((1,) if p.array.ndim == 0 else p.shape)
                                           for p in payloads])

        return payload.give_back_array(self._meet("allgather", payload, read))

    def broadcast(self, array: Any, root: int = 0) -> Any:
        root = check_rank(root, self.size, "root", "broadcast")
        payload = Payload(array, "broadcast") if array is not None or self._rank == root else None

        def read(payloads: list[Payload | None]) -> Any:
            source = payloads[root]
            if source is None:
                raise ValueError(f"broadcast: the root (rank {root}) passed None; it must pass the array")
            return source.array.copy()

        result = self._meet("broadcast", payload, read)
        return payload.give_back(result) if payload is not None else result

    def reduce_scatter(self, array: Any, op: str = "sum") -> Any:
        payload = Payload(array, "reduce_scatter")
        check_op(op, "reduce_scatter", payload.dtype)
        if payload.array.ndim == 0:
            raise ValueError("reduce_scatter: needs an array with at least one dimension to split, got a scalar")
        start, stop = block_bounds(payload.shape[0], self.size)[self._rank]

        def read(payloads: list[Payload]) -> Any:
            _check_payloads("reduce_scatter", payloads)
            return reduce_in_rank_order([p.array[start:stop] for p in payloads], op, payload.xp)

        return payload.give_back_array(self._meet("reduce_scatter", payload, read))

    def barrier(self) -> None:
        self._meet("barrier", None, lambda slots: None)

    # --- messages ----------------------------------------------------------------------------

    def send(self, array: Any, dest: int, tag: int = 0) -> None:
        dest = check_rank(dest, self.size, "dest", "send")
        tag = check_tag(tag, "send")
        payload = Payload(array, "send")
        if self._world.failure is not None:
            raise self._error("send")
        copy = payload.array.copy() if payload.kind == "array" else np.array(payload.array)
        self._world.inboxes[self._group.members[dest]].put((self._group.context, self._rank, tag, copy))

    def recv(self, source: int, tag: int = 0) -> Any:
        source = check_rank(source, self.size, "source", "recv")
        return self._receive(source, check_tag(tag, "recv"), "recv")[3]

    def recv_any(self, tag: int = 0) -> tuple[int, Any]:
        message = self._receive(None, check_tag(tag, "recv_any"), "recv_any")
        return message[1], message[3]

    def _receive(self, source: int | None, tag: int, op: str) -> tuple:
        """The first message (context, source, tag, array) for this communicator from ``source`` (None: any)."""
        context = self._group.context

        def wanted(message: tuple) -> bool:
            return message[0] == context and message[2] == tag and source in (None, message[1])

        me = self._group.members[self._rank]
        pending = self._world.pending[me]
        world = self._world

        def check_alive() -> None:
            if world.failure is not None:
                raise self._error(op)

        return take_message(world.inboxes[me], pending, wanted, world.timeout, check_alive,
                            lambda: nothing_arrived(op, self._rank, source, tag, world.timeout))

    # --- sub-communicators -------------------------------------------------------------------

    def split(self, color: int | None, key: int = 0) -> "ThreadCommunicator | None":
        check_color(color, key)
        requests = self._meet("split", (color, key), list)
        groups = split_groups(requests)
        # The first member of each new group makes its board; everyone picks up their own.
        made = None
        if color is not None and groups[color][0] == self._rank:
            made = self._world.new_group([self._group.members[r] for r in groups[color]])
        boards = self._meet("split", made, list)
        if color is None:
            return None
        members = groups[color]
        return ThreadCommunicator(self._world, boards[members[0]], members.index(self._rank))


def _check_payloads(op: str, payloads: list[Payload], trailing_only: bool = False) -> None:
    check_same(op, [(p.shape, p.dtype.str) for p in payloads], trailing_only)
    modules = {p.xp.__name__ for p in payloads}
    if len(modules) > 1:
        listed = ", ".join(f"rank {r}: {p.xp.__name__}" for r, p in enumerate(payloads))
        raise ValueError(f"{op}: every rank must pass arrays of one kind (all host or all device); got {listed}")
