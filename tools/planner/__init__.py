"""The schedule planner: loss-curve laws fitted to finished runs, and the schedules they recommend.

`curves` reads a run's loss curve and rebuilds the LR of every step; `laws` holds the registry and the
sums over an LR schedule; `multipower` and `annealing` are the two registered laws; `fit` fits one and
predicts with it; `candidates` lists the schedules to rank; `plan` ranks them with an uncertainty;
`plot` draws fitted against observed curves.
"""

from tools.planner import annealing, multipower  # noqa: F401  (each registers its law)
from tools.planner.laws import LAWS

__all__ = ["LAWS"]
