"""The model zoo: small, deterministic PyTorch modules the harness exports to ONNX.

Only the export command imports this module, so ``torch`` is imported here and nowhere else in the
harness. Every ``build`` seeds torch before creating parameters, so the weights are the same on every
call and every machine, and returns the module in eval mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import torch
from torch import nn

Dim = Union[int, str]


@dataclass(frozen=True)
class InputSpec:
    """One graph input. A ``str`` in ``shape`` is a symbolic dimension (e.g. ``"batch"``)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: "float32", "int64", ...
    low: float = -1.0
    high: float = 1.0


@dataclass(frozen=True)
class ZooSpec:
    """One zoo model: how to build it, what it takes and what it returns."""

    name: str
    description: str
    task: str  # "regression" | "classification" | "sequence" | "vision" | "tagging" | "detection"
    build: Callable[[], nn.Module]
    inputs: list[InputSpec]
    output_names: list[str]
    dims: dict[str, int] = field(default_factory=dict)  # concrete values used for the golden
    # "dynamo" (torch.export-based, the default) or "torchscript" (the legacy exporter). Only for a
    # module dynamo cannot keep dynamic: its fake-tensor pass decomposes aten.gru into a per-step loop
    # and so pins the sequence length, and torch.onnx then silently falls back to a fixed-shape graph.
    exporter: str = "dynamo"

    @property
    def symbolic_dims(self) -> list[str]:
        """Names of the symbolic dims, in first-seen order."""
        seen: list[str] = []
        for spec in self.inputs:
            for d in spec.shape:
                if isinstance(d, str) and d not in seen:
                    seen.append(d)
        return seen


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """Build ``make()`` with a fixed torch seed without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = make()
        _init_extra(module)
    return module.eval()


def _init_extra(module: nn.Module) -> None:
    """Give BatchNorm non-trivial running statistics and affine terms so it is not an identity."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                sub.running_mean.uniform_(-0.5, 0.5)
                sub.running_var.uniform_(0.5, 2.0)
                if sub.affine:
                    sub.weight.uniform_(0.5, 1.5)
                    sub.bias.uniform_(-0.2, 0.2)


# --- modules ---------------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - matches the graph name
        return self.net(input)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(16, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(image), 1))


class TinyEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            d_model=32, nhead=4, dim_feedforward=64, dropout=0.0, activation="gelu", batch_first=True
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002
        return self.layer(input)


class TinyGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size=16, hidden_size=32, batch_first=True)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: A002
        output, h_n = self.gru(input)
        return output, h_n


class SoftmaxClassifier(nn.Module):
    """A trained classifier. Left at random initialisation its probabilities are near uniform (top-1 margins
    ~0.01), so top-1 agreement would measure rounding noise; real classifiers are confident. It is trained
    briefly and deterministically on a synthetic task (labels from a fixed linear teacher)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10))
        self._fit()

    def _fit(self, steps: int = 300) -> None:
        teacher = torch.randn(20, 10)
        features = torch.rand(2048, 20) * 4 - 2
        labels = (features @ teacher).argmax(dim=1)
        optimiser = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        for _ in range(steps):
            optimiser.zero_grad()
            nn.functional.cross_entropy(self.net(features), labels).backward()
            optimiser.step()
        self.net.zero_grad(set_to_none=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(features), dim=-1)


class EmbeddingTagger(nn.Module):
    VOCAB = 100

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(self.VOCAB, 24)
        self.proj = nn.Linear(24, 5)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.relu(self.embed(token_ids)))


class TinyDetector(nn.Module):
    """A hand-built single-shot detection head: a 2x2 grid of cells on a 32x32 image, two anchors per cell (10 and
    18 pixels), so 8 boxes per image, each decoded from 4 deltas and scored over 3 classes. Returns boxes [batch, 8,
    4] (x1, y1, x2, y2 in pixels), scores [batch, 8] (the best class probability) and classes [batch, 8] (int64), as
    a detector's post-processing does before NMS; the harness matches them by IoU and class, whatever their order."""

    CELLS, ANCHOR_SIZES, CLASSES, IMAGE = 2, (10.0, 18.0), 3, 32

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(self.CELLS))
        self.head = nn.Conv2d(8, len(self.ANCHOR_SIZES) * (4 + self.CLASSES), kernel_size=1)
        step = self.IMAGE / self.CELLS
        anchors = [(step * (col + 0.5), step * (row + 0.5), size, size)
                   for row in range(self.CELLS) for col in range(self.CELLS) for size in self.ANCHOR_SIZES]
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))
        with torch.no_grad():  # a confident head, as a trained detector is: each anchor leans to one class by 2 logits
            per_anchor = self.head.bias.view(len(self.ANCHOR_SIZES), 4 + self.CLASSES)
            for index in range(len(self.ANCHOR_SIZES)):
                per_anchor[index, 4 + index % self.CLASSES] += 2.0

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(self.features(image))  # [batch, anchors * 7, cells, cells]
        out = out.permute(0, 2, 3, 1).reshape(image.shape[0], -1, 4 + self.CLASSES)  # [batch, 8, 7]
        deltas, logits = out[..., :4], out[..., 4:]
        a = self.anchors
        cx, cy = a[:, 0] + 0.2 * deltas[..., 0] * a[:, 2], a[:, 1] + 0.2 * deltas[..., 1] * a[:, 3]
        w = a[:, 2] * torch.exp(0.2 * torch.tanh(deltas[..., 2]))
        h = a[:, 3] * torch.exp(0.2 * torch.tanh(deltas[..., 3]))
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        scores, classes = torch.softmax(logits, dim=-1).max(dim=-1)
        return boxes, scores, classes


