"""The ``tinyai train`` command: help text, a short real run, checkpoints and resume."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyai.cli import build_parser, main
from tinyai.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_train_help_lists_the_options_and_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--example", "--epochs", "--batch-size", "--lr", "--optimizer", "--no-progress",
                   "--plot", "--checkpoint", "--resume", "--limit", "--data-dir"):
        assert option in text
    for example in ("mnist-mlp", "mnist-cnn", "spiral", "sin-lstm"):
        assert example in text


def test_parser_accepts_the_documented_command_line():
    args = build_parser().parse_args(["train", "--example", "mnist-mlp", "--epochs", "5", "--batch-size", "64",
                                      "--lr", "0.1", "--optimizer", "sgd"])
    assert (args.example, args.epochs, args.batch_size, args.lr, args.optimizer) == ("mnist-mlp", 5, 64, 0.1, "sgd")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--example", "imagenet"])


def test_demo_subcommand_still_works(capsys):
    assert main(["demo"]) == 0
    assert "minimum at x = 1.0000000000" in capsys.readouterr().out


def test_one_quick_epoch_of_mnist_mlp_learns(tmp_path, capsys):
    # 600 training images, 1 epoch: far from the demo's 94%, but well above
    # chance (10%); a broken loop stays near chance.
    plot = tmp_path / "curves.png"
    checkpoint = tmp_path / "ckpt.npz"
    code = main(["train", "--example", "mnist-mlp", "--epochs", "1", "--batch-size", "32", "--lr", "0.1",
                 "--optimizer", "sgd", "--limit", "600", "--no-progress", "--plot", str(plot),
                 "--checkpoint", str(checkpoint)])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: loss " in out
    accuracy = float(out.split("final test accuracy: ")[1].split("%")[0])
    assert accuracy > 60.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = load_checkpoint(checkpoint)
    assert saved.epoch == 1 and saved.model_state["fc1.W"].shape == (784, 128)


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt.npz"
    common = ["train", "--example", "spiral", "--batch-size", "30", "--no-progress"]
    main(common + ["--epochs", "2", "--checkpoint", str(checkpoint)])
    capsys.readouterr()
    main(common + ["--epochs", "3", "--resume", str(checkpoint)])
    out = capsys.readouterr().out
    assert "resumed from" in out and "after epoch 2" in out
    assert "epoch 3/3" in out and "epoch 1/3" not in out


def run_cli(*args, block_matplotlib=False, cwd=None):
    """``python -m tinyai ARGS`` in a new process; (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import sys; sys.modules['matplotlib'] = None; " if block_matplotlib else ""
    code += "import runpy; runpy.run_module('tinyai', run_name='__main__')"
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                            timeout=120, cwd=cwd)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--plot", "{tmp}/no-such-dir/curves.png"], "--plot {tmp}/no-such-dir/curves.png: directory"),
    (["--plot", "{tmp}"], "is a directory"),
    (["--plot", "{tmp}/curves.xyz"], "unknown image format 'xyz'"),
    (["--save", "{tmp}/missing/model.npz"], "--save {tmp}/missing/model.npz: directory"),
    (["--checkpoint", "{tmp}/file.txt/ckpt.npz"], "--checkpoint {tmp}/file.txt/ckpt.npz: directory"),
    (["--resume", "{tmp}/nothing.npz"], "--resume {tmp}/nothing.npz: no such file"),
    (["--data-dir", "{tmp}/no-such-dir"], "--data-dir {tmp}/no-such-dir: no such directory"),
    (["--data-dir", "{tmp}"], "needs at least t10k-images-idx3-ubyte"),
    (["--example", "spiral", "--data-dir", "{tmp}"], "--data-dir is for the MNIST examples"),
    (["--epochs", "0"], "--epochs and --batch-size must be >= 1"),
    (["--device", "tpu"], "--device tpu: Device: expected 'cpu', 'gpu' or 'gpu:N'"),
])
def test_bad_arguments_are_reported_at_once_in_one_line(tmp_path, capsys, args, expected):
    (tmp_path / "file.txt").write_text("not a directory")
    args = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit) as info:       # SystemExit: Python prints no traceback
        main(["train", *args])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("tinyai train: error: ") and expected.format(tmp=tmp_path) in captured.err
    assert "epoch" not in captured.out             # nothing was trained first


def test_plot_without_matplotlib_is_reported_before_training_by_the_real_command(tmp_path):
    status, out, err = run_cli("train", "--example", "spiral", "--plot", str(tmp_path / "c.png"),
                               block_matplotlib=True)
    assert status == 2 and "Traceback" not in err and err.count("\n") == 1
    assert err == "tinyai train: error: --plot needs matplotlib: pip install 'tinyai-numpy[viz]'\n"
    assert "epoch" not in out


def test_console_script_entry_point_runs_as_a_module():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "tinyai", "train", "--help"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0 and "--optimizer" in result.stdout


def test_an_unknown_recipe_is_named_with_the_known_ones():
    from tinyai.training.recipes import RECIPES, get_recipe

    with pytest.raises(ValueError, match=r"get_recipe: unknown example 'mnist-rnn'; choose one of .*mnist-mlp"):
        get_recipe("mnist-rnn")
    assert get_recipe("spiral") is RECIPES["spiral"]
