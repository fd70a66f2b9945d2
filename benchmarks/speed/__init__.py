"""Speed study: what does the factorization cost in time and memory?

``python -m benchmarks.speed [--quick] [--device auto|cpu|cuda] [--seeds N] [--out DIR] [--md FILE]``

Parts (all on synthetic random tensors shaped like CIFAR-10 / MNIST — timing needs no real data):

1. distillation iteration time per objective (dm, dc, dsa, mtt), haba vs plain at the same IPC budget;
2. one downstream training epoch with online composition vs plain tensors of the same count per epoch,
   and vs hallucinations materialized once;
3. peak memory of the distillation iteration and of the training epoch (columns of 1 and 2, and a table);
4. scaling of the haba DM iteration with BPC, |H| and image size;
5. composition micro-benchmark: batched no-grad ``sample_epoch`` vs one sample at a time with gradients;
6. a torch.profiler run of the slowest path (top ops by self CPU time, and the time per phase).

Every measurement is mean ± std over seeds (each seed: fresh data, fresh synthetic set, fresh networks;
haba and plain measured back-to-back so that their ratio is paired); every row states stored bytes and
IPC-equivalent. See ``settings.FULL`` for the settings and how they differ from the papers'.

One module per part (``objectives``, ``downstream``, ``scaling``, ``compose``, ``profile``), plus ``settings``,
``common`` helpers, ``render`` (the Markdown section) and ``cli``. The profile marks the loop's phases through
``distill(phase_hook=...)`` — nothing is patched.
"""
