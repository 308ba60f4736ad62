"""The train stage's epoch count: tune's selected best epoch (capped by train.max_epochs), or a clear error."""

from __future__ import annotations

import pytest

from pipelines.train import tuned_epochs
from tradepipe.runtime.stage import StageError


def test_the_tuned_epoch_count_is_tunes_best_epoch_capped_by_max_epochs() -> None:
    assert tuned_epochs({"best_epoch": 3}, 25) == 3
    assert tuned_epochs({"best_epoch": 30}, 25) == 25


@pytest.mark.parametrize("best", [{}, {"best_epoch": 0}, {"best_epoch": 2.5}])
def test_a_best_config_without_a_best_epoch_names_the_fix(best: dict[str, object]) -> None:
    with pytest.raises(StageError, match=r"best_config.json has no best_epoch .*train.epochs: early_stopping"):
        tuned_epochs(best, 25)
