"""MedMNIST npz datalists: local files, the knee KL npz, checked downloads from a local HTTP server, bad files."""

from __future__ import annotations

import hashlib
import threading
import warnings
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from monai_imbalance.data import load_medmnist_datalists
from monai_imbalance.data import medmnist as mm
from monai_imbalance.errors import UserError


def write_npz(path, labels: dict[str, list[int]], size: int = 8, **extra) -> None:
    arrays = {}
    for split, values in labels.items():
        n = len(values)
        arrays[f"{split}_images"] = np.arange(n * size * size, dtype=np.uint8).reshape(n, size, size)
        arrays[f"{split}_labels"] = np.asarray(values, dtype=np.uint8).reshape(n, 1)
    arrays.update(extra)
    np.savez(path, **arrays)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """Serve ``tmp_path / "served"`` on 127.0.0.1 (a free port) for the duration of one test."""
    served = tmp_path / "served"
    served.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=partial(server.serve_forever, poll_interval=0.05), daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_real_retinamnist_by_directory_and_flag(shared_data):
    d = load_medmnist_datalists(shared_data / "medmnist", flag="retinamnist")
    assert {k: len(v) for k, v in d.items()} == {"train": 1080, "val": 120, "test": 400}
    assert d.report.class_counts["train"] == [486, 128, 206, 194, 66]  # the counts of the data README
    assert d.class_names == ["0", "1", "2", "3", "4"]
    item = d["train"][5]
    assert item["id"] == "retinamnist_train_5" and isinstance(item["label"], int)
    assert item["image"].shape == (28, 28, 3) and item["image"].dtype == np.uint8


def test_real_file_path_and_official_md5_entry(shared_data):
    path = shared_data / "medmnist" / "retinamnist.npz"
    d = load_medmnist_datalists(path)
    assert d["val"][0]["id"] == "retinamnist_val_0"
    assert d.class_names == mm.MEDMNIST_CLASS_NAMES["retinamnist"]
    # the shared copy is byte-identical to the official file: the table entry must match it
    assert hashlib.md5(path.read_bytes()).hexdigest() == mm.MEDMNIST_MD5["retinamnist"][28]


def test_real_dermamnist_class_names_and_splits_subset(shared_data):
    d = load_medmnist_datalists(shared_data / "medmnist", flag="dermamnist", splits=["test"])
    assert list(d) == ["test"] and len(d["test"]) == 2005
    assert d.class_names[4] == "melanoma"


def test_knee_npz_patient_ids_sides_and_knee_id(shared_data):
    d = load_medmnist_datalists(shared_data / "knee_kl" / "knee_kl_64_trainval.npz")
    assert set(d) == {"train", "val"} and len(d["train"]) == 5778
    item = d["train"][3]
    assert item["patient_id"] == "9003126" and item["side"] == "R" and item["knee_id"] == "9003126R"
    assert item["image"].shape == (64, 64)
    assert d.class_names == ["0", "1", "2", "3", "4"]
    assert not d.report.patients_in_several_splits  # the file's split is patient-level


def test_file_names_urls_and_size_variants(tmp_path):
    assert mm.medmnist_filename("dermamnist") == "dermamnist.npz"
    assert mm.medmnist_filename("dermamnist", 224) == "dermamnist_224.npz"
    assert mm.medmnist_url("pneumoniamnist", 64).endswith("/pneumoniamnist_64.npz?download=1")
    with pytest.raises(ValueError, match="no size 128"):
        mm.medmnist_url("organmnist3d", 128)
    with pytest.raises(ValueError, match="unknown MedMNIST flag"):
        mm.medmnist_url("kneemnist")
    write_npz(tmp_path / "breastmnist_64.npz", {"train": [0, 1], "val": [1], "test": [0]})
    d = load_medmnist_datalists(tmp_path, flag="breastmnist", size=64)
    assert d.class_names == ["malignant", "normal, benign"]


def test_data_dir_environment_variable(tmp_path, monkeypatch):
    write_npz(tmp_path / "pneumoniamnist.npz", {"train": [0, 1, 1]})
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert len(load_medmnist_datalists(flag="pneumoniamnist")["train"]) == 3


