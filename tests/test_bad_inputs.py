"""Every reader refuses files of every other kind with one honest line (issue 18).

Non-files of every kind are generated here (empty, text, Python, random bytes, a directory, a pickled
nn.Sequential, a bare state_dict, .npy, JSON, a foreign zip, a foreign HDF5, a plain pickle) and real
formats are put in the wrong place (a checkpoint given to snn-run, an artifact to snn-compile, a model as
--cost-model or --resume). Each goes through the CLIs in-process and through the Python API; each
answer must be one ``prog: error:`` line that names the file, says what the file is, and never advises
enabling code execution for a file that is not a pickle with code in it.
"""
from __future__ import annotations

import json
import pickle
import random
import re
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import snnc
from snnc.cli import compile_main, read_train_state, report_main, run_main
from snnc.compiler.artifact import load_artifact
from snnc.compiler.sources import sniff
from snnc.errors import InputFileError, SnncError, StrictModeError, TargetLimitError
from snnc.hwsim.energy import load_cost_model
from snnc.models.checkpoint import load, save, torch_reason

from conftest import make_model

ADVICE = "--allow-pickle-code-execution"
RANDOM = random.Random(18).randbytes(1000)
LONG_LINE = "the quick brown fox jumps over the lazy dog and keeps running far beyond sixty characters"


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")


def _h5(path: Path) -> None:
    with h5py.File(path, "w") as h:
        h.create_group("weights")


#: name -> (how to make it, what the message must say, whether the code-execution advice is honest)
JUNK: dict[str, tuple[Callable[[Path], object], str, bool]] = {
    "empty.pt": (lambda p: p.write_bytes(b""), "it is empty (0 bytes)", False),
    "notes.pt": (lambda p: p.write_text(LONG_LINE + "\nsecond line\n"), "it looks like text (first line: 'the quick",
                 False),
    "train.py": (lambda p: p.write_text("import torch\n\nprint(torch.zeros(3))\n"),
                 "it looks like Python source (first line: 'import torch')", False),
    "rand.pt": (lambda p: p.write_bytes(RANDOM),
                f"binary data of unknown kind (first bytes {' '.join(f'{b:02x}' for b in RANDOM[:8])}", False),
    "seq.pt": (lambda p: torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), p),
               "holds a pickled torch.nn.modules.container.Sequential (a whole Python object", True),
    "state_dict.pt": (lambda p: torch.save(nn.Linear(4, 3).state_dict(), p), "not an snnc checkpoint", False),
    "array.npy": (lambda p: np.save(p, np.zeros(3)), "NumPy array file", False),
    "data.json": (lambda p: p.write_text(json.dumps({"weights": [1, 2]})), "it looks like JSON text", False),
    "bundle.zip": (_zip, "zip archive holding 'hello.txt'", False),
    "other.h5": (_h5, "an HDF5 file with groups ['weights']", False),
    "fake.onnx": (lambda p: p.write_text("not protobuf\n"), "not an ONNX model despite its name", False),
    "plain.pkl": (lambda p: p.write_bytes(pickle.dumps({"a": 1}, protocol=4)),
                  "Python pickle (protocol 4) that torch.save did not write", False),
}


