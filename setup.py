"""lstm-composer: MIDI parsing on Spark, stacked-LSTM training with Horovod on Spark."""
from setuptools import find_packages, setup

setup(
    name="lstm-composer",
    version="0.1.0",
    description="Music generation with a stacked LSTM, parsed on Spark, trained with Horovod on Spark",
    python_requires=">=3.11,<3.12",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    # TensorFlow is not listed: Horovod must be compiled against the exact TF build
    # already installed (tensorflow-cpu or tensorflow[and-cuda]); `make install` does both.
    install_requires=[
        "numpy>=1.26,<2",
        "pyarrow>=14,<26",
        "pyspark>=3.5,<4.4",
        "pandas>=2,<3",
        "music21>=10,<11",
        "matplotlib>=3.8",
        "horovod>=0.28.1,<0.29",
    ],
    # mido: a MIDI reader independent of ours; moto[server]: a real S3-compatible server on 127.0.0.1
    # for the storage tests.
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3.5,<4", "atheris>=2.3", "mido>=1.3,<2", "moto[server]>=5,<6"]},
)
