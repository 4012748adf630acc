import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from monai_imbalance.reporting import load_metrics_json, save_figure, to_jsonable, update_metrics_json


def test_to_jsonable_converts_tensors_numpy_and_nan():
    out = to_jsonable({"a": torch.tensor([1.0, float("nan")]), "b": np.float32(0.5), "c": (np.int64(2),)})
    assert out == {"a": [1.0, None], "b": 0.5, "c": [2]}
    json.dumps(out)


def test_update_metrics_json_merges_and_keeps_other_keys(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    update_metrics_json(path, {"accuracy": 0.5, "threshold": 0.3})
    merged = update_metrics_json(path, {"accuracy": 0.75, "loa": torch.tensor(0.1)})
    assert merged == {"accuracy": 0.75, "threshold": 0.3, "loa": pytest.approx(0.1)}
    assert load_metrics_json(path) == merged
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left


def test_load_metrics_json_missing_and_invalid(tmp_path):
    assert load_metrics_json(tmp_path / "none.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad\.json"):
        update_metrics_json(bad, {"x": 1})
    assert bad.read_text() == "[1, 2]"  # the user's file is untouched
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_metrics_json(bad)


def test_save_figure_png_and_tensorboard(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    save_figure(fig, tmp_path / "plots" / "line.png", summary_writer=writer, global_step=3)
    writer.close()
    assert (tmp_path / "plots" / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((tmp_path / "tb").iterdir())
    assert not plt.fignum_exists(fig.number)
