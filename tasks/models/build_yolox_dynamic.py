"""Re-export the shipped YOLOX-Nano with a dynamic input size: `weights/yolox_nano_dynamic.onnx`.

    pip install -e ".[dev]"        # needs the `onnx` package
    python -m tasks.models.build_yolox_dynamic

The shipped `yolox_nano_416x416.onnx` fixes its input at 416 x 416, so tiles must be 416 px and their
overlap (the tallest person a level owns) is half of every tile. The same weights in a graph whose
height and width are free let the detect stage use larger tiles. The weights are unchanged: the ONNX
file's convolutions (batch norms folded in) go into `tasks/models/yolox.py`'s modules in execution
order, each conv plus an identity batch norm carrying the folded bias, and torch exports that graph.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tasks.models.yolox import YOLOX
from tasks.models.yolox_onnx import NANO_PATH

OUT = Path(__file__).parent / "weights" / "yolox_nano_dynamic.onnx"


def state_from_folded_onnx(
    path: Path, variant: str = "nano", num_classes: int = 80
) -> dict[str, torch.Tensor]:
    """The official-layout state dict of a YOLOX ONNX export whose batch norms are folded."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    model = YOLOX(variant, num_classes).eval()
    order: list[torch.nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    if len(order) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions, YOLOX-{variant} has {len(order)}")
    names = {m: n for n, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for conv, node in zip(order, convs, strict=True):
        w, b = init[node.input[1]], init[node.input[2]]
        name = names[conv]
        if tuple(conv.weight.shape) != w.shape:
            raise ValueError(f"{path}: {node.name} has shape {w.shape}, {name} {tuple(conv.weight.shape)}")
        state[f"{name}.weight"] = torch.from_numpy(w.copy())
        if name.endswith(".conv"):  # BaseConv: the folded bias goes into an identity batch norm
            bn = name.removesuffix(".conv") + ".bn"
            state[f"{bn}.weight"] = torch.ones(len(b))
            state[f"{bn}.bias"] = torch.from_numpy(b.copy())
            state[f"{bn}.running_mean"] = torch.zeros(len(b))
            state[f"{bn}.running_var"] = torch.full((len(b),), 1 - 1e-3)  # sqrt(var + eps) = 1
        else:
            state[f"{name}.bias"] = torch.from_numpy(b.copy())
    return state


def main() -> int:
    model = YOLOX("nano", 80).eval()
    model.load_state_dict(state_from_folded_onnx(NANO_PATH))
    torch.onnx.export(
        model, torch.zeros(1, 3, 416, 416), str(OUT), input_names=["images"], output_names=["output"],
        dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 1: "anchors"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
