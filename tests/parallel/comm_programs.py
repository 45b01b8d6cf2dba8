"""SPMD programs that exercise every operation of a Communicator, and what they must return.

The programs live at module level so that the process backend can pickle
them and ``mpiexec`` can run them (``python -m tests.parallel.comm_programs all OUT``
writes rank r's results to OUT/rank{r}.npz). The expectations are computed
here with plain NumPy from the rule each operation documents (reduce in rank
order, concatenate in rank order, blocks as numpy.array_split), never from a
communicator's own output.
"""
from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

OPS = {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}


def rank_input(rank: int, rows: int = 5) -> np.ndarray:
    """Rank ``rank``'s float64 array: random values, different on every rank."""
    return np.random.default_rng(100 + rank).standard_normal((rows, 3))


def reduced(size: int, op: str, rows: int = 5) -> np.ndarray:
    """What allreduce(op) must give: the ranks' inputs combined left to right in rank order."""
    arrays = [rank_input(r, rows) for r in range(size)]
    if op == "mean":
        return functools.reduce(np.add, arrays) / size
    return functools.reduce(OPS[op], arrays)


def big_message(rank: int) -> np.ndarray:
    """Rank ``rank``'s 2 MB float64 message (its even entries, 1 MB, are sent)."""
    return np.random.default_rng(200 + rank).standard_normal(1 << 18)


