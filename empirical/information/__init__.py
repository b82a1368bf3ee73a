"""Information estimators of the paper's information-plane measurements (Fig. 4 of arXiv:2509.20829).

Computed on held-out data of a trained network's representation ``Z = g(X)``, the input ``X`` and the
labels ``Y``, all in nats:

* :mod:`.hsic`: normalized HSIC, the paper's kernel route;
* :mod:`.knn`: k-nearest-neighbour estimators: Kozachenko-Leonenko entropy (the paper's route to
  mutual information, ``estimator="kl"``), KSG and Ross's mixed estimator (``estimator="ksg"``), and
  the entry points :func:`mutual_information` / :func:`label_mutual_information`;
* :mod:`.compressed`: compressed mutual information (PCA / autoencoder codes, whitened, then k-NN);
* :mod:`.autoencoder`: the cached input autoencoder;
* :mod:`.validation`: distributions with known mutual information, to measure the estimators' bias.

These are measurement tools, not results of the paper: the paper *uses* them to show the late
compression predicted by Thm. 3.4 (``I(Z;X) - I(Z;Y)`` falls as the within-class variance falls).
"""
from ncgrok.empirical.information.autoencoder import AutoencoderConfig, InputAutoencoder, fit_or_load
from ncgrok.empirical.information.compressed import CompressedInformation, CompressedMutualInformation
from ncgrok.empirical.information.hsic import NormalizedHSIC
from ncgrok.empirical.information.knn import (
    ESTIMATORS,
    KNNEntropy,
    label_mutual_information,
    mutual_information,
    whiten,
)

__all__ = [
    "ESTIMATORS",
    "NormalizedHSIC",
    "KNNEntropy",
    "mutual_information",
    "label_mutual_information",
    "CompressedMutualInformation",
    "CompressedInformation",
    "AutoencoderConfig",
    "InputAutoencoder",
    "fit_or_load",
    "whiten",
]
