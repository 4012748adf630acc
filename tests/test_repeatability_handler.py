"""Tests of monai_imbalance.handlers.RepeatabilityHandler inside a MONAI SupervisedEvaluator."""

from __future__ import annotations

import json

import pytest
import torch
from monai.data import DataLoader
from monai.engines import SupervisedEvaluator
from torch import nn

from monai_imbalance.data import RepeatAcquisitions
from monai_imbalance.handlers import RepeatabilityHandler
from monai_imbalance.inferers import MCDropoutInferer
from monai_imbalance.metrics import continuous_score, repeatability_report
from monai_imbalance.reporting import to_jsonable

PATIENTS = ["a", "a", "b", "b", "b", "c", "c", "d"]
VISITS = ["1", "1", "1", "1", "2", "1", "1", "1"]


class RecordingWriter:
    """Duck-typed SummaryWriter that records what it is given."""

    def __init__(self) -> None:
        self.scalars: dict[str, tuple[float, int]] = {}
        self.figures: list[tuple[str, int]] = []

    def add_scalar(self, tag: str, value: float, global_step: int) -> None:
        self.scalars[tag] = (value, global_step)

    def add_figure(self, tag: str, figure, global_step: int = 0, close: bool = True) -> None:
        self.figures.append((tag, global_step))


def _probs() -> torch.Tensor:
    return torch.softmax(torch.randn(len(PATIENTS), 4, generator=torch.Generator().manual_seed(0)), dim=1)


def _evaluator(decollate: bool = True, with_visits: bool = True) -> SupervisedEvaluator:
    # the "network" flattens the image, which holds the class probabilities: pred = probs
    data = [
        {
            "image": p.reshape(1, 4),
            "label": torch.tensor(0),
            "patient_id": pid,
            **({"visit_id": v} if with_visits else {}),
        }
        for p, pid, v in zip(_probs(), PATIENTS, VISITS, strict=True)
    ]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=3),
        network=nn.Flatten(),
        decollate=decollate,
    )


