"""The command line: a driver killed mid-budget resumes to the same store; bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from vbi_dask import store as store_module
from vbi_dask.budget import Budget
from vbi_dask.configuration import budget_from_config
from vbi_dask.cli import main

from tests._processes import signal_when

from .conftest import FEATURES, SLOW_MS, connectome, read_lines, slow_budget, store_done, tree

ROOT = Path(__file__).parents[2]


def write_config(folder: Path, **overrides) -> Path:
    """The YAML of :func:`slow_budget`, with the connectome in text files."""
    c = connectome()
    np.savetxt(folder / "weights.txt", c.weights)
    np.savetxt(folder / "lengths.txt", c.tract_lengths_mm)
    config = {
        "model": "mpr",
        "connectome": {"weights": "weights.txt", "tract_lengths": "lengths.txt", "normalise": "none", "name": "tiny"},
        "simulation": {
            "dt_ms": 0.1,
            "duration_ms": SLOW_MS,
            "monitors": {"temporal_average": {"period_ms": 10.0}, "bold": {"tr_ms": 100.0}},
        },
        "prior": {"G": [0.0, 1.0], "eta": {"low": -6.0, "high": -3.5, "nodes": [0, 3]}},
        "n_sims": 64,
        "chunk_size": 8,
        "seed": 7,
        "features": FEATURES,
        "keep_bold": False,
        **overrides,
    }
    path = folder / "budget.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_config_file_describes_the_slow_budget(tmp_path):
    config = write_config(tmp_path)
    assert budget_from_config(yaml.safe_load(config.read_text()), base_dir=tmp_path).attrs() == slow_budget().attrs()


@pytest.mark.slow
def test_driver_killed_mid_budget_resumes_to_the_same_store(tmp_path, slow_reference, count_writes):
    config = write_config(tmp_path)
    path = tmp_path / "driver.zarr"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vbi_dask.cli",
            "simulate",
            str(config),
            "--store",
            str(path),
            "--scheduler",
            "sync",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    done_before = np.zeros(0, dtype=bool)
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                done_before = zarr.open_group(str(path), mode="r")["done"][:]
            except (FileNotFoundError, KeyError, ValueError):
                pass
            if done_before.sum() >= 16:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        err = process.stderr.read().decode()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, err[-2000:]
    done_before = zarr.open_group(str(path), mode="r")["done"][:]
    assert 16 <= done_before.sum() < 64

    assert main(["simulate", str(config), "--store", str(path), "--scheduler", "sync", "--quiet"]) == 0
    missing = sorted({s for s in range(0, 64, 8) if not done_before[s : s + 8].all()})
    assert sorted(int(s) for s in read_lines(count_writes)) == missing  # only the missing blocks ran
    assert tree(path) == tree(slow_reference)  # bit for bit, metadata included


def test_cli_reports_bad_input_without_touching_the_store(tmp_path, capsys, reference_store):
    config = write_config(tmp_path, prior={"Gx": [0.0, 1.0]})
    assert main(["simulate", str(config), "--store", str(tmp_path / "s.zarr"), "--scheduler", "sync"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'Gx'" in err and "valid parameters" in err
    assert not (tmp_path / "s.zarr").exists()

    config = write_config(tmp_path, chunk_size=0)
    assert main(["simulate", str(config), "--store", str(tmp_path / "s.zarr")]) == 2
    assert "chunk_size must be a positive integer, got 0" in capsys.readouterr().err

    file = tmp_path / "file.zarr"
    file.write_text("precious")
    config = write_config(tmp_path)
    assert main(["simulate", str(config), "--store", str(file), "--scheduler", "sync"]) == 2
    assert "is a file" in capsys.readouterr().err and file.read_text() == "precious"

    before = tree(reference_store)
    assert main(["simulate", str(config), "--store", str(reference_store), "--scheduler", "sync"]) == 2
    assert "another budget configuration" in capsys.readouterr().err
    assert tree(reference_store) == before


def one_line_error(capsys, command: str = "simulate") -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"vbi-dask {command}: error: "), err
    return err.strip()


def test_configuration_and_path_errors_are_one_line_usage_errors(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: mpr\nprior:\n  G: [0.0, 1.0\nn_sims: 8\n")
    assert main(["simulate", str(bad), "--store", str(store)]) == 2
    assert one_line_error(capsys) == (
        f"vbi-dask simulate: error: {bad}: invalid YAML at line 4, column 7: expected ',' or ']', but got ':'"
    )
    bad.write_text("model: mpr\n  seed: 1\n")
    assert main(["simulate", str(bad), "--store", str(store)]) == 2
    assert "invalid YAML at line 2, column 7: mapping values are not allowed here" in one_line_error(capsys)
    assert main(["simulate", str(tmp_path), "--store", str(store)]) == 2
    assert f"configuration {str(tmp_path)!r} is a directory, not a file" in one_line_error(capsys)
    assert main(["simulate", str(tmp_path / "none.yaml"), "--store", str(store)]) == 2
    assert "does not exist" in one_line_error(capsys)
    config = write_config(tmp_path)
    assert main(["simulate", str(config), "--store", str(store), "--cluster-config", str(tmp_path)]) == 2
    assert f"--cluster-config {str(tmp_path)!r} is a directory" in one_line_error(capsys)

    folder = tmp_path / "connectome"
    folder.mkdir()
    config = write_config(tmp_path, connectome=str(folder))
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync"]) == 2
    assert f"connectome path {folder} is a directory, not a TVB connectome zip file" in one_line_error(capsys)
    config = write_config(tmp_path, connectome={"weights": "connectome", "normalise": "none"})
    assert main(["simulate", str(config), "--store", str(store), "--scheduler", "sync"]) == 2
    assert f"connectome path {folder} is a directory, not a weights" in one_line_error(capsys)
    assert not store.exists()

    for argv in (["--debug", "simulate", str(config)], ["simulate", str(config), "--debug"]):
        assert main(argv + ["--store", str(store)]) == 2  # still a usage error, with the traceback
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and "IsADirectoryError" in err
        assert err.strip().splitlines()[-1].startswith("vbi-dask simulate: error: connectome path")


def test_failure_while_running_is_exit_1_with_one_line(tmp_path, capsys, monkeypatch):
    """A ValueError or OSError raised by a library while the budget runs is a failure of the
    run (1), not a usage error (2) as it would be while reading the configuration."""
    config = write_config(tmp_path)
    for error in (OSError(28, "No space left on device"), ValueError("Expected parameter loc to be finite")):

        def fail(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(Budget, "run", fail)
        assert (
            main(["simulate", str(config), "--store", str(tmp_path / "s.zarr"), "--scheduler", "sync", "--no-check"])
            == 1
        )
        err = capsys.readouterr().err
        assert err == f"vbi-dask simulate: failed: {type(error).__name__}: {error}\n"
        assert (
            main(
                [
                    "--debug",
                    "simulate",
                    str(config),
                    "--store",
                    str(tmp_path / "s.zarr"),
                    "--scheduler",
                    "sync",
                    "--no-check",
                ]
            )
            == 1
        )
        assert capsys.readouterr().err.startswith("Traceback")


def test_ctrl_c_says_how_many_blocks_are_done_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) after the first block:
    one line naming the done simulations and blocks, no traceback, and the count is the store's."""
    config = write_config(tmp_path)
    path = tmp_path / "interrupted.zarr"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vbi_dask.cli",
            "simulate",
            str(config),
            "--store",
            str(path),
            "--scheduler",
            "sync",
            "--quiet",
            "--no-check",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = signal_when(process, lambda: store_done(path).sum() >= 8, signal.SIGINT, group=True)
    assert process.returncode == 130, err[-2000:]
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    match = re.fullmatch(
        r"vbi-dask simulate: interrupted: (\d+) of 64 simulations \((\d+) of 8 blocks\) of (.+) are "
        r"done; run the same command again to resume\n",
        err,
    )
    assert match, err
    done = store_module.read_done(path)
    assert 8 <= int(match[1]) == done.sum() < 64 and int(match[2]) == int(match[1]) // 8
    assert Path(match[3]) == path


