"""Installs ``cairn_kombu.pth`` next to the package (metadata lives in pyproject.toml).

setuptools has no pyproject setting for a file at the root of site-packages, so ``build_py``
copies it into the build tree; it is in the wheel's root and lands in site-packages, where the
interpreter reads it at start (see ``src/_cairn_kombu_hook.py``).
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "cairn_kombu.pth"


class build_py_with_pth(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join("src", PTH), os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        mapping[os.path.join(self.build_lib, PTH)] = os.path.join("src", PTH)
        return mapping


setup(cmdclass={"build_py": build_py_with_pth})