def test_missing_file_offline_says_how_to_provide_one(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"dermamnist\.npz.*DATA_DIR.*download=True"):
        load_medmnist_datalists(tmp_path, flag="dermamnist")
    with pytest.raises(FileNotFoundError, match="DATA_DIR"):
        load_medmnist_datalists(None, flag="dermamnist")
    with pytest.raises(ValueError, match="flag="):
        load_medmnist_datalists(tmp_path)


def test_download_from_local_server_checks_md5(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    write_npz(served / "breastmnist.npz", {"train": [0, 1, 1, 0], "val": [1], "test": [0, 1]})
    md5 = hashlib.md5((served / "breastmnist.npz").read_bytes()).hexdigest()
    monkeypatch.setattr(mm, "MEDMNIST_BASE_URL", url)
    monkeypatch.setitem(mm.MEDMNIST_MD5["breastmnist"], 28, md5)
    target = tmp_path / "cache"
    d = load_medmnist_datalists(target, flag="breastmnist", download=True)
    assert (target / "breastmnist.npz").read_bytes() == (served / "breastmnist.npz").read_bytes()
    assert {k: len(v) for k, v in d.items()} == {"train": 4, "val": 1, "test": 2}
    # a local file is used as it is, never re-downloaded or re-checked
    (served / "breastmnist.npz").unlink()
    assert len(load_medmnist_datalists(target, flag="breastmnist", download=True)["train"]) == 4


def test_download_with_wrong_md5_is_rejected(tmp_path, http_dir, monkeypatch):
    served, url = http_dir
    write_npz(served / "retinamnist_64.npz", {"train": [0, 1]})
    monkeypatch.setattr(mm, "MEDMNIST_BASE_URL", url)
    with pytest.raises(RuntimeError, match="md5"):
        load_medmnist_datalists(tmp_path, flag="retinamnist", size=64, download=True)
    assert not (tmp_path / "retinamnist_64.npz").exists()


def test_download_failure_says_how_to_provide_a_copy(tmp_path, http_dir, monkeypatch):
    _, url = http_dir  # serves an empty directory: 404
    monkeypatch.setattr(mm, "MEDMNIST_BASE_URL", url)
    with pytest.raises(ConnectionError, match="DATA_DIR") as failure:
        load_medmnist_datalists(tmp_path, flag="dermamnist", download=True)
    assert isinstance(failure.value, UserError)  # a bundle run ends in this one line, not a traceback


def test_bad_npz_files(tmp_path):
    np.savez(tmp_path / "multi.npz", train_images=np.zeros((2, 4, 4)), train_labels=np.zeros((2, 14)))
    with pytest.raises(ValueError, match="multi-label"):
        load_medmnist_datalists(tmp_path / "multi.npz")
    np.savez(tmp_path / "short.npz", train_images=np.zeros((3, 4, 4)), train_labels=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="3 train_images but 2 train_labels"):
        load_medmnist_datalists(tmp_path / "short.npz")
    np.savez(tmp_path / "other.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match="not a MedMNIST-style npz"):
        load_medmnist_datalists(tmp_path / "other.npz")
    write_npz(tmp_path / "ok.npz", {"train": [0]})
    with pytest.raises(ValueError, match=r"no split\(s\) \['test'\]"):
        load_medmnist_datalists(tmp_path / "ok.npz", splits=["test"])
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"garbage\.npz"):
        load_medmnist_datalists(tmp_path / "garbage.npz")


def test_class_without_training_sample_is_reported(tmp_path):
    write_npz(tmp_path / "gap.npz", {"train": [0, 1, 3, 3], "val": [2]})
    with pytest.warns(UserWarning, match=r"\['2'\] have no sample in the 'train' split"):
        d = load_medmnist_datalists(tmp_path / "gap.npz")
    assert d.report.missing_training_classes == ["2"]
    assert d.report.class_counts["train"] == [1, 1, 0, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_medmnist_datalists(tmp_path / "gap.npz", warn=False)
