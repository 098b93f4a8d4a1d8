"""``python -m asrfair``: what ``torchrun -m asrfair`` and ``accelerate launch -m`` run."""

from asrfair.cli import main

main()