def test_module_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "vbi_dask.cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 0 and "simulate" in out.stdout


# ---------------------------------------------------------------------- version, help, extras
def test_version_is_the_package_version(capsys):
    import vbi_dask

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"vbi-dask {vbi_dask.__version__}\n"


def _options_help(capsys, argv: list[str]) -> dict[str, str]:
    """Option -> its help text (lines joined), parsed from ``--help`` output."""
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--help"])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    entries: dict[str, str] = {}
    current = None
    rest = lines[lines.index("options:") + 1 :]
    for k, line in enumerate(rest):
        if not line.strip():
            # a blank line ends the options, unless an argument group's options follow
            following = rest[k + 1 : k + 3]
            if len(following) == 2 and following[0].endswith(":") and following[1].startswith("  -"):
                continue
            break
        if not line.startswith(" "):  # an argument group's title
            continue
        if re.match(r"  -", line):
            flags, _, text = line.strip().partition("  ")
            current = flags.split(",")[-1].split()[0]
            entries[current] = text.strip()
        else:
            entries[current] = (entries[current] + " " + line.strip()).strip()
    return entries


def test_every_option_of_every_command_shows_its_default(capsys):
    from vbi_dask.cli import COMMANDS

    for argv in [[]] + [[name] for name in COMMANDS]:
        entries = _options_help(capsys, argv)
        assert "--debug" in entries, argv
        for flag, text in entries.items():
            if flag in ("--help", "--version"):
                continue
            assert "default" in text or text.endswith("(required)"), (argv, flag, text)
    simulate, train = _options_help(capsys, ["simulate"]), _options_help(capsys, ["train"])
    assert simulate["--store"].endswith("(required)") and simulate["--quiet"] == "no progress bar (default: off)"
    assert train["--batch-size"].endswith("(default: 200)") and train["--out"].endswith("(default: posterior.pt)")


