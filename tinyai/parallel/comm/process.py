"""Communicator for ranks that are processes of one machine, over shared memory.

Processes do not share Python objects, but they can share a block of memory
(``multiprocessing.shared_memory``). A ``ProcessWorld`` is one such block,
cut into one *slot* per rank, plus the means to wait for each other:

    | control (who failed) | slot 0: header, data | slot 1: header, data | ... |

A collective is the thread transport's meeting with bytes instead of
references: every rank writes its array into its own slot, all wait, each
reads every slot and computes the result for itself in rank order (so all
get the same bits), all wait again before a slot may be overwritten. An
array larger than a slot travels in rounds of ``capacity`` bytes, so the
block stays small whatever the array.

Waiting is done with one semaphore per ordered pair of ranks: in a
communicator of ranks [a, b, c], b and c each signal a ("I have arrived")
and wait for a's signal back ("everyone has"). Only the members of a
communicator are involved, so the rows and the columns of a process grid
(``split``) meet independently, in the same slots and semaphores.

Messages (``send``/``recv``) travel through one queue per receiving rank: the
array is copied at once and pickled into a pipe.

Nothing waits for ever: a rank polls, while waiting, whether a peer has been
declared failed (``world.abort``, called by the failed rank itself or by
whoever watches the processes) and whether its parent process still lives,
and gives up after ``timeout`` seconds naming the rank it waited for.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
import weakref
from multiprocessing import shared_memory
from typing import Any, Callable

import numpy as np

from tinyai.backend.settings import is_int
from tinyai.parallel.comm.base import Communicator, CommunicatorError
from tinyai.parallel.comm.payload import (
    HEADER_BYTES,
    POLL_SECONDS,
    Payload,
    as_bytes,
    block_bounds,
    check_color,
    check_op,
    check_rank,
    check_same,
    check_tag,
    check_timeout,
    finish_mean,
    from_host,
    nothing_arrived,
    read_header,
    reduce_in_rank_order,
    split_groups,
    take_message,
    write_header,
)

LEADER_GRACE = 1.0       # members wait this much longer than the leader, who names the late rank
CONTROL_BYTES = 1024     # flag, failed rank, and the reason, as text
DEFAULT_CAPACITY = 1 << 20  # bytes of array per slot and round


class ProcessWorld:
    """The shared memory and semaphores through which ``size`` processes talk.

    Create it in the parent, hand it to each child process *as an argument
    of* ``Process(...)`` (semaphores can only be inherited), and call
    ``world.communicator(rank)`` in the child. The parent calls ``close()``
    at the end; it frees the shared block (also done at garbage collection).

    Args:
        size: number of ranks.
        timeout: seconds a rank waits for a peer before naming it as failed.
        context: a ``multiprocessing`` context; "spawn" by default.
        capacity: bytes of array per slot and round (a multiple of 64).
        messages: False leaves out the queues of ``send``/``recv`` (one pipe
            per rank) when only collectives are needed.
    """

    def __init__(self, size: int, timeout: float = 60.0, context: Any = None,
                 capacity: int = DEFAULT_CAPACITY, messages: bool = True) -> None:
        if not is_int(size) or size < 1:
            raise ValueError(f"ProcessWorld: size must be an int >= 1, got {size!r}")
        if capacity < 64:
            raise ValueError(f"ProcessWorld: capacity must be at least 64 bytes, got {capacity}")
        context = context if context is not None else mp.get_context("spawn")
        self.size = size
        self.timeout = check_timeout(timeout, "ProcessWorld")
        self.capacity = -(-int(capacity) // 64) * 64
        self.creator_pid = os.getpid()
        self.signals = [context.Semaphore(0) for _ in range(size * size)]  # [source * size + dest]
        self.inboxes = [context.Queue() for _ in range(size)] if messages else None
        self._lock = context.Lock()
        segment = shared_memory.SharedMemory(create=True, size=CONTROL_BYTES + size * (HEADER_BYTES + self.capacity))
        self.segment_name = segment.name
        self._segment: shared_memory.SharedMemory | None = segment
        self._views: tuple | None = None  # control, reason, headers, data: numpy views of the block
        self._pending: list[tuple] = []  # messages received here before anyone asked for them
        self._control()[:2] = (0, -1)
        self._finalizer = weakref.finalize(self, _free_segment, segment, True)

    # --- travelling to a child process ------------------------------------------------------

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_segment"] = None  # the child attaches by name
        state["_views"] = None
        state["_finalizer"] = None
        state["_pending"] = []
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _attach(self) -> shared_memory.SharedMemory:
        if self._segment is None:
            # Spawned children share the parent's resource tracker: attaching
            # only registers a name it already knows, and the parent unlinks.
            self._segment = shared_memory.SharedMemory(name=self.segment_name)
            self._finalizer = weakref.finalize(self, _free_segment, self._segment, False)
        if self._views is None:
            self._views = self._make_views(self._segment)
        return self._segment

    # --- the block, seen as arrays (made once per process) ------------------------------------

    def _make_views(self, segment: shared_memory.SharedMemory) -> tuple:
        buf, slot = segment.buf, HEADER_BYTES + self.capacity
        control = np.ndarray((2,), dtype=np.int64, buffer=buf)
        reason = np.ndarray((CONTROL_BYTES - 16,), dtype=np.uint8, buffer=buf, offset=16)
        headers = [np.ndarray((HEADER_BYTES,), dtype=np.uint8, buffer=buf, offset=CONTROL_BYTES + r * slot)
                   for r in range(self.size)]
        data = [np.ndarray((self.capacity,), dtype=np.uint8, buffer=buf, offset=CONTROL_BYTES + r * slot + HEADER_BYTES)
                for r in range(self.size)]
        return control, reason, headers, data

    def _control(self) -> np.ndarray:
        self._attach()
        return self._views[0]

    def header(self, rank: int) -> np.ndarray:
        """Rank ``rank``'s slot header (HEADER_BYTES bytes: what it posted)."""
        self._attach()
        return self._views[2][rank]

    def data(self, rank: int) -> np.ndarray:
        """Rank ``rank``'s slot data (``capacity`` bytes)."""
        self._attach()
        return self._views[3][rank]

    # --- public -----------------------------------------------------------------------------

    def communicator(self, rank: int, members: Any = None) -> "ProcessCommunicator":
        """Rank ``rank``'s communicator over the whole world, or over the world ranks ``members`` only.

        ``members`` (a list of world ranks, default all) lets a step use fewer
        ranks than the world has without a collective ``split``: every
        process of the step must pass the same list.
        """
        members = list(range(self.size)) if members is None else [int(m) for m in members]
        if not members or len(set(members)) != len(members) or not all(0 <= m < self.size for m in members):
            raise ValueError(f"ProcessWorld.communicator: members must be distinct ranks of 0 .. {self.size - 1}, "
                             f"got {members}")
        rank = check_rank(rank, len(members), "rank", "ProcessWorld.communicator")
        self._attach()
        return ProcessCommunicator(self, members, rank, ("world", tuple(members)))

    def abort(self, rank: int | None = None, reason: str = "") -> None:
        """Declare ``rank`` failed: everyone waiting in a collective or recv raises CommunicatorError.

        Callable from any process of the world, including the parent. The
        first failure recorded is the one everybody reports.
        """
        with self._lock:
            control = self._control()
            if control[0]:
                return
            text = (reason or "").encode("utf-8", "replace")[:CONTROL_BYTES - 17]
            reason_area = self._views[1]
            reason_area[:] = 0
            reason_area[:len(text)] = np.frombuffer(text, dtype=np.uint8)
            control[1] = -1 if rank is None else rank
            control[0] = 1

    @property
    def failure(self) -> CommunicatorError | None:
        """The recorded failure, or None."""
        control = self._control()
        if not control[0]:
            return None
        rank = int(control[1])
        reason = bytes(self._views[1]).rstrip(b"\0").decode("utf-8", "replace")
        who = f"rank {rank}" if rank >= 0 else "a rank"
        return CommunicatorError(f"{who} failed" + (f": {reason}" if reason else ""), rank=rank if rank >= 0 else None)

    def reset(self) -> None:
        """Forget a failure and drain the semaphores, for another round of work.

        Only call it when no rank is inside a collective (between the steps
        of an executor); a failed collective may have left signals behind.
        """
        with self._lock:
            for semaphore in self.signals:
                while semaphore.acquire(block=False):
                    pass
            self._control()[:2] = (0, -1)

    def parent_gone(self) -> bool:
        """True in a child process whose parent (the creator of the world) has ended."""
        return os.getpid() != self.creator_pid and os.getppid() != self.creator_pid

    def close(self) -> None:
        """Unmap the block; in the process that created it, also free it. Safe to call twice."""
        self._views = None  # no view may hold the mapping open
        if self._finalizer is not None:
            if os.getpid() == self.creator_pid or self._finalizer.peek() is None:
                self._finalizer()
            else:  # a child started with 'fork' holds a copy of the creator's finalizer: unmap only
                self._finalizer.detach()
                _free_segment(self._segment, False)
        self._segment = None


