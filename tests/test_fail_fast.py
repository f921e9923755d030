"""A wrong path is reported before torch and the models are imported (issue 16, item 8)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Runs the CLI in a fresh interpreter and reports, once it exits, its status and whether
# torch was imported.
PROBE = """
import json, sys
sys.argv = ["changen", *sys.argv[1:]]
from changen.cli.app import main
try:
    main()
    code = 0
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""

COMMANDS = [
    "generate {x} --out {out}",
    "generate {x} --out {out} --split train=0.8,val=0.2",
    "simulate {x} --out {out}",
    "train generator {x} --out {out}",
    "train diffusion {x} --out {out}",
    "train autoencoder {x} --out {out}",
    "detect train {x} --out {out}",
    "detect eval {x} --ckpt {out}",
    "detect predict {x} {x} --ckpt {out} --out {out}/c.png",
    "export {x} --to parquet --out {out}",
    "gallery {x}",
    "eval fidelity --real {x} --fake {x}",
    "data inspect {x}",
    "data convert {x} {out} --layout levircd",
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.split()[:2]))
def test_missing_path_fails_before_torch(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "no-such-dir"
    args = command.format(x=missing, out=tmp_path / "out").split()
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    seconds = time.perf_counter() - start
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["code"] not in (0, None), run.stderr
    assert str(missing) in run.stderr and "Traceback" not in run.stderr
    assert not result["torch"], f"torch was imported before the error: {run.stderr}"
    assert seconds < 5.0, f"took {seconds:.1f} s to report a missing path"
