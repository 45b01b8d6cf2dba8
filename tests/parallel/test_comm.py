"""Every Communicator operation on the thread and process transports (MPI: test_comm_mpi.py).

The process tests start real processes that talk through real shared memory;
each starts one spmd run with many checks inside, because starting Python
processes is what costs time.
"""
import gc
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyai.parallel import CommunicatorError, ProcessWorld, SpmdError, ThreadWorld, spmd

from tests.parallel import comm_programs

ROOT = Path(__file__).resolve().parents[2]


def shared_segments():
    """The shared-memory segments and named semaphores of this machine (Linux: files in /dev/shm)."""
    gc.collect()  # a world's semaphores are unlinked when the object goes
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def names_in(folder):
    return set(Path(folder, "names").read_text().split())


def running(pid):
    """True while process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pids_in(folder):
    return [int(p.read_text()) for p in Path(folder).glob("rank*.pid")]


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_every_operation_on_threads(size):
    comm_programs.assert_as_expected(spmd(comm_programs.every_operation, size, backend="thread", timeout=30), size)


def test_every_operation_on_processes():
    """Sizes 1 to 4 in two launches: a world of 1, and a world of 4 split into sub-communicators of 3, 2 and 1."""
    runs = spmd(comm_programs.every_operation_and_names, 1, backend="process", timeout=30)
    comm_programs.assert_as_expected([results for results, _ in runs], 1)
    names = set(runs[0][1])
    ranks = spmd(comm_programs.every_operation_in_sizes, 4, backend="process", timeout=30)
    assert not mp.active_children()
    comm_programs.assert_as_expected([rank["runs"][4] for rank in ranks], 4)
    comm_programs.assert_as_expected([rank["runs"][3] for rank in ranks[:3]], 3)
    comm_programs.assert_as_expected([ranks[3]["runs"][1]], 1)
    comm_programs.assert_as_expected([ranks[0]["runs"][2], ranks[1]["runs"][2]], 2)
    comm_programs.assert_as_expected([ranks[2]["runs"][2], ranks[3]["runs"][2]], 2)
    world_names = set(ranks[0]["names"])
    assert len(names) == 1 + 1 and len(world_names) == 1 + 4 * 4  # a segment, a semaphore per ordered pair
    assert not (names | world_names) & shared_segments()  # nothing left in /dev/shm


@pytest.mark.parametrize("start_method", ["spawn", "fork"])
def test_process_world_in_rounds_and_on_a_subset_of_its_ranks(start_method):
    """An executor's view: processes it starts itself ('fork' in a notebook), a slot of 64 bytes
    (arrays cross in many rounds), and a step that uses 3 of the world's 4 ranks, in the order [3, 1, 0].
    The children close the world; only its creator frees the block."""
    if start_method not in mp.get_all_start_methods():
        pytest.skip(f"this system cannot start processes by {start_method!r}")
    context = mp.get_context(start_method)
    world = ProcessWorld(4, timeout=30, context=context, capacity=64)
    members = [3, 1, 0]
    pipes, processes = [], []
    try:
        for rank in range(len(members)):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=comm_programs.in_world, args=(world, rank, members, sender))
            process.start()
            sender.close()
            pipes.append(receiver)
            processes.append(process)
        results = [pipe.recv() for pipe in pipes]
    finally:
        for process in processes:
            process.join(30)
        name = world.segment_name
        children_closed = name in shared_segments()
        world.close()
    comm_programs.assert_as_expected(results, len(members))
    assert children_closed  # the children's close() left the block to its creator
    assert name not in shared_segments()


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_argument_errors_name_the_operation(backend):
    comm_programs.check_argument_errors(spmd(comm_programs.argument_errors, 2, backend=backend, timeout=30), 2)


def leave_early(comm):
    if comm.rank == 1:
        return "gone"
    return comm.allreduce(np.ones(3))


def wait_for_nothing(comm):
    if comm.rank == 0:
        return comm.recv(source=1, tag=5)
    return "sent nothing"


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_failed_rank_ends_the_run_and_is_named(backend, tmp_path):
    with pytest.raises(SpmdError) as info:
        spmd(comm_programs.fail_on_rank_one, 3, backend=backend, timeout=30, args=(str(tmp_path),))
    assert info.value.rank == 1
    assert isinstance(info.value.cause, KeyError)
    text = str(info.value)
    assert text.startswith("spmd: rank 1 failed: KeyError: 'the shard of rank one'")
    assert "traceback of rank 1" in text and "fail_on_rank_one" in text and 'raise KeyError' in text
    if backend == "process":
        assert len(pids_in(tmp_path)) == 3 and not any(running(pid) for pid in pids_in(tmp_path))
        del info
        assert not names_in(tmp_path) & shared_segments()


def test_a_killed_process_is_named_and_the_others_end(tmp_path):
    with pytest.raises(SpmdError) as info:
        spmd(comm_programs.killed_on_rank_two, 3, backend="process", timeout=60, args=(str(tmp_path),))
    assert info.value.rank == 2
    assert "died with signal SIGKILL" in str(info.value)
    assert len(pids_in(tmp_path)) == 3 and not any(running(pid) for pid in pids_in(tmp_path))
    del info
    assert not names_in(tmp_path) & shared_segments()


def test_ranks_whose_parent_dies_end_and_free_the_shared_memory(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import sys; from tests.parallel.comm_programs import "
                               "orphaned_ranks; orphaned_ranks(sys.argv[1])", str(tmp_path)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60
        while len(pids_in(tmp_path)) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
        children = pids_in(tmp_path)
        assert len(children) == 2, "the ranks did not start"
        segment = sorted(names_in(tmp_path))[0]  # psm_... sorts before sem....
        assert segment.startswith("psm_") and segment in shared_segments()
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30  # a bound, not a speed check: they notice within a second
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in children)
    assert segment not in shared_segments()


def nested(comm):
    return comm.rank


def test_process_backend_refuses_what_cannot_be_pickled():
    with pytest.raises(TypeError, match="picklable.*lambda"):
        spmd(lambda comm: comm.rank, 2, backend="process")
    with pytest.raises(TypeError, match="picklable"):
        spmd(nested, 2, backend="process", args=(lambda: 0,))


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_a_rank_that_never_arrives_is_named_after_the_timeout(backend):
    with pytest.raises(SpmdError) as info:
        spmd(leave_early, 3, backend=backend, timeout=0.5)
    assert info.value.rank in (0, 2)  # a rank that waited; it names the one that never came
    assert isinstance(info.value.cause, CommunicatorError) and info.value.cause.rank == 1
    assert info.value.cause.op == "allreduce"
    assert "allreduce" in str(info.value) and "rank 1" in str(info.value) and "0.5 s" in str(info.value)
    with pytest.raises(SpmdError) as info:
        spmd(wait_for_nothing, 2, backend=backend, timeout=0.5)
    assert info.value.rank == 0
    assert "recv on rank 0: nothing from rank 1 (tag 5) within 0.5 s" in str(info.value)


def late_in_a_sub_communicator(comm):
    pair = comm.split(0 if comm.rank == 0 else 1)  # [0] and [1, 2]
    if comm.rank == 2:
        return "never joins its pair's allreduce"
    return pair.allreduce(1.0)


def test_a_late_rank_of_a_sub_communicator_is_named_by_its_world_rank():
    with pytest.raises(SpmdError) as info:
        spmd(late_in_a_sub_communicator, 3, timeout=0.5)
    assert info.value.rank == 1 and info.value.cause.rank == 2  # world rank 2 (rank 1 of the pair)
    assert "rank 2 failed: did not arrive at allreduce within 0.5 s" in str(info.value)


def test_spmd_arguments_are_checked():
    with pytest.raises(ValueError, match="world_size must be an int >= 1, got 0"):
        spmd(leave_early, 0)
    with pytest.raises(ValueError, match="unknown backend 'mpi'"):
        spmd(leave_early, 2, backend="mpi")
    with pytest.raises(ValueError, match="spmd: timeout must be a number of seconds > 0, got 0"):
        spmd(leave_early, 2, timeout=0)
    with pytest.raises(ValueError, match="ThreadWorld: timeout must be a number of seconds > 0, got '5'"):
        ThreadWorld(2, timeout="5")


def test_thread_world_abort_releases_waiting_ranks():
    """An executor's view: ranks in threads it manages, one of them reported failed from outside."""
    import threading

    world = ThreadWorld(2, timeout=30)
    errors = []

    def rank_zero():
        try:
            world.communicator(0).allreduce(np.ones(2))
        except CommunicatorError as exc:
            errors.append(exc)

    thread = threading.Thread(target=rank_zero)
    thread.start()
    world.abort(1, "worker 1 raised MemoryError")
    thread.join(10)
    assert not thread.is_alive()
    assert errors and errors[0].rank == 1 and errors[0].op == "allreduce"
    assert "rank 1 failed: worker 1 raised MemoryError" in str(errors[0])
    with pytest.raises(CommunicatorError, match="barrier on rank 0"):  # an aborted world stays aborted
        world.communicator(0).barrier()
    world.reset()  # until reset, between two steps of an executor
    sums = spmd_on(world, lambda comm: comm.allreduce(comm.rank + 1.0))
    assert sums == [3.0, 3.0]


def spmd_on(world, fn, members=None):
    """Run fn on threads of an existing ThreadWorld (as an executor does), over ``members``."""
    import threading

    count = world.size if members is None else len(members)
    results = [None] * count

    def run(rank):
        results[rank] = fn(world.communicator(rank, members=members))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_thread_world_on_a_subset_of_its_ranks():
    world = ThreadWorld(4, timeout=30)
    results = spmd_on(world, comm_programs.every_operation, members=[3, 1, 0])
    comm_programs.assert_as_expected(results, 3)
    with pytest.raises(ValueError, match="members must be distinct ranks of 0 .. 3, got \\[1, 1\\]"):
        world.communicator(0, members=[1, 1])