@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("junk")
    for name, (make, _, _) in JUNK.items():
        make(root / name)
    (root / "somedir").mkdir()
    return root


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model and its compiled artifact (graph.h5, graph.nir, graph.onnx, network.net inside)."""
    root = tmp_path_factory.mktemp("real")
    path = save(make_model(), root / "mlp784.pt", metadata={"dataset": "digits", "timesteps": 8})
    return snnc.compile(path, out=root / "mlp784.loihi", report_samples=4).out


def _run(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as e:   # argparse's own path checks exit 2 in the same one-line format
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def _honest(code: int, err: str, prog: str, path: Path | str, *, advice: bool = False) -> None:
    assert code == 2, err
    assert err.startswith(f"{prog}: error: ") and err.count("error:") == 1, err
    assert err.rstrip("\n").count("\n") == 0, f"not one line: {err!r}"
    assert "Traceback" not in err and "\x1b" not in err and "Warning" not in err, err
    assert (ADVICE in err) == advice, err
    assert "Weights only load failed" not in err and "torch.)" not in err, err   # torch's text, cut mid-word
    assert str(path) in err, err


@pytest.mark.parametrize("name", sorted(JUNK))
def test_snn_compile_says_what_the_file_is(name: str, junk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, needle, advice = JUNK[name]
    path = junk / name
    code, err = _run(compile_main, [str(path), "--out", str(junk / "never")], capsys)
    _honest(code, err, "snn-compile", path, advice=advice)
    assert needle in err, err
    assert not (junk / "never").exists()


@pytest.mark.parametrize("name", sorted(JUNK))
def test_snnc_load_and_compile_refuse_with_the_file_named(name: str, junk: Path) -> None:
    path = junk / name
    with pytest.raises(SnncError) as err:
        snnc.compile(path, out=junk / "never")
    assert str(path) in str(err.value) and "\x1b" not in str(err.value)
    assert (ADVICE in str(err.value)) == JUNK[name][2]
    with pytest.raises(InputFileError) as err:
        snnc.load(path)
    assert str(path) in str(err.value) and (ADVICE in str(err.value)) == JUNK[name][2]
    if name != "state_dict.pt":   # a torch file, but not an snnc checkpoint (its own message)
        assert "not a PyTorch model file" in str(err.value) or "holds a pickled" in str(err.value)


def test_quoted_lines_are_cut_between_words_and_torch_text_is_clean() -> None:
    from snnc.models.checkpoint import _quote

    quoted = _quote(LONG_LINE)
    assert quoted.endswith(" ...'") and len(quoted) < len(LONG_LINE)
    assert all(word in LONG_LINE.split() for word in quoted.strip("'").removesuffix(" ...").split())
    noisy = ("Weights only load failed. This file can still be loaded, \x1b[1mdo those steps only if you trust the "
             "source\x1b[0m. Re-running `torch.load` with `weights_only` set to `False` will likely succeed.")
    clean = torch_reason(noisy, 120)
    assert "\x1b" not in clean and len(clean) <= 120 and noisy.replace("\x1b[1m", "").replace("\x1b[0m", "") \
        .startswith(clean.removesuffix(" ..."))
    assert clean.endswith(".") or clean.endswith(" ...")


def test_a_plain_pickle_prints_no_torch_warning(junk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputFileError, match="protocol 4"):
        load(junk / "plain.pkl")
    assert capsys.readouterr().err == ""


def test_pickled_sequential_with_the_opt_in_names_the_layer(junk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = junk / "seq.pt"
    code, err = _run(compile_main, [str(path), "--out", str(junk / "never"), ADVICE], capsys)
    _honest(code, err, "snn-compile", path)
    assert "layer '0' is a Linear" in err and "CubaDense" in err and "Supported layers" in err
    assert "the model is a torch.nn.modules.container.Sequential" in err


def test_a_truncated_checkpoint_is_called_damaged(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = model_path.read_bytes()
    model_path.write_bytes(data[:len(data) // 2])
    code, err = _run(compile_main, [str(model_path), "--out", str(model_path.parent / "never")], capsys)
    _honest(code, err, "snn-compile", model_path)
    assert "cut short or corrupted" in err and "not a PyTorch model file" not in err, err


def test_directories_and_artifacts_given_as_models(junk: Path, artifact: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for d in (junk / "somedir", artifact):
        code, err = _run(compile_main, [str(d)], capsys)
        _honest(code, err, "snn-compile", d)
        assert "directory" in err
        with pytest.raises(InputFileError, match="directory") as e:
            snnc.load(d)
        assert str(d) in str(e.value)
    with pytest.raises(InputFileError, match=r"is an snnc artifact directory .*snn-run"):
        snnc.compile(artifact, out=junk / "never")


def test_a_model_file_given_as_an_artifact_says_how_to_compile_it(artifact: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = artifact.parent / "mlp784.pt"
    for main, prog in ((run_main, "snn-run"), (report_main, "snn-report")):
        code, err = _run(main, [str(model)], capsys)
        _honest(code, err, prog, model)
        assert "artifact directory" in err and "snn-compile MODEL --out" not in err
    with pytest.raises(InputFileError) as e:
        load_artifact(model)
    msg = str(e.value)
    assert "is a PyTorch model file" in msg and f"snn-compile {model} --target loihi" in msg
    assert str(artifact.parent / "mlp784.loihi") in msg and "--out" not in msg


@pytest.mark.parametrize("name", ["notes.pt", "rand.pt", "bundle.zip", "other.h5", "somedir"])
def test_snn_run_and_report_refuse_other_files_and_directories(name: str, junk: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = junk / name
    for main, prog in ((run_main, "snn-run"), (report_main, "snn-report")):
        code, err = _run(main, [str(path)], capsys)
        _honest(code, err, prog, path)
    with pytest.raises(InputFileError) as e:
        load_artifact(path)
    msg = str(e.value)
    assert str(path) in msg and ("not an snnc artifact" in msg or "not an artifact directory" in msg), msg
    if name != "somedir":
        assert JUNK[name][1].split(" (")[0].removeprefix("an ") in msg or "HDF5" in msg, msg


def test_artifact_lookalikes(tmp_path: Path, artifact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match=f"empty directory.*--out {re.escape(str(empty))}"):
        load_artifact(empty)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(InputFileError, match=r"no manifest.json; it holds photo.jpg") as e:
        load_artifact(busy)
    assert f"--out {busy}" not in str(e.value)   # snn-compile refuses to overwrite a foreign directory
    with pytest.raises(InputFileError, match="pass the artifact directory"):
        load_artifact(artifact / "graph.h5")
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "manifest.json").write_bytes(RANDOM)
    for main, prog in ((run_main, "snn-run"), (report_main, "snn-report")):
        code, err = _run(main, [str(broken)], capsys)
        _honest(code, err, prog, broken)
        assert "manifest.json: not valid JSON" in err and "recompile" in err
    (broken / "manifest.json").unlink()
    with pytest.raises(InputFileError, match="has graph.h5 but no manifest.json"):
        load_artifact(broken)


@pytest.mark.parametrize("name", ["mlp784.pt", "graph.nir", "network.net", "graph.onnx", "rand.pt", "empty.pt",
                                  "somedir"])
def test_cost_model_option_refuses_model_and_binary_files(name: str, junk: Path, artifact: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = {"mlp784.pt": artifact.parent / name, "rand.pt": junk / name, "empty.pt": junk / name,
            "somedir": junk / name}.get(name, artifact / name)
    with pytest.raises(InputFileError) as e:
        load_cost_model(path)
    msg = str(e.value)
    assert str(path) in msg and "docs/energy.md" in msg and "codec" not in msg, msg
    if name.endswith((".pt", ".nir", ".net", ".onnx")) and name not in ("rand.pt", "empty.pt"):
        assert "model files go to snn-compile" in msg, msg
    code, err = _run(report_main, [str(artifact), "--cost-model", str(path), "--no-html"], capsys)
    _honest(code, err, "snn-report", path)


@pytest.mark.parametrize("name", ["notes.pt", "rand.pt", "empty.pt", "seq.pt", "plain.pkl", "state_dict.pt"])
def test_resume_state_that_is_not_one(name: str, junk: Path) -> None:
    path = junk / name
    with pytest.raises(SnncError) as e:
        read_train_state(path)
    msg = str(e.value)
    assert msg.startswith(f"--resume: {path}") and "Start without --resume" in msg and "\n" not in msg
    assert ("would run code" in msg) == (name == "seq.pt"), msg
    if name == "seq.pt":
        assert "torch.nn.modules.container.Sequential" in msg


def test_real_formats_are_recognised_by_content_not_name(tmp_path: Path, artifact: Path) -> None:
    for real, alias, kind in (("network.net", "looks.nir", "netx"), ("graph.nir", "looks.net", "nir"),
                              ("graph.onnx", "graph.bin", "onnx"), ("graph.h5", "graph.pt", "graph")):
        shutil.copy(artifact / real, tmp_path / alias)
        assert sniff(tmp_path / alias) == kind
    shutil.copy(artifact.parent / "mlp784.pt", tmp_path / "model.onnx")
    assert sniff(tmp_path / "model.onnx") == "checkpoint"


def test_a_layer_too_large_is_a_design_rule_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from snnc.compiler.ir import MAX_NODE_SIZE, CubaLIF
    from snnc.models import CubaConv
    from snnc.models.network import SpikingNet

    with pytest.raises(TargetLimitError, match=r"layer 'lif3' has 1,048,577 neurons: .* 1,025 cores on 9 chips"):
        CubaLIF("lif3", MAX_NODE_SIZE + 1, 0.5, 0.2, 1.0, None)
    path = save(SpikingNet([CubaConv((1, 130, 130), 65, 3)]), tmp_path / "wide.pt", metadata={"timesteps": 4})
    code, err = _run(compile_main, [str(path), "--out", str(tmp_path / "never")], capsys)
    _honest(code, err, "snn-compile", path)
    assert "layer 'lif1' has 1,064,960 neurons (65 x 128 x 128)" in err and "1,040 cores" in err, err
    assert "4,194,304 neurons" in err and "stride" in err and "damaged" not in err and "NaN" not in err, err
    with pytest.raises(TargetLimitError):
        snnc.compile(path, out=tmp_path / "never")


def test_strict_advice_fits_a_float_trained_checkpoint(tmp_path: Path) -> None:
    path = save(make_model(hardware_exact=False), tmp_path / "float.pt", metadata={"dataset": "digits",
                                                                                     "timesteps": 8})
    with pytest.raises(StrictModeError) as e:
        snnc.compile(path, out=tmp_path / "never", report_samples=4, strict=True)
    msg = str(e.value)
    assert "retrain it without --float" in msg and "--rule stbp-rect" not in msg, msg
    assert not (tmp_path / "never").exists()
