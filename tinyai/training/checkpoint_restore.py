"""Putting a checkpoint back into a model, an optimizer and a Monitor: all of it or none of it.

Restoring touches four things: the model's weights, the optimizer's state,
the Monitor's history and the random generator. If the third one refused
after the first two had changed, the Trainer would be left half in the old
run and half in the new one: weights from epoch 5, moments from epoch 2.
So every part is checked first (each part's ``check_state_dict``, or a dry
run on a copy), and only then is anything changed; the random state, the
one part without a check, is set first and put back if a check fails.
"""
from __future__ import annotations

import copy
from typing import Any

from tinyai.backend import get_state, set_state


def restore_checkpoint(checkpoint: Any, model: Any, optimizer: Any, monitor: Any, where: str) -> None:
    """Load ``checkpoint`` (a ``Checkpoint``) into the three, or raise ValueError naming ``where`` and change nothing."""
    previous_rng = get_state()
    try:
        if checkpoint.rng_state is not None:
            set_state(checkpoint.rng_state)
        if hasattr(model, "check_state_dict"):
            model.check_state_dict(checkpoint.model_state)
        if checkpoint.optimizer_state is not None and hasattr(optimizer, "check_state_dict"):
            optimizer.check_state_dict(checkpoint.optimizer_state)
        if checkpoint.monitor_state is not None and monitor is not None:
            copy.deepcopy(monitor).load_state_dict(checkpoint.monitor_state)  # a dry run
    except (ValueError, TypeError, KeyError) as error:
        set_state(previous_rng)
        detail = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise ValueError(f"{where} does not fit: {detail}; nothing was changed") from None
    except BaseException:
        set_state(previous_rng)
        raise
    model.load_state_dict(checkpoint.model_state)
    if checkpoint.optimizer_state is not None:
        optimizer.load_state_dict(checkpoint.optimizer_state)
    if checkpoint.monitor_state is not None and monitor is not None:
        monitor.load_state_dict(checkpoint.monitor_state)
