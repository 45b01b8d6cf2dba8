"""tinyai.backend.memory: malloc keeps freed blocks for the next array (glibc), and can be told not to."""
import subprocess
import sys

import pytest

from tinyai.backend import memory

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or "glibc" not in " ".join(
    __import__("platform").libc_ver()), reason="the malloc settings exist on Linux with glibc only")


def _applied_in_a_fresh_process(env_value):
    code = "import tinyai.backend.memory as m; print(m.keep_freed_memory())"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    if env_value is not None:
        env["TINYAI_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@glibc
def test_importing_tinyai_applies_the_settings_once():
    assert memory.keep_freed_memory() is True  # tinyai.backend applied them at import
    assert memory.keep_freed_memory() is True


@glibc
def test_tinyai_malloc_system_leaves_malloc_alone():
    assert _applied_in_a_fresh_process("system") == "False"
    assert _applied_in_a_fresh_process(None) == "True"
