"""eegvision.analysis: when and where the image is decodable, and what the embeddings represent.

* :func:`time_analysis` — accuracy in sliding / growing time windows (``time_{sliding,growing}.{csv,png}``);
* :func:`region_analysis` — accuracy per scalp region (``regions.{csv,png}``);
* :func:`importance_for_run` / :func:`channel_importance` — occlusion and gradient x input, MNE topomaps
  (``importance.{csv,png}``);
* :func:`rsa_for_run` / :func:`rsa_analysis` — RSA with a permutation test (``rsa.{csv,png}``);
* :func:`tsne_for_run` / :func:`embedding_map` — t-SNE coloured by category (``tsne.{csv,png}``).
"""

from eegvision.analysis.categories import primary_category, test_categories, things_categories
from eegvision.analysis.importance import (
    ChannelImportance,
    channel_importance,
    importance_for_run,
    plot_topomaps,
)
from eegvision.analysis.maps import (
    EmbeddingMap,
    embedding_map,
    labels_for_data,
    tsne_for_run,
)
from eegvision.analysis.regions import RegionAnalysis, region_analysis
from eegvision.analysis.similarity import RSAResult, rdm, rsa, rsa_analysis, rsa_for_run
from eegvision.analysis.windows import TimeAnalysis, load_pair, plan_windows, time_analysis

__all__ = [
    "ChannelImportance", "EmbeddingMap", "RSAResult", "RegionAnalysis", "TimeAnalysis", "channel_importance",
    "embedding_map", "importance_for_run", "labels_for_data", "load_pair", "plan_windows", "plot_topomaps",
    "primary_category", "rdm", "region_analysis", "rsa", "rsa_analysis", "rsa_for_run", "test_categories",
    "things_categories", "time_analysis", "tsne_for_run",
]
