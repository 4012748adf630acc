"""Run folders: moving an earlier run aside, damaged checkpoints named with the intact one."""

from __future__ import annotations

import pytest
import torch

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import (
    CorruptCheckpointError,
    EarlierRunError,
    RunFileNotFoundError,
    checked_checkpoint,
    epoch_checkpoints,
    move_aside,
    resume_checkpoint,
)


def _checkpoints(folder, *epochs):
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in epochs:
        torch.save({"model": {"w": torch.full((2,), float(epoch))}}, folder / f"last_checkpoint_epoch={epoch}.pt")


def test_epoch_checkpoints_newest_first(tmp_path):
    _checkpoints(tmp_path, 9, 10, 2)
    (tmp_path / "last_checkpoint_epoch=3.pt.corrupt").write_bytes(b"")
    assert [p.name for p in epoch_checkpoints(tmp_path)] == [f"last_checkpoint_epoch={e}.pt" for e in (10, 9, 2)]


def test_move_aside_renames_outermost_non_empty_folders_and_keeps_everything(tmp_path):
    models, logs, empty = tmp_path / "models", tmp_path / "models" / "logs", tmp_path / "empty"
    _checkpoints(models, 1)
    logs.mkdir()
    (logs / "events.out.tfevents.1").write_text("x")
    empty.mkdir()
    (tmp_path / "models.replaced-T").mkdir()  # the name is taken: a suffix keeps both
    moved = move_aside([models, logs, empty, None], stamp="T")
    target = tmp_path / "models.replaced-T-2"
    assert moved == {str(models): str(target)}
    assert (target / "last_checkpoint_epoch=1.pt").is_file() and (target / "logs" / "events.out.tfevents.1").is_file()
    assert not models.exists() and empty.is_dir()


def test_overwrite_moves_checkpoints_and_logs_and_logs_where(tmp_path, caplog):
    models, logs = tmp_path / "models", tmp_path / "logs"
    _checkpoints(models, 1, 2)
    logs.mkdir()
    (logs / "events.out.tfevents.1").write_text("x")
    with caplog.at_level("WARNING"):
        assert resume_checkpoint(models, overwrite="true", log_dir=logs) is None
    assert not models.exists() and not logs.exists()
    (old_models,) = tmp_path.glob("models.replaced-*")
    (old_logs,) = tmp_path.glob("logs.replaced-*")
    assert len(list(old_models.iterdir())) == 2 and (old_logs / "events.out.tfevents.1").is_file()
    assert f"moved the earlier run's {models} to {old_models}" in caplog.text
    # nothing left to resume: --resume true now says so
    with pytest.raises(RunFileNotFoundError, match=r"no 'last_checkpoint_epoch=N\.pt' to resume from"):
        resume_checkpoint(models, resume=True)


def test_overwrite_refuses_to_move_the_working_folder(tmp_path, monkeypatch):
    _checkpoints(tmp_path / "models", 1)
    monkeypatch.chdir(tmp_path / "models")
    with pytest.raises(EarlierRunError, match="works inside it"):
        resume_checkpoint(tmp_path / "models", overwrite=True)


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_latest_checkpoint_is_named_with_the_newest_intact_one(tmp_path, damage):
    _checkpoints(tmp_path, 1, 2, 3)
    latest = tmp_path / "last_checkpoint_epoch=3.pt"
    latest.write_bytes(b"" if damage == "empty" else latest.read_bytes()[:200])
    (tmp_path / "last_checkpoint_epoch=2.pt").write_bytes(b"garbage")
    with pytest.raises(CorruptCheckpointError) as error:
        resume_checkpoint(tmp_path, resume=True)
    message = str(error.value)
    assert str(latest) in message and "newest intact checkpoint is last_checkpoint_epoch=1.pt" in message
    assert f"mv '{latest}' '{latest}.corrupt'" in message and isinstance(error.value, UserError)
    latest.rename(latest.with_name(latest.name + ".corrupt"))
    (tmp_path / "last_checkpoint_epoch=2.pt").unlink()
    assert resume_checkpoint(tmp_path, resume=True).endswith("last_checkpoint_epoch=1.pt")


def test_no_intact_checkpoint_left_suggests_overwrite(tmp_path):
    tmp_path.joinpath("last_checkpoint_epoch=1.pt").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match=r"EOFError.*No intact checkpoint is left.*--overwrite true"):
        resume_checkpoint(tmp_path, resume=True)


def test_a_checkpoint_holding_code_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "last_checkpoint_epoch=1.pt"
    torch.save({"object": EarlierRunError("x")}, path)  # not a weights-only checkpoint
    with pytest.raises(CorruptCheckpointError, match="UnpicklingError"):
        resume_checkpoint(tmp_path, resume=True)


def test_checked_checkpoint(tmp_path):
    with pytest.raises(RunFileNotFoundError, match="train the bundle first"):
        checked_checkpoint(tmp_path / "model.pt")
    (tmp_path / "model.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(CorruptCheckpointError, match=r"model\.pt cannot be read"):
        checked_checkpoint(tmp_path / "model.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "model.pt")
    assert checked_checkpoint(tmp_path / "model.pt") == str(tmp_path / "model.pt")