# --- registry --------------------------------------------------------------------------------------

ZOO: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in (
        ZooSpec(
            name="mlp",
            description="3-layer perceptron, Linear/ReLU, 32 features -> 10 outputs",
            task="regression",
            build=lambda: _seeded(1, MLP),
            inputs=[InputSpec("input", ("batch", 32), "float32", -1.0, 1.0)],
            output_names=["output"],
            dims={"batch": 2},
        ),
        ZooSpec(
            name="cnn",
            description="Conv2d + BatchNorm2d (random running stats) + ReLU + MaxPool + AdaptiveAvgPool + Linear",
            task="vision",
            build=lambda: _seeded(2, SmallCNN),
            inputs=[InputSpec("image", ("batch", 3, 32, 32), "float32", 0.0, 1.0)],
            output_names=["logits"],
            dims={"batch": 2},
        ),
        ZooSpec(
            name="transformer",
            description="one TransformerEncoderLayer (d_model 32, 4 heads, GELU FFN 64), batch-first",
            task="sequence",
            build=lambda: _seeded(3, TinyEncoder),
            inputs=[InputSpec("input", ("batch", "seq", 32), "float32", -1.0, 1.0)],
            output_names=["output"],
            dims={"batch": 2, "seq": 8},
        ),
        ZooSpec(
            name="gru",
            description="single-layer GRU (16 -> 32), batch-first; returns all steps and the final hidden state",
            task="sequence",
            build=lambda: _seeded(4, TinyGRU),
            inputs=[InputSpec("input", ("batch", "seq", 16), "float32", -1.0, 1.0)],
            output_names=["output", "h_n"],
            dims={"batch": 2, "seq": 8},
            exporter="torchscript",
        ),
        ZooSpec(
            name="classifier",
            description="Linear/Tanh/Linear with a softmax head: class probabilities over 10 classes",
            task="classification",
            build=lambda: _seeded(5, SoftmaxClassifier),
            inputs=[InputSpec("features", ("batch", 20), "float32", -2.0, 2.0)],
            output_names=["probabilities"],
            dims={"batch": 2},
        ),
        ZooSpec(
            name="embedding_tagger",
            description="int64 token ids in [0, 100) -> Embedding(100, 24) -> ReLU -> Linear: 5 tag logits per token",
            task="tagging",
            build=lambda: _seeded(6, EmbeddingTagger),
            inputs=[InputSpec("token_ids", ("batch", "seq"), "int64", 0, EmbeddingTagger.VOCAB)],
            output_names=["tag_logits"],
            dims={"batch": 2, "seq": 8},
        ),
        ZooSpec(
            name="detector",
            description="hand-built single-shot head on 32x32 images: 8 anchor boxes per image [batch, 8, 4] (x1, y1, "
                        "x2, y2), scores [batch, 8], classes [batch, 8] (int64) over 3 classes",
            task="detection",
            build=lambda: _seeded(7, TinyDetector),
            inputs=[InputSpec("image", ("batch", 3, TinyDetector.IMAGE, TinyDetector.IMAGE), "float32", 0.0, 1.0)],
            output_names=["boxes", "scores", "classes"],
            dims={"batch": 1},
        ),
    )
}
