"""Settings checked against the data, the model and the disk before any work (issue 19), each in one line."""

from __future__ import annotations

import errno
import os
import shutil
from collections import namedtuple

import pytest
import torch

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import (
    CheckpointMismatchError,
    EmptyClassError,
    OutputFolderError,
    OverrideValueError,
    check_batch_size,
    check_checkpoint_fits,
    check_classes_for_loss,
    check_output_folders,
    output_space,
    state_bytes,
    training_checkpoint_bytes,
)

# ---------------------------------------------------------------- batch size


def test_a_batch_larger_than_the_training_set_is_refused():
    """Issue 19: --batch_size 100000 --sampler_name batch_balanced on 70 images was OOM-killed at 24 GB."""
    check_batch_size(70, 70)
    check_batch_size(4, 0)  # an empty training set is the data check's to report
    with pytest.raises(OverrideValueError) as error:
        check_batch_size(100000, 70)
    assert str(error.value).startswith("--batch_size 100000: larger than the 70 training items; use --batch_size 70")
    with pytest.raises(OverrideValueError, match="--val_batch_size 9: larger than the 3 images"):
        check_batch_size(9, 3, key="val_batch_size", what="images")


# ---------------------------------------------------------------- empty classes


def test_an_empty_class_under_a_count_based_loss_names_the_class_and_what_to_do():
    names = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    for loss in ("ce", "focal"):  # these train without the class
        check_classes_for_loss([5, 9, 3, 2, 4, 0, 1], names, loss_name=loss)
    check_classes_for_loss([5, 9, 3, 2, 4, 1, 1], names, loss_name="lmf_official")
    with pytest.raises(EmptyClassError) as error:
        check_classes_for_loss(torch.tensor([5, 9, 3, 2, 4, 0, 1]), names, loss_name="lmf_official")
    message = str(error.value)
    assert message.startswith("no training images of 'DF' (class 5), and --loss_name lmf_official sets per-class")
    assert "add images of that class" in message and "--loss_name ce or focal" in message
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    with pytest.raises(EmptyClassError, match=r"'a' \(class 0\), 'c' \(class 2\).*--class_weighting inverse"):
        check_classes_for_loss([0, 3, 0], ["a", "b", "c"], loss_name="ce", class_weighting="inverse")
    with pytest.raises(EmptyClassError, match="ldam"):
        check_classes_for_loss([0, 3], ["a", "b"], loss_name="ldam")


# ---------------------------------------------------------------- checkpoints


def _net(out_features: int, in_features: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(in_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, out_features))


def test_a_checkpoint_that_fits_passes_in_both_layouts(tmp_path):
    network = _net(5)
    torch.save(network.state_dict(), tmp_path / "plain.pt")
    torch.save({"model": network.state_dict(), "optimizer": {}}, tmp_path / "last.pt")
    check_checkpoint_fits(tmp_path / "plain.pt", _net(5))
    check_checkpoint_fits(tmp_path / "last.pt", _net(5))
    check_checkpoint_fits(tmp_path / "missing.pt", _net(5))  # the loader's own check names a missing file
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    check_checkpoint_fits(tmp_path / "broken.pt", _net(5))


def test_a_checkpoint_of_other_settings_names_both_shapes(tmp_path):
    """Issue 19: a knee checkpoint (5 classes) in the skin bundle (7) ended in a 131-line size mismatch."""
    torch.save(_net(5).state_dict(), tmp_path / "knee.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        check_checkpoint_fits(tmp_path / "knee.pt", _net(7))
    message = str(error.value)
    assert "2.weight: [5, 8] in the checkpoint, [7, 8] in the network; 2.bias: [5] in the checkpoint, [7]" in message
    assert "trained with other settings" in message and "\n" not in message
    torch.save(_net(7, in_features=3).state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(CheckpointMismatchError, match=r"0.weight: \[8, 3\] in the checkpoint, \[8, 4\] in the network"):
        check_checkpoint_fits(tmp_path / "rgb.pt", _net(7))


def test_a_checkpoint_of_another_network_names_the_differing_tensors(tmp_path):
    torch.save(torch.nn.Linear(4, 7).state_dict(), tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatchError) as error:
        check_checkpoint_fits(tmp_path / "other.pt", _net(7))
    assert "not a checkpoint of this network: 4 tensors of the network are not in it (e.g. 0.weight" in str(error.value)
    assert "it holds 2 the network lacks (e.g. weight, bias)" in str(error.value)


# ---------------------------------------------------------------- output folders


def test_checkpoint_size_estimate():
    network = torch.nn.Linear(10, 3)  # 33 float32 numbers: 132 bytes
    assert state_bytes(network) == 132
    assert training_checkpoint_bytes(network) == 132 * 8  # model.pt twice, two "last" ones with Adam's two moments
    assert training_checkpoint_bytes(network, n_saved=1, optimizer_copies=0) == 132 * 3


def test_writable_folders_pass_and_nothing_is_left_behind(tmp_path):
    existing = tmp_path / "models"
    existing.mkdir()
    check_output_folders({"ckpt_dir": existing, "log_dir": tmp_path / "new" / "logs"}, needed_bytes={"ckpt_dir": 1})
    assert list(existing.iterdir()) == [] and not (tmp_path / "new").exists()  # probed, not created
    with pytest.raises(ValueError, match="not in folders"):
        check_output_folders({"ckpt_dir": existing}, needed_bytes={"log_dir": 1})


def test_a_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    """Issue 19: a read-only output folder failed 61 lines into training, or after a whole evaluation."""

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(output_space.tempfile, "mkstemp", read_only)  # root writes even where chmod forbids it
    with pytest.raises(OutputFolderError) as error:
        check_output_folders({"output_dir": tmp_path / "eval"})
    message = str(error.value)
    assert message == (
        f"--output_dir {tmp_path / 'eval'}: cannot write in {tmp_path} (Read-only file system); choose a writable "
        "folder with --output_dir"
    )
    assert isinstance(error.value, UserError) and isinstance(error.value, OSError)


def test_a_full_disk_is_named_before_training(tmp_path, monkeypatch):
    """Issue 19: a full disk ended the run 187 lines into a traceback at its first checkpoint."""
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(output_space.shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
    with pytest.raises(OutputFolderError) as error:
        check_output_folders({"ckpt_dir": tmp_path / "m", "log_dir": tmp_path / "l"}, needed_bytes={"ckpt_dir": 2**28})
    message = str(error.value)
    assert message.startswith(f"--ckpt_dir {tmp_path / 'm'} and --log_dir {tmp_path / 'l'}: 1 MiB free on that disk")
    assert "the run writes about 288 MiB" in message  # 256 MiB of checkpoints + 16 MiB per folder

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output_space.shutil, "disk_usage", shutil.disk_usage)
    monkeypatch.setattr(output_space.tempfile, "mkstemp", no_space)
    with pytest.raises(OutputFolderError, match=r"--ckpt_dir .*: the disk is full \(No space left on device\)"):
        check_output_folders({"ckpt_dir": tmp_path})


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "models").write_text("")
    with pytest.raises(OutputFolderError, match=r"--ckpt_dir .*models: .*models is not a folder"):
        check_output_folders({"ckpt_dir": tmp_path / "models"})
