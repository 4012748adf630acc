import pytest
import torch

from monai_imbalance.workflow import default_device, distributed_backend, latest_checkpoint, resume_checkpoint


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_latest_checkpoint_picks_highest_epoch_numerically(tmp_path):
    assert latest_checkpoint(tmp_path / "missing") is None
    _touch(tmp_path, "last_checkpoint_epoch=9.pt", "last_checkpoint_epoch=10.pt", "model.pt", "last_notes.txt")
    assert latest_checkpoint(tmp_path).endswith("last_checkpoint_epoch=10.pt")


def test_resume_checkpoint_rules(tmp_path):
    ckpt = tmp_path / "models"
    assert resume_checkpoint(ckpt) is None  # fresh folder: start afresh
    with pytest.raises(FileNotFoundError, match=r"no 'last_checkpoint_epoch=N\.pt'"):
        resume_checkpoint(ckpt, resume=True)
    ckpt.mkdir()
    torch.save({"epoch": 2}, ckpt / "last_checkpoint_epoch=2.pt")
    with pytest.raises(FileExistsError, match="--resume true"):
        resume_checkpoint(ckpt)
    assert resume_checkpoint(ckpt, resume=True).endswith("epoch=2.pt")
    with pytest.raises(ValueError, match="contradict"):
        resume_checkpoint(ckpt, resume=True, overwrite=True)
    assert resume_checkpoint(ckpt, overwrite=True) is None  # start afresh: moved aside later, by start_training_run
    assert (ckpt / "last_checkpoint_epoch=2.pt").is_file()


def test_device_and_backend_follow_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu")
    assert distributed_backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert default_device() == torch.device("cuda:1")
    assert default_device(0) == torch.device("cuda:0")
    assert distributed_backend() == "nccl"


def test_trained_class_names(tmp_path):
    from monai_imbalance.reporting import update_metrics_json
    from monai_imbalance.workflow import trained_class_names

    with pytest.raises(FileNotFoundError, match="train the bundle first"):
        trained_class_names(tmp_path)
    update_metrics_json(tmp_path / "metrics.json", {"decision_threshold": 0.4})
    with pytest.raises(ValueError, match=r"validation\.class_names"):
        trained_class_names(tmp_path)
    update_metrics_json(tmp_path / "metrics.json", {"validation": {"class_names": ["a", "b"], "accuracy": 1.0}})
    assert trained_class_names(tmp_path) == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("False", False),
        (" YES ", True),
        ("0", False),
        (1, True),
        (None, False),
    ],
)
def test_as_bool_reads_command_line_switches(value, expected):
    from monai_imbalance.workflow import as_bool

    assert as_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, [True]])
def test_as_bool_rejects_other_values(value):
    from monai_imbalance.workflow import as_bool

    with pytest.raises(ValueError, match="expected a switch"):
        as_bool(value)


def test_resume_checkpoint_reads_string_switches(tmp_path):
    (tmp_path / "last_checkpoint_epoch=1.pt").write_bytes(b"")
    with pytest.raises(FileExistsError):
        resume_checkpoint(tmp_path, resume="false", overwrite="false")
    assert resume_checkpoint(tmp_path, resume="false", overwrite="true") is None
