"""Build stoker's optional C modules; everything else is declared in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "stoker.transforms._cfused",
            ["src/stoker/transforms/_cfused.c"],
            # Bit-identical to the unfused transforms only without FMA contraction.
            extra_compile_args=["-O3", "-ffp-contract=off"],
            optional=True,  # without a compiler stoker installs and uses its numpy/torch path
        ),
        Extension(
            "stoker._cmix",
            ["src/stoker/_cmix.c"],
            extra_compile_args=["-O3"],
            optional=True,  # without it stoker.seeding runs the same arithmetic in numpy
        ),
        Extension(
            "stoker.datasets._cjpeg",
            ["src/stoker/datasets/_cjpeg.c"],
            libraries=["jpeg", "m"],  # libjpeg-turbo's headers: Debian's libjpeg-dev
            extra_compile_args=["-O3"],  # -O3: the box sums vectorised
            optional=True,  # without it a cropped JPEG is decoded whole, then cropped
        ),
    ]
)
