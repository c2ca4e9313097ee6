# Metadata lives in pyproject.toml. This file only adds configs/ (at the repository root) to the packages
# found automatically, as the package torchsci.configs, so the torchsci command finds its config groups
# after a plain, non-editable install as well.
from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["torchsci*"]), "torchsci.configs"], package_dir={"torchsci.configs": "configs"})
