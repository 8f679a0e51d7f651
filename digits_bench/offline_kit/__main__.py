"""The command line of `python -m digits_bench.offline_kit`; what it does is its package's docstring."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from digits_bench.entry import command
from digits_bench.errors import ConfigError, RunFailed
import digits_bench.offline_kit as package
from digits_bench.offline_kit import INSTALL_SH, copy_mnist, download_wheels, parse_have


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m digits_bench.offline_kit", description=package.__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".whl"), help="the kit's folder, replaced (default .whl, git-ignored)")
    parser.add_argument("--have", type=Path, required=True, help="file listing the target's packages (`pip freeze` there, or names)")
    parser.add_argument("--python-version", default="3.12", help="the target's Python, major.minor (default 3.12)")
    args = parser.parse_args(argv)
    if not args.have.is_file():
        raise ConfigError(f"--have {args.have} does not exist; write the target's `pip freeze` there")
    have = parse_have(args.have.read_text())
    if "torch" not in have:
        raise ConfigError(f"{args.have} lists no torch; the target needs its own PyTorch build first")
    partial = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        copy_mnist(partial)
        wheels = download_wheels(partial, args.python_version, have)
    except BaseException as err:  # the old kit stays until a complete new one replaces it
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(err, subprocess.CalledProcessError):
            raise RunFailed(f"pip failed (exit {err.returncode}); its output is above") from None
        raise
    (partial / "install.sh").write_text(INSTALL_SH.format(kit=args.out.as_posix()))
    shutil.rmtree(args.out, ignore_errors=True)
    partial.replace(args.out)  # the old kit is replaced only by a complete new one
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    print(f"{args.out}: {len(wheels)} wheels for Python {args.python_version} and MNIST, {size:.1f} MiB; "
          f"on the target: . {args.out}/install.sh")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
