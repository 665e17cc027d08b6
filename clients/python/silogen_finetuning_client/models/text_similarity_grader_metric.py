from typing import Literal

TextSimilarityGraderMetric = Literal[
    "bleu", "chrf", "fuzzy_ratio", "levenshtein", "rouge_1", "rouge_l", "token_set_ratio"
]

TEXT_SIMILARITY_GRADER_METRIC_VALUES: set[TextSimilarityGraderMetric] = {
    "bleu",
    "chrf",
    "fuzzy_ratio",
    "levenshtein",
    "rouge_1",
    "rouge_l",
    "token_set_ratio",
}


def check_text_similarity_grader_metric(value: str) -> TextSimilarityGraderMetric:
    if value in TEXT_SIMILARITY_GRADER_METRIC_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {TEXT_SIMILARITY_GRADER_METRIC_VALUES!r}")