def every_operation(comm) -> dict[str, np.ndarray]:
    """Run every operation once (several ways); return named results as arrays for comparison."""
    from tinyai.testing.standin import StandInArray, xp

    rank, size = comm.rank, comm.size
    out: dict[str, np.ndarray] = {"rank": np.array(rank), "size": np.array(size)}
    x = rank_input(rank)
    for op in ("sum", "prod", "max", "min", "mean"):
        out[f"allreduce.{op}"] = comm.allreduce(x, op=op)
    assert np.array_equal(x, rank_input(rank)), "allreduce changed its input"
    total = comm.allreduce(rank + 1)
    assert type(total) is int, type(total)
    out["allreduce.int"] = np.array(total)
    scalar = comm.allreduce(np.float32(rank + 0.5), op="max")
    assert type(scalar) is np.float32, type(scalar)
    out["allreduce.float32"] = np.array(scalar)
    zero_d = comm.allreduce(np.array(rank, dtype=np.int32), op="sum")
    assert isinstance(zero_d, np.ndarray) and zero_d.shape == () and zero_d.dtype == np.int32
    out["allreduce.zero_d"] = zero_d
    device = comm.allreduce(xp.asarray(x))
    assert isinstance(device, StandInArray), type(device)  # back on the (stand-in) device
    out["allreduce.device"] = device.get()

    # allgather: rank r contributes r + 1 rows, so the pieces are uneven.
    piece = np.full((rank + 1, 2), rank, dtype=np.int64) + np.arange(2)
    out["allgather.rows"] = comm.allgather(piece)
    out["allgather.scalars"] = comm.allgather(float(rank) * 1.5)

    root = size - 1
    out["broadcast.none"] = comm.broadcast(x if rank == root else None, root=root)
    out["broadcast.like"] = comm.broadcast(x if rank == 0 else np.zeros_like(x))
    out["broadcast.device"] = comm.broadcast(xp.asarray(x), root=0).get()

    tall = rank_input(rank, rows=2 * size + 1)
    block = comm.reduce_scatter(tall)
    out["reduce_scatter"] = block
    out["reduce_scatter.max"] = comm.reduce_scatter(tall, op="max")
    out["gather_of_scatter"] = comm.allgather(block)
    out["reduce_scatter.short"] = comm.reduce_scatter(np.ones((1, 2)) * (rank + 1))  # fewer rows than ranks

    # A ring: everyone sends before receiving; two tags received in the opposite order of sending.
    right, left = (rank + 1) % size, (rank - 1) % size
    comm.send(x, right, tag=1)
    comm.send(np.array([rank, 7]), right, tag=2)
    x[...] = -1  # the message is a copy: changing x now must not change what arrives
    out["recv.tag2"] = comm.recv(left, tag=2)
    out["recv.tag1"] = comm.recv(left, tag=1)
    comm.send(xp.asarray(np.arange(3.0) + rank), right)
    arrived = comm.recv(left)
    assert isinstance(arrived, StandInArray), type(arrived)
    out["recv.device"] = arrived.get()
    # A message past MPI's eager limit (1 MB: it travels only once the receiver asks), sent from a
    # strided view and overwritten at once; and an empty one: both arrive exactly as they were sent.
    big = big_message(rank)
    comm.send(big[::2], right, tag=4)
    comm.send(np.zeros((0, 3), dtype=np.float32), right, tag=5)
    big[...] = -1
    out["recv.empty"] = comm.recv(left, tag=5)
    out["recv.big"] = comm.recv(left, tag=4)
    # A server (rank 0) takes messages from whoever sends first; from one sender they stay in order.
    if rank == 0:
        arrivals = [comm.recv_any(tag=3) for _ in range(2 * (size - 1))]
        assert all(source == int(array[0]) for source, array in arrivals)
        arrivals.sort(key=lambda item: item[0])  # stable: each sender's messages keep their order
        out["recv_any"] = np.array([array for _, array in arrivals]).reshape(-1, 2)
    else:
        comm.send(np.array([rank, 0]), 0, tag=3)
        comm.send(np.array([rank, 1]), 0, tag=3)
    comm.barrier()

    # split: the even and odd ranks, ordered by descending old rank (key = -rank);
    # the last rank of an odd world of 3 or more joins no group.
    color = None if size >= 3 and size % 2 == 1 and rank == size - 1 else rank % 2
    parity = comm.split(color, key=-rank)
    if parity is None:
        out["split.parity"] = np.array([-1, -1, -1])
    else:
        out["split.parity"] = np.array([parity.rank, parity.size, parity.allreduce(rank)])
        out["split.parity_gather"] = parity.allgather(np.array([rank]))
    # Two splits in use at once: rows and columns of a grid with 2 columns.
    row = comm.split(rank // 2)
    column = comm.split(rank % 2, key=rank)
    out["split.row"] = row.allgather(np.array([rank]))
    out["split.column"] = column.allgather(np.array([rank]))
    comm.send(np.array([100 + rank]), right)
    if row.size > 1:  # messages inside the row do not mix with the world's
        row.send(np.array([rank]), (row.rank + 1) % row.size)
        out["split.row_recv"] = row.recv((row.rank - 1) % row.size)
    out["split.world_recv"] = comm.recv(left)
    return out


def expected(size: int) -> list[dict[str, np.ndarray]]:
    """What ``every_operation`` must return on each rank of a world of ``size``."""
    ranks = []
    tall_rows = 2 * size + 1
    bounds = np.cumsum([0] + [len(b) for b in np.array_split(np.arange(tall_rows), size)])
    short = np.array_split(np.arange(1), size)
    for rank in range(size):
        e = {"rank": np.array(rank), "size": np.array(size)}
        for op in ("sum", "prod", "max", "min", "mean"):
            e[f"allreduce.{op}"] = reduced(size, op)
        e["allreduce.int"] = np.array(size * (size + 1) // 2)
        e["allreduce.float32"] = np.array(np.float32(size - 1 + 0.5))
        e["allreduce.zero_d"] = np.array(size * (size - 1) // 2, dtype=np.int32)
        e["allreduce.device"] = reduced(size, "sum")
        e["allgather.rows"] = np.concatenate([np.full((r + 1, 2), r) + np.arange(2) for r in range(size)])
        e["allgather.scalars"] = np.arange(size) * 1.5
        e["broadcast.none"] = rank_input(size - 1)
        e["broadcast.like"] = rank_input(0)
        e["broadcast.device"] = rank_input(0)
        a, b = bounds[rank], bounds[rank + 1]
        e["reduce_scatter"] = reduced(size, "sum", tall_rows)[a:b]
        e["reduce_scatter.max"] = reduced(size, "max", tall_rows)[a:b]
        e["gather_of_scatter"] = reduced(size, "sum", tall_rows)
        e["reduce_scatter.short"] = (np.ones((1, 2)) * size * (size + 1) / 2)[short[rank]]
        left = (rank - 1) % size
        e["recv.tag2"] = np.array([left, 7])
        e["recv.tag1"] = rank_input(left)
        e["recv.device"] = np.arange(3.0) + left
        e["recv.big"] = big_message(left)[::2]
        e["recv.empty"] = np.zeros((0, 3), dtype=np.float32)
        if rank == 0:
            e["recv_any"] = np.array([[s, k] for s in range(1, size) for k in (0, 1)]).reshape(-1, 2)
        odd_out = size >= 3 and size % 2 == 1
        members = [r for r in range(size) if r % 2 == rank % 2 and not (odd_out and r == size - 1)]
        if rank in members:
            ordered = sorted(members, reverse=True)
            e["split.parity"] = np.array([ordered.index(rank), len(ordered), sum(members)])
            e["split.parity_gather"] = np.array(ordered)
        else:
            e["split.parity"] = np.array([-1, -1, -1])
        row = [r for r in range(size) if r // 2 == rank // 2]
        e["split.row"] = np.array(row)
        e["split.column"] = np.array([r for r in range(size) if r % 2 == rank % 2])
        if len(row) > 1:
            e["split.row_recv"] = np.array([row[(row.index(rank) - 1) % len(row)]])
        e["split.world_recv"] = np.array([100 + left])
        ranks.append(e)
    return ranks


def assert_as_expected(results: list[dict[str, np.ndarray]], size: int) -> None:
    """Assert that every rank returned exactly what ``expected`` says (same bits, same dtypes)."""
    wanted = expected(size)
    assert len(results) == size
    for rank, (got, want) in enumerate(zip(results, wanted)):
        assert sorted(got) == sorted(want), (rank, sorted(set(got) ^ set(want)))
        for name, value in want.items():
            value_got = np.asarray(got[name])
            assert value_got.shape == value.shape, (rank, name, value_got.shape, value.shape)
            assert np.array_equal(value_got, value), (rank, name, value_got, value)
            if value.dtype.kind == "f":
                assert value_got.dtype == value.dtype, (rank, name, value_got.dtype)


def argument_errors(comm):
    """Each bad call raises on the rank(s) that made it, naming the operation; the communicator stays usable."""
    messages = {}

    def record(name, call):
        with pytest.raises((ValueError, TypeError)) as info:
            call()
        messages[name] = f"{info.type.__name__}: {info.value}"

    rank = comm.rank
    record("shape", lambda: comm.allreduce(np.zeros(2 + rank)))
    record("dtype", lambda: comm.allreduce(np.zeros(2, dtype=np.float32 if rank else np.float64)))
    record("gather", lambda: comm.allgather(np.zeros((1, 2 + rank))))
    record("scatter_shape", lambda: comm.reduce_scatter(np.zeros((3, 1 + rank))))
    record("op", lambda: comm.allreduce(1.0, op="average"))
    record("bool_sum", lambda: comm.allreduce(np.array([True])))
    record("object", lambda: comm.allreduce(np.array(["a"])))
    record("list", lambda: comm.allreduce([1.0, 2.0]))
    record("scatter_scalar", lambda: comm.reduce_scatter(1.0))
    record("root", lambda: comm.broadcast(np.zeros(1), root=comm.size))
    record("dest", lambda: comm.send(np.zeros(1), dest=-1))
    record("source", lambda: comm.recv(source=comm.size))
    record("source_type", lambda: comm.recv(source=0.5))
    record("tag", lambda: comm.send(np.zeros(1), dest=0, tag=-3))
    record("color", lambda: comm.split("red"))
    record("color_negative", lambda: comm.split(-2))
    record("key", lambda: comm.split(0, key=1.5))
    messages["still_works"] = comm.allreduce(np.array([1.0]))[0]
    messages["any"] = comm.allreduce(np.array([rank == 1]), op="max")[0]
    return messages


def check_argument_errors(results: list[dict], size: int) -> None:
    """What ``argument_errors`` must have seen on every rank of a world of ``size``."""
    assert len(results) == size
    for rank, messages in enumerate(results):
        assert "allreduce" in messages["shape"] and "rank 0: shape (2,)" in messages["shape"] \
            and "rank 1: shape (3,)" in messages["shape"]
        assert "float32" in messages["dtype"] and "float64" in messages["dtype"]
        assert messages["gather"].startswith("ValueError: allgather") and "first dimension" in messages["gather"]
        assert messages["scatter_shape"].startswith("ValueError: reduce_scatter")
        assert "unknown op 'average'" in messages["op"]
        assert "boolean" in messages["bool_sum"]
        assert messages["object"].startswith("TypeError: allreduce") and "<U1" in messages["object"]
        assert messages["list"] == "TypeError: allreduce: expected a number or an array, got list"
        assert "reduce_scatter" in messages["scatter_scalar"] and "scalar" in messages["scatter_scalar"]
        assert messages["root"] == f"ValueError: broadcast: root {size} is not a rank of this communicator (0 .. {size - 1})"
        assert messages["dest"].startswith("ValueError: send: dest -1")
        assert messages["source"].startswith(f"ValueError: recv: source {size}")
        assert messages["source_type"] == "TypeError: recv: source must be an int rank, got float"
        assert messages["tag"].startswith("ValueError: send: tag")
        assert messages["color"].startswith("TypeError: split: color") and "str" in messages["color"]
        assert messages["color_negative"].startswith("ValueError: split: color")
        assert messages["key"] == "TypeError: split: key must be an int, got float"
        assert messages["still_works"] == size and messages["any"]


def in_world(world, rank: int, members: list[int], conn) -> None:
    """A process started by hand, as an executor starts its workers, running every_operation."""
    conn.send(every_operation(world.communicator(rank, members=members)))
    conn.close()
    world.close()


def every_operation_in_sizes(comm) -> dict:
    """On a world of 4: every_operation on the world (size 4), on [0, 1, 2] and [3] (sizes 3 and 1)
    and on [0, 1] and [2, 3] (size 2), sub-communicators made by split. One launch, every size."""
    assert comm.size == 4
    three_or_one = comm.split(0 if comm.rank < 3 else 1)
    pairs = comm.split(comm.rank // 2)
    runs = {4: every_operation(comm)}
    runs[three_or_one.size] = every_operation(three_or_one)
    runs[2] = every_operation(pairs)
    return {"runs": runs, "names": shared_names(comm)}


def shared_names(comm) -> list[str]:
    """The /dev/shm entries of a process world: its segment and its named semaphores."""
    world = comm._world  # noqa: SLF001 - the tests check that all of them are freed
    return [world.segment_name] + ["sem." + s._semlock.name.lstrip("/") for s in world.signals]  # noqa: SLF001


def every_operation_and_names(comm):
    return every_operation(comm), shared_names(comm)


def write_pid(comm, folder: str) -> None:
    # Written under another name and renamed, so that a reader never sees a half-written file.
    partial = Path(folder, f"rank{comm.rank}.pid.partial")
    partial.write_text(str(os.getpid()))
    os.replace(partial, Path(folder, f"rank{comm.rank}.pid"))
    if hasattr(comm._world, "segment_name"):  # noqa: SLF001 - the process transport
        Path(folder, "names").write_text("\n".join(shared_names(comm)))


def fail_on_rank_one(comm, folder: str):
    write_pid(comm, folder)
    comm.barrier()  # every rank has written its pid before rank 1 fails (the test counts them)
    if comm.rank == 1:
        raise KeyError("the shard of rank one")
    comm.allreduce(np.ones(3))  # the others wait here for rank 1 until it is known to have failed
    return comm.rank


def killed_on_rank_two(comm, folder: str):
    write_pid(comm, folder)
    comm.barrier()
    if comm.rank == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return comm.allreduce(np.ones(3))


def wait_for_ever(comm, folder: str):
    write_pid(comm, folder)
    return comm.recv(source=(comm.rank + 1) % comm.size)  # nobody sends


def orphaned_ranks(folder: str) -> None:
    """Run from a parent process that the test kills: its ranks must end and free the shared memory."""
    from tinyai.parallel import spmd

    spmd(wait_for_ever, 2, backend="process", timeout=600, args=(folder,))


def main(scenario: str, out: str) -> None:
    """Under mpiexec: run a scenario on the MPI world. "all": save this rank's results of every_operation;
    "fail": rank 1 raises while the others wait for it in an allreduce (the job must end)."""
    from tinyai.parallel import mpi_world

    comm = mpi_world(timeout=60)
    if scenario == "all":
        np.savez(f"{out}/rank{comm.rank}.npz", **every_operation(comm))
        errors = {name: np.array(value) for name, value in argument_errors(comm).items()}
        np.savez(f"{out}/rank{comm.rank}.errors.npz", **errors)
    elif scenario == "fail":
        comm.barrier()
        if comm.rank == 1:
            raise ValueError("rank one gives up")
        comm.allreduce(np.ones(2))
        Path(out, f"rank{comm.rank}.passed").write_text("the allreduce returned without rank 1")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
