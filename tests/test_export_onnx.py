"""The ONNX export of the shipped model (for the website's Playground) computes what PyTorch does."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from llmcourse.export_onnx import export_onnx  # noqa: E402
from llmcourse.checkpoint import load_pretrained  # noqa: E402

PROMPT = "ROMEO:\nBut soft, what light"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    meta = export_onnx(out)
    return out, meta


def test_files_and_meta(exported):
    out, meta = exported
    model, tok = load_pretrained()
    assert (out / "model.onnx").stat().st_size > 1_000_000
    assert json.loads((out / "vocab.json").read_text(encoding="utf-8")) == tok.vocab
    assert meta["block_size"] == model.config.block_size
    assert meta["vocab_size"] == tok.vocab_size
    assert len(meta["sha256"]) == 64
    assert json.loads((out / "meta.json").read_text()) == meta


@pytest.mark.parametrize("length", [1, 7, None])
def test_onnxruntime_logits_equal_pytorch(exported, length):
    out, meta = exported
    model, tok = load_pretrained()
    text = PROMPT if length is None else PROMPT[:length]
    if length is None:   # the whole window: block_size characters
        text = (PROMPT * 10)[: meta["block_size"]]
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        expected = model(ids).numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"ids": ids.numpy()})
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-4


def test_bad_out_dir_is_a_type_error():
    with pytest.raises(TypeError, match="out_dir"):
        export_onnx(42)
