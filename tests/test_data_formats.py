"""The registry of datalist formats (monai_imbalance.data.formats) and the home of as_bool."""

from __future__ import annotations

import pytest

from monai_imbalance.data import DATA_FORMATS, Datalists, load_datalists, register_format, registered_formats
from monai_imbalance.data import formats as formats_module
from monai_imbalance.errors import UnknownChoiceError


def test_the_builtin_formats_are_registered_in_documentation_order():
    assert tuple(registered_formats())[: len(DATA_FORMATS)] == DATA_FORMATS


def test_a_registered_format_is_read_by_load_datalists(monkeypatch):
    monkeypatch.setattr(formats_module, "_REGISTRY", dict(formats_module._REGISTRY))

    @register_format("toy")
    def load_toy(dataset_dir, *, n=4):
        items = [{"image": f"{dataset_dir}/{i}.png", "label": i % 2, "id": str(i)} for i in range(n)]
        return Datalists({"train": items[:2], "val": items[2:3], "test": items[3:]}, class_names=["a", "b"])

    datalists = load_datalists("toy", "/nowhere", check_files=False, n=4, warn=False)
    assert [len(datalists[s]) for s in ("train", "val", "test")] == [2, 1, 1]
    assert datalists.class_names == ["a", "b"]
    with pytest.raises(ValueError, match="does not take the option"):
        load_datalists("toy", "/nowhere", check_files=False, flag="x")


def test_a_taken_name_and_an_unknown_name_are_refused(monkeypatch):
    monkeypatch.setattr(formats_module, "_REGISTRY", dict(formats_module._REGISTRY))
    with pytest.raises(ValueError, match="already registered"):
        register_format("csv")(lambda dataset_dir: None)
    with pytest.raises(ValueError, match="non-empty name"):
        register_format("")
    with pytest.raises(UnknownChoiceError, match=r"unknown data format 'cvs'.*closest: 'csv'"):
        formats_module.format_loader("cvs")


def test_as_bool_lives_outside_the_workflow_and_is_re_exported_there():
    from monai_imbalance import workflow
    from monai_imbalance.switches import as_bool

    assert workflow.as_bool is as_bool
    assert as_bool("yes") and not as_bool("0")
