"""Maps the repo's top-level folders onto the ``hsa_memory`` namespace.

Each folder is one part of the system (ARCHITECTURE.md); installing them as
``hsa_memory.<part>`` keeps generic names such as ``model`` out of site-packages.
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
PARTS = ["model", "kernels", "store", "integrations", "cli", "service", "training"]

package_dir = {"hsa_memory": "hsa_memory"}
packages = ["hsa_memory"] + [f"hsa_memory.{p}" for p in find_packages(where="hsa_memory")]
for part in PARTS:
    package_dir[f"hsa_memory.{part}"] = part
    packages.append(f"hsa_memory.{part}")
    packages += [f"hsa_memory.{part}.{sub}" for sub in find_packages(where=part)]

setup(package_dir=package_dir, packages=packages)
