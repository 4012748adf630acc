"""One run per folder: the lock file, refused while its owner lives, taken over when it is stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import RUN_LOCK_NAME, RunLockedError, acquire_run_lock
from monai_imbalance.workflow import run_lock as run_lock_module


def _write_lock(folder, **owner):
    folder.mkdir(parents=True, exist_ok=True)
    content = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00", "command": "train"}
    (folder / RUN_LOCK_NAME).write_text(json.dumps({**content, **owner}))


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_acquire_records_the_owner_and_release_removes_the_file(tmp_path):
    folder = tmp_path / "models"
    lock = acquire_run_lock(folder, command="train")
    owner = json.loads((folder / RUN_LOCK_NAME).read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["command"] == "train"
    assert owner["started"] and lock.held
    assert lock.release() is True and not (folder / RUN_LOCK_NAME).exists()
    assert not folder.exists()  # created for the run and left empty: removed with the lock
    assert lock.release() is False  # a second release does nothing


def test_release_keeps_a_folder_that_existed_or_holds_files(tmp_path):
    lock = acquire_run_lock(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_live_owner_refuses_a_second_run_in_one_line(tmp_path):
    _write_lock(tmp_path, pid=os.getppid(), command="evaluate")  # a live process other than this one
    with pytest.raises(RunLockedError) as error:
        acquire_run_lock(tmp_path)
    message = str(error.value)
    assert isinstance(error.value, UserError) and "\n" not in message
    assert f"evaluate pid {os.getppid()} on {socket.gethostname()} since 2026-01-01T00:00:00" in message
    assert json.loads((tmp_path / RUN_LOCK_NAME).read_text())["pid"] == os.getppid()  # untouched


def test_a_lock_written_by_hand_with_this_process_id_is_held(tmp_path):
    """This process's pid, but not a lock this process took: held (the tests' stand-in for a live run)."""
    _write_lock(tmp_path)
    with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        acquire_run_lock(tmp_path)


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_said_so(tmp_path, caplog):
    dead = _dead_pid()
    _write_lock(tmp_path, pid=dead)
    with caplog.at_level("WARNING"):
        lock = acquire_run_lock(tmp_path)
    assert json.loads((tmp_path / RUN_LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock of train pid {dead}" in caplog.text
    assert not list(tmp_path.glob("*.stale-*"))
    lock.release()


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    _write_lock(tmp_path, pid=_dead_pid(), host="elsewhere.example")
    with pytest.raises(RunLockedError, match=r"on elsewhere\.example.*cannot check that run.*remove"):
        acquire_run_lock(tmp_path)


def test_an_empty_lock_file_is_a_run_starting(tmp_path):
    (tmp_path / RUN_LOCK_NAME).write_text("")
    with pytest.raises(RunLockedError, match="a run that is starting"):
        acquire_run_lock(tmp_path)


def test_a_lock_left_by_an_earlier_run_in_this_process_is_taken_over(tmp_path):
    """An in-process run that failed before its finalize step (compare, the tests) does not block the next one."""
    first = acquire_run_lock(tmp_path)
    second = acquire_run_lock(tmp_path)
    assert second.held and not first.held
    second.release()


def test_locks_still_held_are_released_at_exit(tmp_path):
    lock = acquire_run_lock(tmp_path / "a")
    run_lock_module._release_all()
    assert not lock.held and not (tmp_path / "a").exists()


def test_a_killed_run_leaves_a_lock_the_next_run_takes_over(tmp_path):
    """A process that ends without its finalize step or atexit (os._exit) leaves a stale lock."""
    code = (
        "import os, sys; from monai_imbalance.workflow import acquire_run_lock; "
        f"acquire_run_lock({str(tmp_path)!r}); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert (tmp_path / RUN_LOCK_NAME).is_file()
    acquire_run_lock(tmp_path).release()
