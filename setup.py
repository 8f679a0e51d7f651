"""The build's one addition to pyproject.toml: the wheel carries conf/ and sweeps/ inside the package
(digits_bench/_packaged/), where digits_bench.packaged finds them; the repository keeps them at its top."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

FOLDERS = ("conf", "sweeps")  # what digits_bench.packaged.folder finds in digits_bench/_packaged/


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        for name in FOLDERS:
            target = Path(self.build_lib) / "digits_bench" / "_packaged" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithData})
