"""How much of each attribute the shipped world CLIP's image embedding carries for held-out concepts (issue #19).

The world generator draws an image from a world-CLIP image embedding; it cannot draw a held-out concept's shape
more reliably than that shape can be read from the embedding. This measures the readable part: probes trained on
the embeddings of the world's training images (every training concept, 8 renderings each, as the generator is
trained) and tested on the 400 images of the demo's 200 held-out test concepts (the generator's own evaluation
set): multinomial logistic regression (linear) and two MLPs (scikit-learn, early stopping on 10 % of the training
rows, seed 0). Next to them: the attribute classifier (the judge) on the renderings themselves, and the nearest
training images (k = 1, 5, 20, cosine) voting on the attribute.

Run: ``.venv/bin/python benchmarks/world_shape_bound.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import os
import time

from _common import write_result

os.environ.setdefault("EEGVISION_PROGRESS", "0")

ATTRIBUTES = ("shape", "texture", "colour", "background")


def main() -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from eegvision.sim.world import load_world_models
    from eegvision.sim.world.data import ATTRIBUTES as VALUES
    from eegvision.sim.world.data import attribute_labels
    from eegvision.sim.world.train import world_data

    t0 = time.perf_counter()
    models = load_world_models()
    data = world_data(0)

    def labels(images):
        table = attribute_labels(images.concepts)
        return {a: np.asarray(table[a])[images.concept_ids] for a in ATTRIBUTES}

    x_train = models.embed_images(data.train.images).numpy()
    x_test = models.embed_images(data.test.images).numpy()
    y_train, y_test = labels(data.train), labels(data.test)
    judge = models.classify(data.test.images)
    sims = F.normalize(torch.from_numpy(x_test), dim=-1) @ F.normalize(torch.from_numpy(x_train), dim=-1).T
    out: dict = {"n_train_images": len(x_train), "n_test_images": len(x_test),
                 "n_test_concepts": len(data.test.concepts), "embedding_dim": int(x_train.shape[1]),
                 "world_clip_sha256": models.manifest["files"]["clip.safetensors"]["sha256"],
                 "generator_shape_from_true_embedding": models.manifest["quality"]["generator"]["shape"],
                 "units": "accuracy on the held-out test images (fraction)"}
    for a in ATTRIBUTES:
        ytr, yte = y_train[a], y_test[a]
        out[f"{a}.chance"] = round(1.0 / len(VALUES[a]), 4)
        out[f"{a}.judge_on_renderings"] = round(float(np.mean(np.asarray(judge[a]) == yte)), 4)
        lin = LogisticRegression(max_iter=3000).fit(x_train, ytr)
        out[f"{a}.linear_probe"] = round(float(np.mean(lin.predict(x_test) == yte)), 4)
        for hidden in ((256,), (512, 256)):
            mlp = MLPClassifier(hidden_layer_sizes=hidden, max_iter=400, early_stopping=True, random_state=0)
            out[f"{a}.mlp_probe_{'x'.join(map(str, hidden))}"] = round(
                float(np.mean(mlp.fit(x_train, ytr).predict(x_test) == yte)), 4)
        for k in (1, 5, 20):
            idx = sims.topk(k, dim=1).indices.numpy()
            votes = ytr[idx]
            pred = np.array([np.bincount(v).argmax() for v in votes])
            out[f"{a}.nearest_training_images_k{k}"] = round(float(np.mean(pred == yte)), 4)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    write_result("world_shape_bound", out)
    return out


if __name__ == "__main__":
    main()