def _free_segment(segment: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        segment.close()
    except BufferError:  # an array still points into it; the mapping goes with the process
        pass
    if unlink:
        try:
            segment.unlink()
        except FileNotFoundError:
            pass


class ProcessCommunicator(Communicator):
    """One process's communicator (see the module docstring); get it from ``ProcessWorld.communicator``."""

    def __init__(self, world: ProcessWorld, members: list[int], rank: int, context: tuple) -> None:
        self._world = world
        self._members = members      # world ranks, in this communicator's rank order
        self._rank = rank
        self._context = context      # tells this communicator's messages from those of others
        self._splits = 0

    @property
    def rank(self) -> int:
        return self._rank

    @property
    def size(self) -> int:
        return len(self._members)

    @property
    def world_rank(self) -> int:
        return self._members[self._rank]

    # --- waiting ----------------------------------------------------------------------------

    def _error(self, op: str) -> CommunicatorError:
        failure = self._world.failure
        return CommunicatorError(f"{op} on rank {self._rank}: {failure}", op, failure.rank if failure else None)

    def _wait_for(self, semaphore: Any, op: str, peer: int, limit: float) -> None:
        """Acquire ``semaphore`` (a signal from world rank ``peer``), watching for failures meanwhile."""
        world = self._world
        deadline = time.monotonic() + limit
        while not semaphore.acquire(timeout=POLL_SECONDS):
            if world.failure is not None:
                raise self._error(op)
            if world.parent_gone():
                raise CommunicatorError(f"{op} on rank {self._rank}: the parent process (pid {world.creator_pid}) "
                                        f"has ended", op)
            if time.monotonic() > deadline:
                world.abort(peer, f"did not arrive at {op} within {limit:g} s")
                raise self._error(op)

    def _sync(self, op: str, timeout: float | None = None) -> None:
        """Return when every member is here: members signal the leader, the leader signals back."""
        world, members = self._world, self._members
        if len(members) == 1:
            return
        timeout = world.timeout if timeout is None else timeout
        leader, me, n = members[0], self.world_rank, world.size
        if me == leader:
            for member in members[1:]:
                self._wait_for(world.signals[member * n + leader], op, member, timeout)
            for member in members[1:]:
                world.signals[leader * n + member].release()
        else:
            world.signals[me * n + leader].release()
            self._wait_for(world.signals[leader * n + me], op, leader, timeout + LEADER_GRACE)

    # --- moving bytes through the slots -----------------------------------------------------

    def _exchange(self, op: str, host: np.ndarray | None, device: int,
                  check: Callable[[list], None], consume: Callable[[int, list, Callable], None]) -> list:
        """Post ``host`` round by round; between the waits, ``consume(round, specs, data)`` reads the slots.

        ``data(i)`` is member i's slot (bytes); ``specs[i]`` what member i
        posted (None if nothing). ``check(specs)`` runs once, in round 0. An
        error in check or consume is raised on every rank, after the second
        wait, so that no rank is left behind in the exchange.
        """
        world = self._world
        if world.failure is not None:
            raise self._error(op)
        capacity = world.capacity
        slots = world._views[3]  # noqa: SLF001 - every rank's data area
        mine = as_bytes(host) if host is not None else None
        write_header(world.header(self.world_rank), host, device)
        specs: list = []
        rounds, k = 1, 0
        while k < rounds:
            if mine is not None:
                chunk = mine[k * capacity:(k + 1) * capacity]
                slots[self.world_rank][:chunk.size] = chunk
            self._sync(op)
            error = None
            try:
                if k == 0:
                    specs = [read_header(world.header(m)) for m in self._members]
                    check(specs)
                    rounds = max([1] + [-(-s.nbytes // capacity) for s in specs if s is not None])
                consume(k, specs, lambda i: slots[self._members[i]])
            except Exception as exc:  # every rank read the same slots, so every rank raises the same
                error = exc
            self._sync(op)
            if error is not None:
                raise error
            k += 1
        return specs

    def _reduce(self, op_name: str, payload: Payload, op: str, rows: tuple[int, int] | None) -> np.ndarray:
        """The rank-order reduction of every member's array; only ``rows`` (start, stop) of it if given."""
        host = payload.host()
        dtype = host.dtype
        per_round = self._world.capacity // dtype.itemsize
        row_size = math.prod(host.shape[1:]) if host.ndim else 1
        start, stop = rows if rows is not None else (0, host.shape[0] if host.ndim else 1)
        first, last = start * row_size, stop * row_size  # the elements this rank keeps
        shape = ((stop - start),) + host.shape[1:] if rows is not None else host.shape
        result = np.empty(shape, dtype=dtype)
        flat = result.reshape(-1)
        combine = "sum" if op == "mean" else op

        def check(specs: list) -> None:
            check_same(op_name, [(s.shape, s.dtype.str) for s in specs])

        def consume(k: int, specs: list, data: Callable) -> None:
            lo = max(k * per_round, first)
            hi = min((k + 1) * per_round, last)
            if hi > lo:
                a, b = lo - k * per_round, hi - k * per_round
                parts = [data(i).view(dtype)[a:b] for i in range(len(specs))]
                flat[lo - first:hi - first] = reduce_in_rank_order(parts, combine, np)

        self._exchange(op_name, host, payload.device, check, consume)
        return finish_mean(result, self.size) if op == "mean" else result

    # --- collectives --------------------------------------------------------------------------

    def allreduce(self, array: Any, op: str = "sum") -> Any:
        payload = Payload(array, "allreduce")
        check_op(op, "allreduce", payload.dtype)
        return payload.give_back(self._reduce("allreduce", payload, op, None))

    def reduce_scatter(self, array: Any, op: str = "sum") -> Any:
        payload = Payload(array, "reduce_scatter")
        check_op(op, "reduce_scatter", payload.dtype)
        if payload.array.ndim == 0:
            raise ValueError("reduce_scatter: needs an array with at least one dimension to split, got a scalar")
        rows = block_bounds(payload.shape[0], self.size)[self._rank]
        return payload.give_back_array(self._reduce("reduce_scatter", payload, op, rows))

    def allgather(self, array: Any) -> Any:
        payload = Payload(array, "allgather")
        host = payload.host()
        host = host.reshape(1) if host.ndim == 0 else host
        capacity = self._world.capacity
        gathered: list[np.ndarray] = []  # the result's bytes, made once the sizes are known
        offsets: list[int] = []

        def check(specs: list) -> None:
            check_same("allgather", [(s.shape, s.dtype.str) for s in specs], trailing_only=True)
            rows = sum(s.shape[0] for s in specs)
            gathered.append(np.empty((rows,) + specs[0].shape[1:], dtype=specs[0].dtype))
            offsets.extend(np.cumsum([0] + [s.nbytes for s in specs])[:-1].tolist())

        def consume(k: int, specs: list, data: Callable) -> None:
            out = gathered[0].reshape(-1).view(np.uint8)
            for i, spec in enumerate(specs):
                count = min(capacity, spec.nbytes - k * capacity)
                if count > 0:
                    at = offsets[i] + k * capacity
                    out[at:at + count] = data(i)[:count]

        self._exchange("allgather", host, payload.device, check, consume)
        return payload.give_back_array(gathered[0])

    def broadcast(self, array: Any, root: int = 0) -> Any:
        root = check_rank(root, self.size, "root", "broadcast")
        payload = Payload(array, "broadcast") if array is not None or self._rank == root else None
        host = payload.host() if self._rank == root else None
        capacity = self._world.capacity
        received: list[np.ndarray] = []

        def check(specs: list) -> None:
            spec = specs[root]
            received.append(np.empty(spec.shape, dtype=spec.dtype))

        def consume(k: int, specs: list, data: Callable) -> None:
            count = min(capacity, specs[root].nbytes - k * capacity)
            if count > 0:
                out = received[0].reshape(-1).view(np.uint8)
                out[k * capacity:k * capacity + count] = data(root)[:count]

        specs = self._exchange("broadcast", host, payload.device if host is not None else 0, check, consume)
        if payload is not None:
            return payload.give_back(received[0])
        return from_host(received[0], specs[root].device)

    def barrier(self) -> None:
        if self._world.failure is not None:
            raise self._error("barrier")
        self._sync("barrier")

    # --- messages ----------------------------------------------------------------------------

    def _inboxes(self, op: str) -> list:
        if self._world.inboxes is None:
            raise RuntimeError(f"{op}: this ProcessWorld was made with messages=False (collectives only)")
        return self._world.inboxes

    def send(self, array: Any, dest: int, tag: int = 0) -> None:
        dest = check_rank(dest, self.size, "dest", "send")
        tag = check_tag(tag, "send")
        payload = Payload(array, "send")
        inboxes = self._inboxes("send")
        if self._world.failure is not None:
            raise self._error("send")
        copy = np.array(payload.host(), copy=True)  # pickled later by the queue's thread: freeze it now
        inboxes[self._members[dest]].put((self._context, self._rank, tag, copy, payload.device))

    def recv(self, source: int, tag: int = 0) -> Any:
        source = check_rank(source, self.size, "source", "recv")
        return self._arrived(self._receive(source, check_tag(tag, "recv"), "recv"))

    def recv_any(self, tag: int = 0) -> tuple[int, Any]:
        message = self._receive(None, check_tag(tag, "recv_any"), "recv_any")
        return message[1], self._arrived(message)

    @staticmethod
    def _arrived(message: tuple) -> Any:
        return from_host(message[3], message[4])

    def _receive(self, source: int | None, tag: int, op: str) -> tuple:
        """The first message (context, source, tag, array, device) for this communicator from ``source``."""
        inbox = self._inboxes(op)[self.world_rank]
        world = self._world
        pending = world._pending  # noqa: SLF001 - this process's early arrivals, shared by its communicators

        def wanted(message: tuple) -> bool:
            return message[0] == self._context and message[2] == tag and source in (None, message[1])

        def check_alive() -> None:
            if world.failure is not None:
                raise self._error(op)
            if world.parent_gone():
                raise CommunicatorError(f"{op} on rank {self._rank}: the parent process has ended", op)

        return take_message(inbox, pending, wanted, world.timeout, check_alive,
                            lambda: nothing_arrived(op, self._rank, source, tag, world.timeout))

    # --- sub-communicators -------------------------------------------------------------------

    def split(self, color: int | None, key: int = 0) -> "ProcessCommunicator | None":
        check_color(color, key)
        mine = np.array([[-1 if color is None else int(color), int(key)]], dtype=np.int64)
        requests = self.allgather(mine)
        groups = split_groups([(None if c < 0 else int(c), int(k)) for c, k in requests])
        self._splits += 1
        if color is None:
            return None
        ranks = groups[int(color)]
        return ProcessCommunicator(self._world, [self._members[r] for r in ranks], ranks.index(self._rank),
                                   (self._context, self._splits, int(color)))
