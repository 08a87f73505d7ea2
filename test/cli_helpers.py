"""Running the real ``inspatio-ros`` CLI in a subprocess, as a user would."""
import os
import subprocess
import sys


def run_cli(*args, timeout: float = 600):
    env = dict(os.environ, INSPATIO_NO_PROGRESS="1")
    return subprocess.run([sys.executable, "-m", "inspatio_ros.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def run_cli_in_process(*args):
    """The CLI's ``main`` in this process, for what needs no subprocess (help, option errors that
    stop before any work): each subprocess costs a Python start that imports torch (2-3 s on the
    2-core VM, 10 s under load). Returns what :func:`run_cli` returns."""
    import contextlib
    import io

    from inspatio_ros.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:          # argparse: --help and usage errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return subprocess.CompletedProcess(["inspatio-ros", *args], code, out.getvalue(), err.getvalue())
