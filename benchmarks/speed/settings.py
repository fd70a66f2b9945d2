"""Settings of the speed study: what sets its size (``FULL``, ``QUICK``) and its targets."""

from __future__ import annotations

from dataclasses import dataclass, field

from haba_core import objective_names

NAME = "speed"
SECTION = "speed"
TARGETS = {"online_overhead_max": 1.3, "haba_iteration_ratio_max": 1.3, "batched_compose_speedup_min": 5.0}
PARTS = ("threads", "objectives", "downstream", "scaling", "compose", "profile")
SHAPES = {"cifar10-like": (3, 32, 32), "mnist-like": (1, 28, 28)}


@dataclass
class Settings:
    """Everything that sets the size of the study."""

    shapes: dict = field(default_factory=lambda: dict(SHAPES))   # data name -> (c, h, w)
    per_class: int = 500                 # random real images per class (10 classes)
    net_width: int = 128                 # ConvNet width / depth: the standard distillation network
    net_depth: int = 3
    ipcs: tuple[int, ...] = (2, 11)      # budgets of part 1 (IPC-2 and IPC-11 equivalents)
    objectives: dict = field(default_factory=lambda: {"cifar10-like": objective_names(),  # every registered one
                                                       "mnist-like": ("dm",)})
    timed_iterations: int = 2            # part 1: per seed, after one discarded warm-up iteration
    scaling_timed_iterations: int = 1    # part 4: likewise
    batch_real: int = 64                 # DM / DC real images per class per iteration (papers: 256)
    dc_outer: int = 10                   # DC/DSA outer loop (paper: 10 for IPC 10)
    dc_inner: int = 5                    # DC/DSA network steps after each update (paper: 50)
    mtt_syn_steps: int = 3               # MTT unrolled student steps (MTT CIFAR-10: 30–80)
    mtt_expert_epochs: int = 2
    eval_ipcs: dict = field(default_factory=lambda: {"cifar10-like": (2, 11, 51), "mnist-like": (11,)})
    eval_epochs: int = 3                 # timed epochs per seed (after one warm-up epoch)
    scaling_base: tuple[int, int, int] = (10, 5, 32)   # (BPC, |H|, image size) held fixed in the sweeps
    scaling_bpc: tuple[int, ...] = (1, 10, 50)
    scaling_h: tuple[int, ...] = (1, 5, 10)
    scaling_size: tuple[int, ...] = (16, 32, 64)
    scaling_all_h: bool = False         # also run the |H| sweep composing every hallucinator each step
    compose_ipcs: tuple[int, ...] = (11, 51)
    compose_batched_reps: int = 20
    compose_loop_reps: int = 2
    profile: bool = True
    ablations: bool = True               # DM: haba without adversary / with 1 hallucinator per step
    batch_real_checks: tuple = (("cifar10-like", "dm", 11, 256),)   # (data, objective, IPC, batch_real) re-run
    threads_check: bool = True           # part 0: DM haba iteration with 1 thread vs all cores
    threads_counts: tuple = ()           # thread counts of part 0 (empty: 1 and the core count)
    precision: str = "fp32"              # DistillConfig.precision of every distillation run (fp32 | bf16)


FULL = Settings()
QUICK = Settings(shapes={"cifar10-like": (3, 16, 16), "mnist-like": (1, 14, 14)}, per_class=12, net_width=32, net_depth=2, ipcs=(3,),
                 objectives={"cifar10-like": objective_names()},
                 timed_iterations=1, scaling_timed_iterations=1, batch_real=8, dc_outer=2, dc_inner=1,
                 mtt_syn_steps=2, batch_real_checks=(("cifar10-like", "dm", 3, 16),), threads_check=True,
                 threads_counts=(1,),  # 2 threads can take 100x longer on a loaded machine
                 eval_ipcs={"cifar10-like": (3,)}, eval_epochs=1,
                 scaling_base=(1, 2, 16), scaling_bpc=(1, 2), scaling_h=(1, 2), scaling_size=(16,),
                 scaling_all_h=False, compose_ipcs=(3,), compose_batched_reps=3, compose_loop_reps=1,
                 profile=True)
