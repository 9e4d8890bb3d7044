"""The two steps that end each training stage: weight averaging and logit adjustment.

Both are fixed before looking at any held-out figures (docs/MODEL.md): the mean of the last
epochs' weights does not depend on where a run happens to stop, and the logit shift follows
from the class weights alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from drivingseg.errors import ModelError
from drivingseg.model.unet import UNet

__all__ = ["adjusted", "average_weights"]


def average_weights(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several state dicts of one model (weights and batch-norm statistics);
    integer buffers (``num_batches_tracked``) are taken from the last. Averaging the last
    epochs' weights smooths the epoch-to-epoch swings of a small-batch run (as SWA)."""
    if not states:
        raise ModelError("average_weights needs at least one state dict")
    out = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            out[key] = torch.stack([s[key].float() for s in states]).mean(dim=0).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def adjusted(model: UNet, shift: torch.Tensor | None) -> UNet:
    """A copy of ``model`` whose class scores are shifted by ``shift`` (in the head's bias),
    or ``model`` itself when ``shift`` is None.

    Class-weighted cross-entropy learns scores of ``weight_c * p(c | x)``; adding
    ``-log(weight_c)`` recovers ``p(c | x)`` (logit adjustment, Menon et al., ICLR 2021), so
    weighted training no longer over-predicts the up-weighted class (cars).
    """
    if shift is None:
        return model
    out = copy.deepcopy(model)
    bias = out.head.bias
    if bias is None:
        raise ModelError("logit adjustment needs a head with a bias")
    with torch.no_grad():
        bias += shift.to(bias)
    return out
