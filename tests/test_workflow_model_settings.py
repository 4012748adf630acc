"""Unit tests of monai_imbalance.workflow.model_settings: what a model folder records, and what it refuses."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
import torch
from monai.transforms import Compose, Resized, ScaleIntensityd, ScaleIntensityRanged

from monai_imbalance.errors import UserError
from monai_imbalance.workflow import (
    DATA_KEYS,
    EVALUATION_MAY_DIFFER,
    MODEL_KEYS,
    MODEL_SETTINGS_FILE,
    RESUME_MAY_CHANGE,
    SPLIT_IDS_FILE,
    ModelSettingsEntry,
    ModelSettingsMismatchError,
    check_evaluation_items,
    check_model_settings,
    check_resume,
    describe_transforms,
    item_ids,
    model_setting,
    read_model_settings,
    read_split_ids,
    record_model_settings,
    settings_of_run,
    split_identity,
)

DATALISTS = {
    "train": [{"id": "b"}, {"id": "a"}, {"id": "c"}],
    "val": [{"id": "d"}],
    "test": [{"id": "e"}, {"image": "/data/f.png"}],
}
MODEL = {"network_name": "small_cnn", "in_channels": 3, "image_size": 32, "class_names": ["x", "y"]}
DATA = {"data_format": "medmnist", "dataset_dir": "data", "data_kwargs": {"flag": "d", "download": True}}
TRAINING = {"loss": "focal", "batch_size": 16, "num_epochs": 2, "dataset_dir": "data"}


def record(tmp_path, **changes):
    """What a bundle's training does: the settings of the run (a resume checked), then the folder's files."""
    arguments = {"model": MODEL, "data": DATA, "training": TRAINING, "datalists": DATALISTS, **changes}
    settings = settings_of_run(tmp_path, **arguments)
    record_model_settings(tmp_path, settings, datalists=arguments["datalists"])
    return settings


def test_the_lists_are_disjoint_and_documented():
    assert not set(MODEL_KEYS) & set(DATA_KEYS)
    assert set(DATA_KEYS) <= set(EVALUATION_MAY_DIFFER)  # another data set may be evaluated
    # what defines the network may never differ in an evaluation
    for key in ("network_name", "in_channels", "image_size", "class_names", "head", "dropout_prob", "preprocessing"):
        assert key in MODEL_KEYS and key not in EVALUATION_MAY_DIFFER
    assert {"num_epochs", "progress_bar", "num_workers"} <= set(RESUME_MAY_CHANGE)
    assert not {"batch_size", "loss", "network_name", "splits"} & set(RESUME_MAY_CHANGE)
    assert issubclass(ModelSettingsMismatchError, UserError) and issubclass(ModelSettingsMismatchError, ValueError)


def test_item_ids_and_split_identity_against_a_hand_computation():
    assert item_ids(DATALISTS["train"]) == ["a", "b", "c"]
    assert item_ids(DATALISTS["test"]) == ["/data/f.png", "e"]  # no id: the image path
    identity = split_identity(DATALISTS)
    assert identity["train"] == {"count": 3, "sha256": hashlib.sha256(b"a\nb\nc").hexdigest()}
    assert identity["val"]["count"] == 1
    # the order of the items does not matter, their ids do
    assert split_identity({"train": DATALISTS["train"][::-1]})["train"] == identity["train"]
    assert split_identity({"train": [{"id": "a"}, {"id": "b"}]})["train"] != identity["train"]
    with pytest.raises(ValueError, match="cannot be identified"):
        item_ids([{"label": 1}])


def test_record_writes_both_files_and_reads_back(tmp_path):
    settings = record(tmp_path)
    assert json.loads((tmp_path / MODEL_SETTINGS_FILE).read_text()) == settings == read_model_settings(tmp_path)
    assert settings["model"] == MODEL and settings["training"] == TRAINING
    assert settings["data"]["splits"]["train"]["count"] == 3
    assert read_split_ids(tmp_path) == {"train": ["a", "b", "c"], "val": ["d"], "test": ["/data/f.png", "e"]}
    assert model_setting(tmp_path, "image_size", default=224) == 32  # the folder's value
    assert model_setting(tmp_path, "data_format", default="csv") == "medmnist"  # data section too
    assert model_setting(tmp_path, "head", default="linear") == "linear"  # not recorded: the config's
    assert model_setting(tmp_path / "none", "image_size", default=224) == 224  # no folder file (0.2)
    # the folder's format options only with its format
    kwargs = {"flag": "d", "download": True}
    assert model_setting(tmp_path, "data_kwargs", default={}, when={"data_format": "medmnist"}) == kwargs
    assert model_setting(tmp_path, "data_kwargs", default={"csv_file": "x"}, when={"data_format": "csv"}) == {
        "csv_file": "x"
    }
    assert read_model_settings(tmp_path / "none") is None and read_split_ids(tmp_path / "none") is None


def test_record_refuses_unclassified_keys(tmp_path):
    with pytest.raises(ValueError, match="not model keys"):
        record(tmp_path, model={**MODEL, "colour": "red"})
    with pytest.raises(ValueError, match="not data keys"):
        record(tmp_path, data={**DATA, "image_size": 3})


def test_the_checkpoint_entry_stores_plain_settings(tmp_path):
    settings = record(tmp_path)
    entry = ModelSettingsEntry(settings)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model_settings": entry.state_dict()}, path)
    assert torch.load(path, weights_only=True)["model_settings"] == settings
    entry.load_state_dict({"anything": 1})  # loading puts nothing back
    assert entry.state_dict() == settings


def test_an_override_that_contradicts_the_model_is_refused_in_one_line(tmp_path):
    record(tmp_path)
    current = {**MODEL, "image_size": 64}
    with pytest.raises(ModelSettingsMismatchError) as error:
        check_model_settings(tmp_path, current, overrides={"image_size": 64})
    message = str(error.value)
    assert "\n" not in message and "--image_size 64" in message and "image_size 32" in message
    # the same value, or a value set by the config rather than the command line: accepted
    check_model_settings(tmp_path, MODEL, overrides={"image_size": 32})
    check_model_settings(tmp_path, {**MODEL, "image_size": [32, 32]}, overrides={"image_size": [32, 32]})
    check_model_settings(tmp_path, current, overrides={})
    # a nested override names its top-level key; a setting that may differ is accepted
    with pytest.raises(ModelSettingsMismatchError, match="--network_name"):
        check_model_settings(tmp_path, {"network_name": "unet"}, overrides={"network_name#x": 1})
    check_model_settings(tmp_path, {"batch_size": 3}, overrides={"batch_size": 3})


def test_class_names_are_compared_always_when_asked(tmp_path, caplog):
    record(tmp_path)
    with pytest.raises(ModelSettingsMismatchError, match=r"class_names \[\"y\", \"x\"\].*class_names \[\"x\", \"y\"\]"):
        check_model_settings(tmp_path, {"class_names": ["y", "x"]}, overrides={}, compare_always=["class_names"])
    with caplog.at_level(logging.INFO, logger="monai_imbalance.workflow.model_settings"):
        check_model_settings(tmp_path, MODEL, overrides={}, what="inference")
    assert "classes ['x', 'y']" in caplog.text and '"small_cnn"' in caplog.text


def test_a_folder_without_settings_warns_once_how_to_proceed(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="monai_imbalance.workflow.model_settings"):
        assert check_model_settings(tmp_path / "old", {"image_size": 64}, overrides={"image_size": 64}) is None
    assert not caplog.text  # no model at all: the missing checkpoint is the error to report
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.pt").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="monai_imbalance.workflow.model_settings"):
        assert check_model_settings(tmp_path / "old", {"image_size": 64}, overrides={"image_size": 64}) is None
        check_model_settings(tmp_path / "old", {"image_size": 64}, overrides={"image_size": 64})
    assert caplog.text.count("not found (a model folder of monai-imbalance 0.2)") == 1
    assert "--image_size" in caplog.text and "--split_fractions" in caplog.text


def test_evaluation_items_that_were_trained_on_are_refused_with_their_count(tmp_path, caplog):
    record(tmp_path)
    assert check_evaluation_items(tmp_path, DATALISTS["test"]) == 2
    with pytest.raises(ModelSettingsMismatchError, match=r"^2 of the 3 items of split 'test' were training items"):
        check_evaluation_items(tmp_path, [{"id": "a"}, {"id": "c"}, {"id": "z"}])
    with caplog.at_level(logging.WARNING):
        check_evaluation_items(tmp_path, [{"id": "d"}, {"id": "z"}], split="test")
    assert "1 of the 2 items of split 'test' chose the model's best epoch" in caplog.text
    (tmp_path / SPLIT_IDS_FILE).unlink()
    assert check_evaluation_items(tmp_path, [{"id": "a"}]) == 1  # nothing to compare with: a warning


def test_resume_accepts_what_may_change_and_refuses_the_rest(tmp_path):
    recorded = record(tmp_path)

    def current(**sections):
        return {**recorded, **{name: {**recorded[name], **values} for name, values in sections.items()}}

    check_resume(
        recorded, current(training={"num_epochs": 5, "dataset_dir": "moved"}), ckpt_dir=tmp_path, resumed_epoch=2
    )
    check_resume(
        recorded, current(data={"data_kwargs": {"flag": "d", "download": False}}), ckpt_dir=tmp_path, resumed_epoch=2
    )
    with pytest.raises(ModelSettingsMismatchError, match="--num_epochs 1 is below the 2 epochs"):
        check_resume(recorded, current(training={"num_epochs": 1}), ckpt_dir=tmp_path, resumed_epoch=2)
    with pytest.raises(ModelSettingsMismatchError, match="batch_size was 16, this command gives 4"):
        check_resume(recorded, current(training={"batch_size": 4}), ckpt_dir=tmp_path, resumed_epoch=1)
    with pytest.raises(ModelSettingsMismatchError, match=r'loss \(--loss_name\) was "focal", this command gives "ce"'):
        check_resume(recorded, current(training={"loss": "ce"}), ckpt_dir=tmp_path, resumed_epoch=1)
    with pytest.raises(ModelSettingsMismatchError, match="image_size was 32, this command gives 64"):
        check_resume(recorded, current(model={"image_size": 64}), ckpt_dir=tmp_path, resumed_epoch=1)
    grown = split_identity({"train": [{"id": str(i)} for i in range(300)]})
    with pytest.raises(ModelSettingsMismatchError, match="split 'train' had 3 items, now 300"):
        check_resume(
            recorded,
            current(data={"splits": {**recorded["data"]["splits"], **grown}}),
            ckpt_dir=tmp_path,
            resumed_epoch=1,
        )
    swapped = split_identity({"train": [{"id": "a"}, {"id": "b"}, {"id": "x"}]})
    with pytest.raises(ModelSettingsMismatchError, match="3 items as before, but other ones"):
        check_resume(
            recorded,
            current(data={"splits": {**recorded["data"]["splits"], **swapped}}),
            ckpt_dir=tmp_path,
            resumed_epoch=1,
        )


def test_record_on_resume_compares_before_writing(tmp_path):
    record(tmp_path)
    before = (tmp_path / MODEL_SETTINGS_FILE).read_text()
    resume_path = tmp_path / "last_checkpoint_epoch=1.pt"
    with pytest.raises(ModelSettingsMismatchError, match="batch_size"):
        record(tmp_path, training={**TRAINING, "batch_size": 4}, resume_path=resume_path)
    assert (tmp_path / MODEL_SETTINGS_FILE).read_text() == before  # nothing written
    settings = record(tmp_path, training={**TRAINING, "num_epochs": 3}, resume_path=resume_path)
    assert read_model_settings(tmp_path)["training"]["num_epochs"] == 3 == settings["training"]["num_epochs"]
    # without the file, the checkpoint's entry is the record
    torch.save({"model_settings": settings}, resume_path)
    (tmp_path / MODEL_SETTINGS_FILE).unlink()
    with pytest.raises(ModelSettingsMismatchError, match="loss"):
        record(tmp_path, training={**TRAINING, "loss": "ce"}, resume_path=resume_path)


def test_describe_transforms_records_the_intensity_rule_and_size():
    described = describe_transforms(
        Compose(
            [
                ScaleIntensityRanged(keys="image", a_min=0, a_max=255, b_min=0, b_max=1, clip=True),
                ScaleIntensityd(keys="label"),  # not the image: left out
                Resized(keys=["image", "label"], spatial_size=(32, 32), mode="area"),
            ]
        )
    )
    assert [d["transform"] for d in described] == ["ScaleIntensityRanged", "Resized"]
    scale, resize = described
    assert (scale["scaler.a_min"], scale["scaler.a_max"], scale["scaler.clip"]) == (0, 255, True)
    assert resize["resizer.spatial_size"] == [32, 32] and resize["mode"] == ["area", "area"]
    json.dumps(described)  # plain JSON
    other = describe_transforms([ScaleIntensityd(keys="image", minv=0.0, maxv=1.0)])
    assert other[0]["scaler.minv"] == 0.0 and other != described