def test_help_documents_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    epilog = out[out.index("exit status") :]
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^  {code} +\S", epilog, re.M), (code, epilog)
    assert "missing optional dependency" in epilog


TRAIN_EXTRA = (
    "this command needs the 'train' extra: pip install 'vbi-dask[train]' (missing: torch, lightning, sbi, matplotlib)"
)


def test_missing_extras_are_one_line_usage_errors(tmp_path, capsys, monkeypatch):
    """Training commands without torch, Lightning, sbi and matplotlib; cluster kinds without
    their packages: exit 2, one line naming the extra, nothing written."""
    for module in ("torch", "lightning", "sbi", "matplotlib", "dask_jobqueue", "dask_cuda"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    for argv in (
        ["train", str(tmp_path)],
        ["infer", "model.pt", "--observed", "x.npy"],
        ["demo", "--out", str(tmp_path / "demo")],
    ):
        assert main(argv) == 2
        assert one_line_error(capsys, argv[0]) == f"vbi-dask {argv[0]}: error: {TRAIN_EXTRA}"
    assert not (tmp_path / "demo").exists()
    config = write_config(tmp_path)
    for kind, package in (("slurm", "dask-jobqueue"), ("cuda", "dask-cuda")):
        store = tmp_path / f"{kind}.zarr"
        assert main(["simulate", str(config), "--store", str(store), "--cluster", kind, "--no-check"]) == 2
        assert one_line_error(capsys) == (
            f"vbi-dask simulate: error: cluster kind {kind!r} needs the {kind!r} extra: "
            f"pip install 'vbi-dask[{kind}]' (missing: {package})"
        )
        assert not store.exists()


# ---------------------------------------------------------------------- status
INVALID = "invalid: diverged or outside the prior"


def _status(capsys, store) -> dict[str, str]:
    """``vbi-dask status STORE`` (exit 0) as label -> text; the hint under ``next``."""
    assert main(["status", str(store)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    rows = {}
    for line in captured.out.splitlines():
        if line.startswith("next: "):
            rows["next"] = line[len("next: ") :]
        elif line[:17].strip():
            rows[line[:17].strip()] = line[18:]
    return rows


def _flags(store) -> tuple[np.ndarray, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    return group["done"][:], group["valid"][:]


def test_status_of_a_finished_store(capsys, reference_store):
    import vbi_dask
    from vbi_dask.kernels.edges import NUMERICS_VERSION

    before = tree(reference_store)
    rows = _status(capsys, reference_store)
    done, valid = _flags(reference_store)
    invalid = int((done & ~valid).sum())
    assert done.all() and 0 < invalid < 40  # the reference has both kinds of rows
    assert rows["store"] == str(reference_store)
    assert rows["schema"] == (
        f"version 1, written by vbi-dask {vbi_dask.__version__}, kernel numerics {NUMERICS_VERSION}"
    )
    assert rows["model"] == "mpr on 6 nodes (connectome 'tiny'), dt 0.1 ms, 2000 ms per simulation, heun integrator"
    assert rows["parameters"] == "3: G, eta[0], eta[3]"
    assert rows["features"] == str(zarr.open_group(str(reference_store), mode="r")["features"].shape[1])
    assert rows["budget"] == "40 simulations in blocks of 8, seed 7"
    assert rows["blocks done"] == "5 / 5"
    assert rows["simulations done"] == f"40 / 40 ({40 - invalid} valid, {invalid} {INVALID})"
    assert rows["not done"] == "0"
    assert rows["claim"] == "none (no driver is writing it)"
    assert rows["next"].startswith(f"complete: 'vbi-dask verify {reference_store}'")
    assert f"trains on its {40 - invalid} valid simulations" in rows["next"]
    out = subprocess.run(
        [sys.executable, "-m", "vbi_dask.cli", "status", str(reference_store)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert out.returncode == 0 and "G: Uniform(low=0, high=1)" in out.stdout
    assert "eta at node(s) 0, 3: Uniform(low=-6, high=-3.5)" in out.stdout
    assert tree(reference_store) == before  # reads only


def test_status_of_a_half_done_store(tmp_path, capsys, reference_store):
    store = tmp_path / "half.zarr"
    shutil.copytree(reference_store, store)
    group = zarr.open_group(str(store), mode="r+")
    group["done"][8:16] = False  # blocks 1 and 4 not done (as after a killed driver)
    group["done"][32:40] = False
    done, valid = _flags(store)
    rows = _status(capsys, store)
    invalid = int((done & ~valid).sum())
    assert rows["blocks done"] == "3 / 5"
    assert rows["simulations done"] == f"24 / 40 ({24 - invalid} valid, {invalid} {INVALID})"
    assert rows["not done"] == "16 (failed or not yet run: run the budget again)"
    assert rows["next"] == (
        f"resume with 'vbi-dask simulate CONFIG --store {store}' (CONFIG: the configuration that "
        "made it): only the 2 block(s) not done run"
    )
    assert main(["status", str(tmp_path / "none.zarr")]) == 2
    assert "no store at" in one_line_error(capsys, "status")


def test_status_names_the_driver_holding_the_store(tmp_path, capsys, reference_store):
    store = tmp_path / "held.zarr"
    shutil.copytree(reference_store, store)
    claim = store.with_name("held.zarr.lock")
    claim.write_text(json.dumps({"host": "node-b", "pid": 4242, "started": "2026-01-02 10:00:00 UTC", "token": "t"}))
    rows = _status(capsys, store)
    assert re.fullmatch(
        r"held by host node-b, pid 4242, since 2026-01-02 10:00:00 UTC, last refreshed \d+ s ago: "
        r"looks live",
        rows["claim"],
    ), rows["claim"]
    assert (
        rows["next"] == f"a driver is writing this store (node-b, pid 4242); run 'vbi-dask status {store}' again "
        "to follow it"
    )

    hour_ago = time.time() - 3600
    os.utime(claim, (hour_ago, hour_ago))  # another host's claim, not refreshed for an hour
    before = (claim.read_bytes(), claim.stat().st_mtime)
    rows = _status(capsys, store)
    assert re.fullmatch(
        r"held by host node-b, pid 4242, since 2026-01-02 10:00:00 UTC, last refreshed 36\d\d s ago: "
        r"looks stale: not refreshed for 36\d\d s \(lease 120 s\); the next driver takes it over",
        rows["claim"],
    ), rows["claim"]
    assert rows["next"].startswith("complete: ")
    assert (claim.read_bytes(), claim.stat().st_mtime) == before  # the claim is read, not touched

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    claim.write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid, "started": "now", "token": "u"}))
    assert _status(capsys, store)["claim"].endswith(
        f"looks stale: process {gone.pid} on this host is gone; the next driver takes it over"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held.zarr", "held.zarr.lock"]
