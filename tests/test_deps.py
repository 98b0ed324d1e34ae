"""micmon._deps: optional dependencies fail with one line naming the pip extra that adds them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from micmon._deps import install_command, missing_dependency, require_keras
from micmon.errors import MicmonError, MissingDependencyError
from micmon.features import FeatureSpec

TRAIN = "pip install 'micmon[train]'"


@pytest.fixture
def no_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import keras` and `import tensorflow` fail as they do where neither is installed."""
    for name in ("keras", "keras.layers", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)


def _check(exc: MissingDependencyError, *fragments: str) -> None:
    message = str(exc)
    assert isinstance(exc, MicmonError) and isinstance(exc, ImportError)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_install_command() -> None:
    assert install_command("train") == TRAIN


def test_require_keras_returns_keras() -> None:
    import keras

    import micmon.model

    assert require_keras() is keras
    assert micmon.model.require_keras is require_keras  # what the CLI's train command calls


def test_require_keras_without_tensorflow(no_tensorflow: None) -> None:
    with pytest.raises(MissingDependencyError) as info:
        require_keras()
    _check(info.value, "training needs TensorFlow", TRAIN)
    assert (info.value.package, info.value.extra) == ("keras", "train")


def test_keras_that_cannot_import_tensorflow() -> None:
    """Keras installed without TensorFlow fails on the backend import; same message."""
    error = missing_dependency(
        ModuleNotFoundError("No module named 'tensorflow'", name="tensorflow"), purpose="training"
    )
    assert error is not None
    _check(error, "training needs TensorFlow, which is not installed", TRAIN)


def test_unknown_modules_are_not_mapped() -> None:
    assert missing_dependency(ModuleNotFoundError("x", name="numpy")) is None
    assert missing_dependency(ImportError("no name")) is None


def test_model_building_and_fitting_without_tensorflow(no_tensorflow: None, trained_model_dir: Path) -> None:
    from micmon.model import Model
    from micmon.model.networks import cnn_layers, count_params, dense_layers

    spec = FeatureSpec(feature="logmel")
    for build in (
        lambda: dense_layers(spec, 2),
        lambda: cnn_layers(spec, 2),
        lambda: count_params([]),
        lambda: Model(["layer"], ["a", "b"]),
    ):
        with pytest.raises(MissingDependencyError) as info:
            build()
        _check(info.value, TRAIN)
    # A model served by LiteRT loads and scores without TensorFlow, but cannot be trained.
    model = Model.load(trained_model_dir)
    assert model.backend == "litert"
    with pytest.raises(MissingDependencyError) as info:
        model.fit(None)  # type: ignore[arg-type]
    _check(info.value, "Model.fit needs TensorFlow", TRAIN)
    with pytest.raises(MissingDependencyError) as info:
        Model.load(trained_model_dir, backend="keras")
    _check(info.value, "model.keras needs TensorFlow", TRAIN)


def test_plotting_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    from micmon._plot import pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError) as info:
        pyplot(headless=True)
    _check(info.value, "plotting needs matplotlib", "pip install 'micmon[plot]'")
