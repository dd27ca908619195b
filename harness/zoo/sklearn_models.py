"""scikit-learn models for the zoo, exported with skl2onnx; goldens come from scikit-learn itself.

They bring the ai.onnx.ml domain (Scaler/LinearClassifier/TreeEnsemble) that EPs other than the CPU EP
rarely implement, so they also exercise the placement audit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ExportError

EXPORT_HINT = 'pip install -e ".[export]"'
INPUT_NAME = "features"


def _sklearn() -> Any:
    try:
        import sklearn
        import skl2onnx  # noqa: F401
    except ModuleNotFoundError as exc:
        raise ExportError(f"exporting scikit-learn models needs the export extra ({exc.name} is missing)",
                          hint=EXPORT_HINT) from None
    return sklearn


@dataclass(frozen=True)
class SklearnSpec:
    name: str
    description: str
    kind: str  # "logreg" | "forest"
    n_features: int = 8
    task: str = "classification"
    dims: tuple[tuple[str, int], ...] = (("batch", 4),)
    output_names: tuple[str, ...] = ("label", "probabilities")
    exporter: str = "skl2onnx"

    def _training_data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(7)
        features = rng.normal(size=(400, self.n_features)).astype(np.float32)
        labels = (features[:, 0] + features[:, 1] > 0).astype(np.int64) + (features[:, 2] > 1.0)
        return features, labels

    def fit(self) -> Any:
        """Trained once per process (deterministic): export and every reference() call share it."""
        return _fitted(self)

    def _train(self) -> Any:
        _sklearn()
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        features, labels = self._training_data()
        head = (LogisticRegression(max_iter=500) if self.kind == "logreg"
                else RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0))
        return make_pipeline(StandardScaler(), head).fit(features, labels)

    def make_inputs(self, seed: int, dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        batch = (dims or dict(self.dims))["batch"]
        rng = np.random.default_rng(seed)
        return {INPUT_NAME: rng.normal(size=(batch, self.n_features)).astype(np.float32)}

    def export(self, out_path: Path) -> None:
        _sklearn()
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
        model = self.fit()
        options = {id(model.steps[-1][1]): {"zipmap": False}}  # tensors, not a sequence of maps
        onx = to_onnx(model, initial_types=[(INPUT_NAME, FloatTensorType([None, self.n_features]))],
                      options=options, target_opset=18)
        _dedupe_opsets(onx)
        for output, name in zip(onx.graph.output, self.output_names):
            _rename_output(onx, output.name, name)
        onx.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
        out_path.write_bytes(onx.SerializeToString())

    def reference(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        model = self.fit()
        features = inputs[INPUT_NAME]
        return {"label": model.predict(features).astype(np.int64),
                "probabilities": model.predict_proba(features).astype(np.float32)}

    def source(self) -> dict[str, str]:
        import skl2onnx
        return {"kind": "framework", "framework": "scikit-learn", "version": _sklearn().__version__,
                "exporter": f"skl2onnx {skl2onnx.__version__}", "reference": "predict/predict_proba"}

    def input_ranges(self) -> dict[str, dict[str, float]]:
        return {}


@functools.lru_cache(maxsize=None)
def _fitted(spec: SklearnSpec) -> Any:
    return spec._train()


def _dedupe_opsets(model: Any) -> None:
    """skl2onnx can list the default domain twice; onnxruntime.quantization then refuses the model."""
    seen: dict[str, int] = {}
    for entry in model.opset_import:
        seen[entry.domain] = max(seen.get(entry.domain, 0), entry.version)
    del model.opset_import[:]
    for domain, version in seen.items():
        model.opset_import.add(domain=domain, version=version)


def _rename_output(model: Any, old: str, new: str) -> None:
    if old == new:
        return
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    for output in model.graph.output:
        if output.name == old:
            output.name = new


SKLEARN_ZOO: dict[str, SklearnSpec] = {
    spec.name: spec for spec in (
        SklearnSpec("sklearn_logreg", "StandardScaler + LogisticRegression (3 classes), label and probabilities",
                    "logreg"),
        SklearnSpec("sklearn_forest", "StandardScaler + RandomForest (10 trees, depth 4): TreeEnsemble", "forest"),
    )
}
