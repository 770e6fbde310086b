"""Evaluation of trained models: math error rate with verified answers, held-out loss.

The evaluation set and the answer check are reusable by other stages (decontamination)::

    from jobs.evaluation import answers_equivalent, builtin_eval_set, load_eval_set
"""

from jobs.evaluation.evalset import builtin_eval_set, load_eval_set
from jobs.evaluation.verify import answers_equivalent

__all__ = ["answers_equivalent", "builtin_eval_set", "load_eval_set"]
