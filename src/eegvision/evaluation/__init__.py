"""Zero-shot evaluation: exact and Monte-Carlo k-way accuracy, CSLS (transductive), result rows, statistics.

* :mod:`~eegvision.evaluation.kway` — k-way top-t accuracy for every k from one similarity matrix;
* :mod:`~eegvision.evaluation.csls` — hubness correction, reported separately (transductive);
* :mod:`~eegvision.evaluation.results` — result rows (fractions), CSV/JSON;
* :mod:`~eegvision.evaluation.stats` — mean ± std, bootstrap CIs, tests against chance, paired comparisons;
* :mod:`~eegvision.evaluation.embeddings` — evaluate precomputed test embeddings (files or arrays);
* :mod:`~eegvision.evaluation.linear` — linear baselines: ridge and whitened (MVNN) ridge retrieval.
"""

from eegvision.evaluation.csls import csls_scores
from eegvision.evaluation.embeddings import (
    evaluate_embedding_files,
    evaluate_embeddings,
    load_embeddings,
)
from eegvision.evaluation.kway import KWayAccuracy, cosine_similarity, kway_exact, kway_montecarlo
from eegvision.evaluation.linear import (
    ResidualCovariance,
    linear_baselines,
    residual_covariance,
    ridge_retrieval,
    whitened_ridge_retrieval,
)
from eegvision.evaluation.results import (
    RESULT_COLUMNS,
    Evaluation,
    headline,
    make_rows,
    read_results,
    results_frame,
    write_results,
)
from eegvision.evaluation.stats import (
    bootstrap_ci,
    chance_level,
    paired_comparison,
    permutation_test_chance,
    query_bootstrap_ci,
    summarize,
)

__all__ = [
    "Evaluation", "KWayAccuracy", "RESULT_COLUMNS", "ResidualCovariance", "bootstrap_ci", "chance_level",
    "cosine_similarity", "csls_scores", "evaluate_embedding_files", "evaluate_embeddings", "headline", "kway_exact",
    "kway_montecarlo", "linear_baselines", "load_embeddings", "make_rows", "paired_comparison",
    "permutation_test_chance", "query_bootstrap_ci", "read_results", "residual_covariance", "results_frame",
    "ridge_retrieval", "summarize", "whitened_ridge_retrieval", "write_results",
]
