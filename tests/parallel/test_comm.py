"""Every Communicator operation on the thread and process transports (MPI: test_comm_mpi.py)."""
import numpy as np
import pytest

from tinyai.parallel import CommunicatorError, SpmdError, ThreadWorld, spmd

from tests.parallel import comm_programs


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_every_operation_on_threads(size):
    comm_programs.compare(spmd(comm_programs.every_operation, size, backend="thread", timeout=30), size)


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


@pytest.mark.parametrize("backend", ["thread"])
def test_argument_errors_name_the_operation(backend):
    results = spmd(argument_errors, 2, backend=backend, timeout=30)
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
        assert messages["root"] == "ValueError: broadcast: root 2 is not a rank of this communicator (0 .. 1)"
        assert messages["dest"].startswith("ValueError: send: dest -1")
        assert messages["source"].startswith("ValueError: recv: source 2")
        assert messages["source_type"] == "TypeError: recv: source must be an int rank, got float"
        assert messages["tag"].startswith("ValueError: send: tag")
        assert messages["color"].startswith("TypeError: split: color") and "str" in messages["color"]
        assert messages["color_negative"].startswith("ValueError: split: color")
        assert messages["key"] == "TypeError: split: key must be an int, got float"
        assert messages["still_works"] == 2.0 and messages["any"]


def fail_on_rank_one(comm):
    if comm.rank == 1:
        raise KeyError("the shard of rank one")
    comm.allreduce(np.ones(3))  # the others wait here for rank 1 until it is known to have failed
    return comm.rank


def leave_early(comm):
    if comm.rank == 1:
        return "gone"
    return comm.allreduce(np.ones(3))


def wait_for_nothing(comm):
    if comm.rank == 0:
        return comm.recv(source=1, tag=5)
    return "sent nothing"


@pytest.mark.parametrize("backend", ["thread"])
def test_a_failed_rank_ends_the_run_and_is_named(backend):
    with pytest.raises(SpmdError) as info:
        spmd(fail_on_rank_one, 3, backend=backend, timeout=30)
    assert info.value.rank == 1
    text = str(info.value)
    assert text.startswith("spmd: rank 1 failed: KeyError: 'the shard of rank one'")
    assert "traceback of rank 1" in text and "fail_on_rank_one" in text and 'raise KeyError' in text


@pytest.mark.parametrize("backend", ["thread"])
def test_a_rank_that_never_arrives_is_named_after_the_timeout(backend):
    with pytest.raises(SpmdError) as info:
        spmd(leave_early, 3, backend=backend, timeout=0.5)
    assert info.value.rank in (0, 2)  # a rank that waited; it names the one that never came
    assert "allreduce" in str(info.value) and "rank 1" in str(info.value) and "0.5 s" in str(info.value)
    with pytest.raises(SpmdError) as info:
        spmd(wait_for_nothing, 2, backend=backend, timeout=0.5)
    assert info.value.rank == 0
    assert "recv on rank 0: nothing from rank 1 (tag 5) within 0.5 s" in str(info.value)


def test_spmd_arguments_are_checked():
    with pytest.raises(ValueError, match="world_size must be an int >= 1, got 0"):
        spmd(leave_early, 0)
    with pytest.raises(ValueError, match="unknown backend 'mpi'"):
        spmd(leave_early, 2, backend="mpi")


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