def _assert_same_report(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if key == "per_patient":
            for column, values in value.items():
                assert actual[key][column] == (
                    pytest.approx(values) if column in ("mean_score", "difference") else values
                )
        else:
            assert actual[key] == (pytest.approx(value) if value is not None else None), key


def _expected(with_visits: bool = True) -> dict:
    probs = _probs()
    return repeatability_report(
        continuous_score(probs).numpy(),
        PATIENTS,
        4,
        predictions=probs.argmax(1).numpy(),
        n_boot=100,
        seed=0,
        visit_ids=VISITS if with_visits else None,
    )


@pytest.mark.parametrize("decollate", [True, False])
def test_report_lands_in_metrics_json_tensorboard_and_png(tmp_path, decollate):
    metrics_file = tmp_path / "run" / "metrics.json"
    metrics_file.parent.mkdir()
    metrics_file.write_text(json.dumps({"accuracy": 0.7}))  # written by another handler: must survive
    writer = RecordingWriter()
    handler = RepeatabilityHandler(
        n_boot=100, metrics_file=metrics_file, figure_file=tmp_path / "run" / "ba.png", summary_writer=writer
    )
    evaluator = _evaluator(decollate=decollate)
    handler.attach(evaluator, "repeatability")
    evaluator.run()

    expected = _expected()
    assert evaluator.state.metrics["repeatability"] == pytest.approx(expected["loa"])
    stored = json.loads(metrics_file.read_text())
    assert stored["accuracy"] == 0.7
    _assert_same_report(stored["repeatability"], json.loads(json.dumps(to_jsonable(expected))))
    assert stored["repeatability"]["n_patients"] == 3 and stored["repeatability"]["n_skipped"] == 2
    assert handler.report["per_patient"] == expected["per_patient"]
    assert (tmp_path / "run" / "ba.png").read_bytes()[:4] == b"\x89PNG"
    assert writer.scalars["repeatability/loa"] == (pytest.approx(expected["loa"]), 1)
    assert {"repeatability/icc", "repeatability/loa_rel", "repeatability/disagreement_rate"} <= set(writer.scalars)
    assert writer.figures == [("repeatability/bland_altman", 1)]


def test_json_key_tag_prefix_and_missing_visits(tmp_path):
    writer = RecordingWriter()
    handler = RepeatabilityHandler(
        n_boot=100, metrics_file=tmp_path / "m.json", summary_writer=writer, json_key="rep_mc", tag_prefix="val"
    )
    evaluator = _evaluator(with_visits=False)
    handler.attach(evaluator, "loa")
    evaluator.run()
    expected = _expected(with_visits=False)  # no visit ids in the batch: one visit per patient
    assert json.loads((tmp_path / "m.json").read_text())["rep_mc"]["per_patient"]["patient_id"] == ["a", "b", "c"]
    assert handler.report["loa"] == pytest.approx(expected["loa"])
    assert "val/loa" in writer.scalars and writer.figures == [("val/bland_altman", 1)]
    assert not (tmp_path / "ba.png").exists()


def test_report_info_is_added_to_the_report(tmp_path):
    info = {"repeats": {"source": "simulated", "num_repeats": 2}}
    handler = RepeatabilityHandler(n_boot=10, metrics_file=tmp_path / "m.json", report_info=info)
    evaluator = _evaluator()
    handler.attach(evaluator, "repeatability")
    evaluator.run()
    assert json.loads((tmp_path / "m.json").read_text())["repeatability"]["repeats"] == info["repeats"]
    assert handler.report["repeats"] == info["repeats"] and "loa" in handler.report

    clashing = RepeatabilityHandler(n_boot=10, report_info={"loa": 0.0})
    evaluator = _evaluator()
    clashing.attach(evaluator, "repeatability")
    with pytest.raises(ValueError, match=r"\['loa'\] clash"):
        evaluator.run()


def test_missing_patient_ids_raise_a_clear_error():
    evaluator = _evaluator()
    RepeatabilityHandler(patient_key="subject").attach(evaluator, "repeatability")
    with pytest.raises(ValueError, match="'subject'"):
        evaluator.run()


def test_update_is_not_the_entry_point():
    with pytest.raises(NotImplementedError):
        RepeatabilityHandler().update((torch.ones(1, 2), None))


def test_mc_dropout_evaluation_of_simulated_repeats_end_to_end(tmp_path):
    """RepeatAcquisitions -> DataLoader -> SupervisedEvaluator(MCDropoutInferer) -> RepeatabilityHandler."""
    torch.manual_seed(0)
    images = [{"image": torch.rand(1, 16, 16), "label": torch.tensor(i % 3)} for i in range(5)]
    dataset = RepeatAcquisitions(images, num_repeats=3, seed=0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2)
    )
    net.append(nn.Linear(4, 3))
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(dataset, batch_size=4),
        network=net,
        inferer=MCDropoutInferer(num_samples=4, seed=0),
    )
    handler = RepeatabilityHandler(n_boot=50, metrics_file=tmp_path / "metrics.json")
    handler.attach(evaluator, "repeatability")
    evaluator.run()
    report = json.loads((tmp_path / "metrics.json").read_text())["repeatability"]
    assert report["n_patients"] == 5 and report["n_images"] == 15 and report["n_skipped"] == 0
    assert report["per_patient"]["patient_id"] == ["0", "1", "2", "3", "4"]
    assert 0 < report["loa"] < 0.5
    assert report["image_order"] == "image_ids"  # RepeatAcquisitions' repeat_index orders each unit


def _evaluator_with_ids(order: list[int]) -> SupervisedEvaluator:
    probs = _probs()
    data = [
        {"image": probs[i].reshape(1, 4), "label": torch.tensor(0), "patient_id": PATIENTS[i], "id": f"img{i}"}
        for i in order
    ]
    return SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=DataLoader(data, batch_size=3), network=nn.Flatten()
    )


def test_the_report_does_not_depend_on_the_order_of_the_datalist():
    """The datalist ``id`` orders the images of a unit: a permuted datalist gives the same report."""
    reports = []
    for order in ([0, 1, 2, 3, 4, 5, 6, 7], [1, 0, 7, 4, 3, 2, 6, 5], [6, 5, 4, 3, 2, 1, 0, 7]):
        handler = RepeatabilityHandler(n_boot=50)
        evaluator = _evaluator_with_ids(order)
        handler.attach(evaluator, "repeatability")
        evaluator.run()
        reports.append(handler.report)
    assert reports[0]["image_order"] == "image_ids"
    assert reports[1] == reports[0] and reports[2] == reports[0]
    probs = _probs()
    expected = repeatability_report(
        continuous_score(probs).numpy(), PATIENTS, 4, predictions=probs.argmax(1).numpy(), n_boot=50
    )
    _assert_same_report({**reports[0], "image_order": "input"}, expected)  # ids img0..img7: the input order

    keep_order = RepeatabilityHandler(n_boot=50, image_keys=None)
    evaluator = _evaluator_with_ids([1, 0, 7, 4, 3, 2, 6, 5])
    keep_order.attach(evaluator, "repeatability")
    evaluator.run()
    assert keep_order.report["image_order"] == "input"
    assert keep_order.report["per_patient"]["difference"] != reports[0]["per_patient"]["difference"]
