"""Golden file for `pbatch run --resume` refusals: a changed input, a changed solution, a
job that is not failed, an output that cannot be continued, options given with --resume.
Paths are shown relative to the test's folder. Regenerate with `PBATCH_UPDATE_GOLDEN=1`."""

from __future__ import annotations

import re
import shutil
import signal

from test_golden import compare_golden
from test_resume import make_input, pbatch, start_and_stop


def test_resume_refusals(solutions, tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    src = tmp_path / "in.json"
    src.write_bytes(make_input(8000, 4))
    model = tmp_path / "model.npz"
    shutil.copy(solutions["user-personalization"], model)
    base = ["run", "-s", str(model), "-i", str(src), "-o", str(out), "-q", "--workers", "1"]
    start_and_stop(base, home, "stopped", 1024, signal.SIGTERM, 0.0)
    parts = []

    def run(args: list[str]) -> None:
        result = pbatch(args, home)
        text = f"$ pbatch {' '.join(args)}\nexit: {result.returncode}\n{result.stderr}"
        text = text.replace(str(tmp_path), "TMP")
        parts.append(re.sub(r"[0-9a-f]{12}…", "HASH…", text))

    data = src.read_bytes()
    src.write_bytes(data[:-100])
    run(["run", "--resume", "stopped"])
    src.write_bytes(data)
    run(["run", "--resume", "stopped"])
    src.write_bytes(data)
    shutil.copy(solutions["sims"], model)
    run(["run", "--resume", "stopped", "--workers", "2"])
    run(["run", "--resume", "stopped", "-n", "3", "--filter", "x"])
    done = ["run", "-s", str(solutions["user-personalization"]), "-i", str(src), "-o", "-"]
    pbatch([*done, "--job-name", "done"], home)  # an ACTIVE job
    run(["run", "--resume", "done"])
    run(["run", "--resume", "missing"])
    compare_golden("resume-refusals", "\n".join(parts))
