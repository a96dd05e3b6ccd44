"""Coverage-guided fuzzing (atheris, libFuzzer) of the readers that parse in this process.

Why a second fuzzer: tests/fuzzing.py mutates blindly (with structure-aware mutators); atheris
watches which branches of snnc's own readers a mutant reaches and keeps the mutants that reach new
ones, so it digs into the checks an undirected mutant rarely gets past. It pays where the parse
runs in-process: ONNX (protobuf, then snnc's checks), checkpoints (torch's zip and weights-only
unpickler, then the spec checks) and cost models (JSON/YAML). The HDF5 readers (NIR, netx,
graph.h5) run in a forked child (snnc.compiler.isolation), whose coverage the parent cannot see,
so for them tests/fuzzing.py's structural mutators are the better tool.

Every input goes through tests/fuzzing.py's oracle (``check_case``); a FAILURE stops the run with
the input saved as ``crash-*`` in the current directory.

    .venv/bin/python tests/fuzz_coverage.py --kind onnx --runs 20000      (make fuzz-coverage)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["snnc"]):
    import snnc.compiler.frontend  # noqa: F401  (the modules the readers below run, instrumented)
    import snnc.compiler.onnx_io  # noqa: F401
    import snnc.hwsim.energy  # noqa: F401
    import snnc.models.checkpoint  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))
import fuzzing  # noqa: E402  (tests/fuzzing.py: seeds and the oracle)

KINDS = ("onnx", "checkpoint", "cost_model")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--runs", type=int, default=20000, help="inputs to try (default 20000)")
    p.add_argument("--max-len", type=int, default=1 << 16, help="largest input in bytes (default 65536)")
    args = p.parse_args()
    fuzzing.limit_memory(6.0)
    work = Path(tempfile.mkdtemp(prefix=f"snnc-atheris-{args.kind}-"))
    seeds = fuzzing.make_seeds(work / "seeds")
    corpus = work / "corpus"
    corpus.mkdir()
    seed = seeds[args.kind]
    (corpus / seed.name).write_bytes(seed.read_bytes())
    target = work / "case" / seed.name
    target.parent.mkdir()
    tally = {fuzzing.ACCEPTED: 0, fuzzing.CLEAN: 0}
    t0 = time.perf_counter()

    def one_input(data: bytes) -> None:
        target.write_bytes(data)
        outcome = fuzzing.check_case(args.kind, target)
        if outcome.failed:
            raise AssertionError(f"{args.kind}: {outcome.detail}")
        tally[outcome.status] += 1
        done = sum(tally.values())
        if done % 5000 == 0 or done == args.runs:   # libFuzzer exits without running atexit handlers
            print(f"{args.kind}: {done} inputs in {time.perf_counter() - t0:.0f} s, {tally[fuzzing.ACCEPTED]} "
                  f"accepted, {tally[fuzzing.CLEAN]} clean errors, 0 failures", flush=True)

    atheris.Setup([sys.argv[0], f"-runs={args.runs}", f"-max_len={args.max_len}", "-rss_limit_mb=6144",
                   str(corpus)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
