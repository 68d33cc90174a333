"""Package discovery for the root-level rooms, installed under the ``dxai`` namespace.

Each room folder at the repository root (``daemon/``, ``actors/``, ...) becomes ``dxai.<room>``;
every sub-package inside it is found automatically, so nothing has to be listed by hand.
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOMS = ("daemon", "actors", "batching", "engines", "observability", "configs")
#: Packages installed from a folder that is not a room: the synthetic corpus generator lives with
#: the tests that use it and installs as ``dxai.synth`` so that ``dxai synth`` works anywhere.
EXTRA = {"dxai.synth": "tests/synth"}

packages: list[str] = []
package_dir: dict[str, str] = {}
for room in ROOMS:
    packages.append(f"dxai.{room}")
    package_dir[f"dxai.{room}"] = room
    packages.extend(f"dxai.{room}.{sub}" for sub in find_packages(where=room))
for name, folder in EXTRA.items():
    if Path(folder).is_dir():  # an image that copies only the rooms installs without it
        packages.append(name)
        package_dir[name] = folder

setup(packages=packages, package_dir=package_dir)
