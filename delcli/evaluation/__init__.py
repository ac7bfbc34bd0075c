"""Detection mAP as the official ActivityNet scorer defines it: of a results file
(`score_predictions`), of detections in memory (`score_loaded`), of a model on a split of
its feature dataset (`evaluate_model`)."""

from delcli.evaluation.model import evaluate_model
from delcli.evaluation.scoring import EvaluationReport, score_loaded, score_predictions

__all__ = ["EvaluationReport", "evaluate_model", "score_loaded", "score_predictions"]
