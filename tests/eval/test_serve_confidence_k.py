"""`serve`: a `mirror` request for another K than the combined confidence was fitted on is a
400 naming `n`, before anything is sampled."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mindmirror.config import EvalConfig
from mindmirror.deployment.chat_request import ApiError
from mindmirror.deployment.serve import _aggregate
from mindmirror.student.confidence import FEATURES, ConfidenceModel


def served_with_k(samples: int) -> Any:
    """What `_aggregate` reads of a server whose judge has a confidence fitted on K=samples."""
    unit = (1.0,) * len(FEATURES)
    model = ConfidenceModel(FEATURES, unit, unit, unit, 0.0, 0.5, 0.8, 9, samples)
    return SimpleNamespace(
        eval=EvalConfig(num_samples=5), student=SimpleNamespace(confidence=model)
    )


def test_mirror_with_another_n_than_the_fitted_k_is_a_bad_request() -> None:
    request = SimpleNamespace(temperature=None, top_p=None)
    with pytest.raises(ApiError, match="fitted on 4 CoTs per question: send n=4") as error:
        _aggregate(served_with_k(4), "q", "mirror", 3, 0, request)  # type: ignore[arg-type]
    assert error.value.status == 400 and error.value.param == "n"
    # n = 1 asks for eval.num_samples, which is not K either.
    with pytest.raises(ApiError, match=r"\(got 5\)"):
        _aggregate(served_with_k(4), "q", "mirror", 1, 0, request)  # type: ignore[arg-type]
