"""Communicators: how the ranks of a parallel program talk (see ``base.py`` for what each operation does).

One interface (``Communicator``), one implementation per transport:

* ``ThreadCommunicator`` — ranks are threads of one process (``thread.py``);
* ``ProcessCommunicator`` — ranks are processes of one machine, over shared memory (``process.py``);
* ``MpiCommunicator`` — ranks are the processes of an MPI job, anywhere (``mpi.py``).

``spmd(fn, world_size)`` runs ``fn(comm)`` on every rank (``spmd.py``).
"""
from tinyai.parallel.comm.base import REDUCE_OPS, Communicator, CommunicatorError
from tinyai.parallel.comm.mpi import MpiCommunicator, mpi_world
from tinyai.parallel.comm.process import ProcessCommunicator, ProcessWorld
from tinyai.parallel.comm.spmd import SpmdError, spmd
from tinyai.parallel.comm.thread import ThreadCommunicator, ThreadWorld

__all__ = ["Communicator", "CommunicatorError", "ThreadCommunicator", "ThreadWorld", "ProcessCommunicator",
           "ProcessWorld", "MpiCommunicator", "mpi_world", "spmd", "SpmdError"]
