"""Score one or several requests with one model: merge what can be merged, split it back.

Requests with the same merge key (same columns, same params) become one DataFrame and one
`predict` call; the predictions are cut back by row counts, so each request gets exactly its
own rows. If the merged call fails, or the model does not answer one prediction per row, each
request is scored on its own, so one bad request never fails its neighbours. A scorer made
with `merge=False` (a model whose rows are not independent, see invariance.py) never merges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .protocol import ModelInput, ScoringError, ScoringInput, predictions_body

# Prediction types that hold one entry per input row and can be cut by row ranges.
_SLICEABLE = (np.ndarray, pd.Series, pd.DataFrame, list)

Outcome = bytes | ScoringError


class Scorer:
    def __init__(self, model_input: ModelInput, *, merge: bool = True) -> None:
        self.model_input = model_input
        # False for a model whose answer for a row depends on its batch mates (invariance.py).
        self.merge = merge

    def score(self, items: Sequence[ScoringInput]) -> list[Outcome]:
        """Response bodies (or errors), in the order of `items`."""
        outcomes: list[Outcome | None] = [None] * len(items)
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            if item.merge_key is None or not self.merge:
                outcomes[index] = self._score_one(item)
            else:
                groups[item.merge_key].append(index)
        for indexes in groups.values():
            merged = self._score_merged([items[i] for i in indexes]) if len(indexes) > 1 else None
            for position, index in enumerate(indexes):
                outcomes[index] = (
                    merged[position] if merged is not None else self._score_one(items[index])
                )
        return outcomes  # type: ignore[return-value]

    def _predict(self, items: Sequence[ScoringInput]) -> Any:
        """One predict call over the rows of `items`, which share a merge key (or are one)."""
        first, model_input = items[0], self.model_input
        if first.rows is not None:
            rows = [row for item in items for row in item.rows or ()]
            if first.params is None:
                predictions = model_input.predict_numeric(first.columns or [], rows)
                if predictions is not None:
                    return predictions
            data = model_input.frame(first.columns, rows)
        elif first.records is not None:
            data = model_input.frame_from_records(
                [record for item in items for record in item.records or ()]
            )
        elif len(items) == 1:
            data = first.data
        else:
            data = pd.concat([item.data for item in items], ignore_index=True)
        return model_input.model.predict(data, params=first.params)

    def _score_merged(self, group: list[ScoringInput]) -> list[bytes] | None:
        """None when the group must be scored one by one: the merged call failed, or its
        predictions cannot be cut back into one slice per request."""
        try:
            predictions = self._predict(group)
            if not isinstance(predictions, _SLICEABLE) or len(predictions) != sum(
                item.n_rows for item in group
            ):
                return None
            bodies, start = [], 0
            for item in group:
                bodies.append(predictions_body(_rows(predictions, start, start + item.n_rows)))
                start += item.n_rows
            return bodies
        except Exception:
            return None  # each request gets its own answer or error

    def _score_one(self, item: ScoringInput) -> Outcome:
        from mlflow.exceptions import MlflowException

        try:
            return predictions_body(self._predict([item]), unwrapped=item.unwrapped)
        except ScoringError as error:
            return error
        except MlflowException as error:
            return ScoringError.from_mlflow(error)
        except Exception as error:  # the model's own failure on this input
            return ScoringError(
                "BAD_REQUEST",
                "Encountered an unexpected error while evaluating the model. Verify that the "
                "input is compatible with the model for inference. "
                f"{type(error).__name__}: {error}",
            )


def _rows(predictions: Any, start: int, stop: int) -> Any:
    if hasattr(predictions, "iloc"):
        return predictions.iloc[start:stop]
    return predictions[start:stop]
