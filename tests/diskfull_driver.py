"""Runs ``articulate`` commands on a file system that fills up mid-write (used by test_bad_inputs_writes.py).

    python diskfull_driver.py SPEC.json RESULT.json

SPEC: ``{"mode": "tmpfs" | "fsize", "work": folder, "cases": [{"name", "argv", "patch"}]}``; in each argv the
token ``{OUT}`` stands for the folder the outputs go to. Each case runs twice in this process (``main(argv)``):
first with a normal folder, to measure what it writes (it must succeed), then on a full disk:

* ``tmpfs`` (run under ``unshare -rm``): a small tmpfs mounted at ``work/full``, filled so that half of what
  the case writes still fits: the write fails with ENOSPC part way;
* ``fsize``: the process's file size limit (RLIMIT_FSIZE) set to half the largest file the case writes: that
  file fails with EFBIG part way (for machines without user namespaces).

RESULT: per case the exit status, stderr and every path left where the outputs go (the filler excepted).
``patch`` names stand-ins for what is not available offline (a Whisper model, minutes of benchmarks).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

FILLER = ".filler"


def _patch(name: str, set_attr=setattr) -> None:
    """Stand-ins for a recipe's slow or networked work. In this driver's own process plain ``setattr``; a test that
    patches in the pytest process passes ``monkeypatch.setattr`` so that nothing leaks into later tests."""
    if name == "bench":
        import articulate.experiments.bench as bench

        set_attr(bench, "run_benchmarks",
                 lambda **kw: {"environment": {"cpu_threads": 1, "torch": "x"}, "results": list(range(4000))})
        set_attr(bench, "summary_rows", lambda result: [("rows", "4000")])
    elif name == "whisper":
        import articulate.cli.transcribe as transcribe

        class Fake:
            sample_rate = 16000

            def __init__(self, *a, **k):
                pass

            def __call__(self, wav):
                return "a transcript " * 400

        set_attr(transcribe, "WhisperTranscriber", Fake)
    elif name == "ceiling":
        import articulate.phantom.ceilings as ceilings

        set_attr(ceilings, "intonation_ceilings", lambda **kw: {
            "settings": {"subjects": 2, "seed": 0, "recordings": 1, "crops": 1, "draws": 1}, "seconds": 0.0,
            "f0_rms_semitones": {"larynx": 0.5, "word": 0.8, "redraw": 1.0, "flat": 2.0}, "rows": list(range(3000))})
        set_attr(ceilings, "ceiling_table", lambda result: "| table |")


def _run(argv: list[str]) -> tuple[int, str]:
    from articulate.cli.main import main

    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            rc = int(main(argv))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        except BaseException as exc:  # noqa: BLE001 - reported to the test as what the user would see
            import traceback

            err.write("Traceback (most recent call last):\n" + "".join(traceback.format_exception(exc)))
            rc = 99
    return rc, err.getvalue()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != FILLER)


def _sizes(folder: Path) -> list[int]:
    return [p.stat().st_size for p in _files(folder)]


def _left(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.name != FILLER)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["work"])
    full = work / "full"
    full.mkdir(parents=True, exist_ok=True)
    if spec["mode"] == "tmpfs":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(full)], check=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead of a kill
    for name in {c.get("patch") for c in spec["cases"]} - {None}:
        _patch(name)
    results = []
    for case in spec["cases"]:
        normal = work / "normal" / case["name"].replace(" ", "_")
        normal.mkdir(parents=True)
        copied = [dst for _, dst in case.get("copy", [])]  # inputs that live where the outputs go
        for src, dst in case.get("copy", []):
            shutil.copy(src, normal / dst)
        rc0, err0 = _run([a.replace("{OUT}", str(normal)) for a in case["argv"]])
        sizes = [s for p, s in zip(_files(normal), _sizes(normal)) if p.name not in copied]
        for p in list(full.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        out = full / "out"
        out.mkdir()
        for src, dst in case.get("copy", []):
            shutil.copy(src, out / dst)
        limit = None
        if spec["mode"] == "tmpfs":
            st = os.statvfs(full)
            free = st.f_bavail * st.f_frsize
            keep = sum(sizes) // 2
            with open(full / FILLER, "wb") as f:
                f.truncate(0)
                chunk = b"\0" * (1 << 20)
                todo = max(0, free - keep)
                while todo > 0:
                    todo -= f.write(chunk[: min(len(chunk), todo)])
        else:
            limit = max(1, max(sizes, default=2) // 2)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            rc, err = _run([a.replace("{OUT}", str(out)) for a in case["argv"]])
        finally:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        results.append({"name": case["name"], "normal_rc": rc0, "normal_err": err0[-2000:], "bytes": sizes,
                        "rc": rc, "err": err, "left": _left(out), "copied": copied,
                        "out": str(out)})
    if spec["mode"] == "tmpfs":
        subprocess.run(["umount", str(full)], check=False)
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
