"""Install keras_odetoode: `pip install -e ".[test]"` (add `docs` for the documentation site)."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "keras_odetoode" / "__init__.py").read_text()).group(1)

setup(
    name="keras_odetoode",
    version=VERSION,
    description="ODEtoODE: neural ODEs whose weights flow on the orthogonal group, for Keras",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_odetoode", "keras_odetoode.*"]),
    include_package_data=True,
    install_requires=[
        "numpy>=1.26",
        "scipy>=1.11",
        "tensorflow>=2.16",
        "keras>=3.3",
        "tensorflow-probability>=0.24",
        "tf-keras>=2.16",  # TFP imports it beside Keras 3
        "tensorboard>=2.16",  # TensorFlow 2.21 no longer installs it; the logs need it
        "tensorflow-datasets>=4.9",
        "importlib_resources",  # TFDS downloads need it without declaring it
        "gymnasium[mujoco]>=1.0",
        "mujoco>=3.3,<4",  # dm-control 1.0.50 breaks with mujoco 4
        "dm-control>=1.0.20",
        "shimmy[dm-control]>=1.3",
        "matplotlib>=3.7",
        "scikit-image>=0.22",
        "tqdm>=4.60",
    ],
    extras_require={
        "ray": ["ray[default]>=2.9"],
        "test": ["pytest>=7", "pytest-timeout", "nbmake>=1.5", "ray[default]>=2.9", "ruff>=0.6"],
        # The documentation site: `mkdocs build --strict` (mkdocs.yml).
        "docs": ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "mkdocs-jupyter>=0.25"],
    },
    entry_points={"console_scripts": ["keras-odetoode=keras_odetoode.cli:run"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
