"""The shipped model as an ONNX file, for the website's Playground page (run in the browser).

``python -m llmcourse.export_onnx OUT_DIR`` writes three files into ``OUT_DIR``:

- ``model.onnx``: the uncached forward pass of the shipped GPT, ``ids`` (int64, shape
  ``(1, T)`` with ``1 <= T <= block_size``) to ``logits`` (float32, ``(1, T, vocab_size)``),
  exported with PyTorch's own exporter (``torch.onnx.export(..., dynamo=True)``);
- ``vocab.json``: the list of characters, the id of a character being its index;
- ``meta.json``: block size, vocabulary size, the checkpoint's name and the sha256 of its weights.

The book build runs this (see ``_ext/llmcourse_sphinx.py``); the page runs the file with
onnxruntime-web. It needs the ``onnx`` and ``onnxscript`` packages (in requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llmcourse.data import _sha256  # the same file checksum the data sets use

__all__ = ["export_onnx"]


def export_onnx(out_dir: str | Path, name: str = "shakespeare_char") -> dict:
    """Export the shipped checkpoint ``name`` into ``out_dir``; returns the meta record."""
    import torch

    from llmcourse.checkpoint import CHECKPOINT_DIR, load_pretrained

    if not isinstance(out_dir, (str, Path)):
        raise TypeError(f"out_dir must be a path, got {type(out_dir).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_pretrained(name)
    model.eval()
    block = model.config.block_size
    example = torch.zeros(1, min(8, block), dtype=torch.long)
    with torch.no_grad():
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=["ids"], output_names=["logits"],
            dynamic_shapes={"ids": {1: torch.export.Dim("T", min=1, max=block)}},
            verbose=False)
    program.save(str(out / "model.onnx"))
    (out / "vocab.json").write_text(json.dumps(tokenizer.vocab, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    meta = {
        "checkpoint": name,
        "sha256": _sha256(CHECKPOINT_DIR / f"{name}.safetensors"),
        "block_size": block,
        "vocab_size": model.config.vocab_size,
        "input": "ids", "output": "logits",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmcourse.export_onnx",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder to write model.onnx, vocab.json, meta.json into")
    parser.add_argument("--name", default="shakespeare_char", help="shipped checkpoint")
    args = parser.parse_args(argv)
    meta = export_onnx(args.out_dir, args.name)
    size = (Path(args.out_dir) / "model.onnx").stat().st_size
    print(f"wrote {args.out_dir}/model.onnx ({size / 1e6:.1f} MB), vocab.json, meta.json "
          f"(block_size {meta['block_size']}, vocab {meta['vocab_size']})")
    return 0


if __name__ == "__main__":
    from llmcourse.cli import run

    sys.exit(run(main, "python -m llmcourse.export_onnx"))
