import monai_imbalance


def test_version_and_subpackages():
    assert isinstance(monai_imbalance.__version__, str)
    for name in ("data", "handlers", "inferers", "losses", "metrics", "networks"):
        assert hasattr(monai_imbalance, name)
