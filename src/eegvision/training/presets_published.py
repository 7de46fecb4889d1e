"""Presets of the post-ATM methods: UBP, NeuroBridge, SAMGA, SVTL (required) and BrainHiVE.

Each preset records the paper's protocol (17 occipito-parietal or 63 channels, trial averaging, the paper's
selection rule), its image targets (backbone, layers, pooling, image prior) and the training options its recipe needs
beyond the overrides (``requires``, keyed by FitConfig field name: ``fit --preset`` refuses a preset while one of
them is not an option yet, or trains the rest with ``--partial-preset``). Facts come from the authors' code where it is public (repository and commit in ``source``)
and from the project's reference notes ``anchors.md`` (§1, §7) otherwise; see ``docs/presets.md`` for what each preset
cannot reproduce. HCF and NVOL have no preset: only their abstracts are public (``docs/presets.md``).

Encoders: UBP's ``EEGProjectLayer`` and NeuroBridge's ``EEGProject`` are eegvision's ``eegproject`` (same
parameters, same forward pass); NeuroBridge's and SVTL's ``TSConv`` is ``nice`` (same layers and parameter count;
the first Linear's input columns are ordered time-major instead of filter-major, a permutation); BrainHiVE's
``BrainMLP`` is ``brainmlp``. The counts measured with the authors' code are asserted in
``tests/test_presets_sota.py``.
"""

from __future__ import annotations

from eegvision.training.preset_types import Preset

__all__ = ["PUBLISHED_PRESETS"]

_UBP_REPO = "HaitaoWuTJU/Uncertainty-aware-Blur-Prior@89d8b83"
_NB_REPO = "feroooooo/NeuroBridge@6144203"
_BH_REPO = "ssshamiii/Brain-HIVE@f06db69"

_RN50 = {"library": "open_clip", "backbone": "RN50", "pretrained": "openai", "layers": ["final"],
         "pooling": "the model's image embedding (attention pool)", "normalize": True, "dim": 1024}
_RETRIEVAL_17 = {"objective": "retrieval", "average_train": True, "channels": "occipito-parietal"}
_PROTOCOL_17 = {"channels": "occipito-parietal", "n_channels": 17, "average_train": True, "average_test": True}
_PROTOCOL_63 = {"channels": "all", "n_channels": 63, "average_train": True, "average_test": True}
_WHITENED = "THINGS-EEG2 re-preprocessed at 250 Hz with MVNN whitening, 250 samples per trial (UBP preprocess/)"

# UBP: fovea blur of the image (Gaussian kernel 51, fovea mask 'exp' curve, 224 x 224), the kernel chosen per
# training sample among 51 - c, 51, 51 + c (c = 6) by where the sample's running EEG-image similarity falls in the
# batch's 95 % interval (main.py: gamma 0.3, alpha 0.05); test images use the middle kernel.
_UBP_TARGETS = {**_RN50, "prior": {
    "name": "fovea_blur", "kernel": 51, "kernel_shift": 6, "kernels": {"low": 45, "medium": 51, "high": 57},
    "curve": "exp", "system_g": 3, "image_size": [224, 224], "test_kernel": 51}}
_UBP_REQUIRES = {
    "logit_scale_mode": "softplus",
    "normalize_embeddings": "image",
}
# UBP's uncertainty-aware blur (per training image: running similarity s <- 0.3 * diag logit + 0.7 * s; above the
# batch's mean + 1.96 sd -> the least blurred features (kernel 45), below mean - 1.96 sd -> the most blurred (57),
# else 51) is FitConfig.blur_levels: the files of the low and high levels are the user's to extract.
_UBP_INPUTS = {"blur_levels": "LOW,HIGH: the RN50 features of the kernel-45 and kernel-57 fovea-blurred training "
               "images, `eegvision features IMAGES OUT --model RN50 --pretrained FILE --prior blur` (its medium "
               "files are --features-train/--features-test)"}
_UBP_NOTES = (
    "UBP's logit scale is softplus of a learnable parameter starting at log(1/0.07) (a scale near 2.7), applied to "
    "L2-normalised image features and *raw* EEG embeddings (main.py, base/utils.py ClipLoss): logit_scale_mode "
    "'softplus', normalize_embeddings 'image'.",
    "Selection differs: UBP intra-subject trains until the training loss stalls (early stopping, patience 5) and "
    "tests the last epoch; inter-subject it keeps the best top-1 on the 200 *test* images of the training "
    "subjects. eegvision selects on held-out training concepts.",
    "Seeds: exp.sh runs seed 0 (the commented grid 0-1); the paper does not state how many seeds its table averages.",
)

# NeuroBridge: 'cognitive prior augmentation' = the mean of the RN50 features of four degraded copies of each image
# (extract_feature.py + fuse_feature.py), used as the target for training and test images (--image_test_aug).
_NB_TARGETS = {**_RN50, "prior": {
    "name": "degradation_mean", "combine": "mean of the features of each degraded copy",
    "degradations": {"gaussian_blur": {"kernel": 15}, "gaussian_noise": {"mean": 0.0, "std": 25.0},
                     "low_resolution": {"scale": 0.1}, "mosaic": {"level": 5}},
    "apply_to": ["training", "test"]}}
# train.py --projector linear --feature_dim 512: module/projector.py ProjectorLinear, one trainable Linear(1024, 512)
# after the EEG encoder and another on the image features (524,800 parameters each); loss and retrieval in the 512-d
# space (FitConfig.projector). --eeg_aug --eeg_aug_type smooth --frozen_eeg_prior: module/eeg_augmentation.py
# RandomSmooth(kernel_size=5, smooth_prob=0.3), a moving average along time (window shrinking at the edges) of each
# channel with probability 0.3, applied once to the training EEG when module/dataset.py loads it (after averaging,
# channel selection and time window; numpy's global RNG, seeded by --seed); never to the test EEG (--eeg_test_aug
# off) (FitConfig.eeg_smoothing).
_NB_REQUIRES = {
    "projector": {"dim": 512},
    "eeg_smoothing": {"kernel": 5, "channel_probability": 0.3, "frozen": True},
    "learn_temperature": False,
    "normalize_embeddings": "image",
}
_NB_COMMON = {"epochs": 50, "batch_size": 1024, "lr": 1e-4, "weight_decay": 1e-4, "init_temperature": 0.07,
              "seed": 2025}
_NB_NOTES = (
    "Selection differs: train.py keeps the epoch of lowest loss on the *test* set and reports both that epoch's "
    "and the last epoch's accuracy; the paper does not say which its table gives. eegvision selects on held-out "
    "training concepts.",
    "The temperature is fixed at 0.07 in the authors' scripts (t_learnable off) and only the image side is "
    "L2-normalised (img_l2norm on, eeg_l2norm off): learn_temperature False, normalize_embeddings 'image'.",
    "The EEG and image projectors are two separate Linear(1024, 512) layers in the code (the paper calls the "
    "projection 'shared'): FitConfig.projector {'dim': 512}. Text features are not used (the scripts give none).",
    "The EEG smoothing's channels are drawn as the code draws them (numpy seeded by the seed, subject by subject, "
    "condition by condition), over all training conditions; eegvision then holds some concepts out for "
    "validation, which the code trains on.",
    "Weight decay: the code decays every parameter (AdamW 1e-4); eegvision leaves biases and norms undecayed.",
)

# SAMGA: code announced for after acceptance (LinJiang8/SAMGA README at d1ffb48); facts from the abstract / README
# as recorded in anchors.md.
_SAMGA_TARGETS = {"library": "InternViT (transformers)", "backbone": "InternViT-6B", "pretrained": "not stated",
                  "layers": [20, 24, 28, 32, 36], "pooling": "not stated", "normalize": None, "dim": None,
                  "prior": None}
# Each key is a FitConfig field and its value one that field accepts (preset_types.unmet_requirements):
#   target fusion: the five layers (primary = layer 20, --target = layers 24..36) fused by softmax weights whose
#     logits a subject-aware router offsets per subject in training only, subject-agnostic at inference, with
#     subject and layer dropout (eegvision.training.fusion); the two dropout rates are not published (0.1 assumed);
#   subject router (training only): the adapter mixture routed by the subject id (models/encoders/routed.py),
#     evaluation taking the average route; its form is ours;
#   mmd: coarse stage of MMD between the EEG embeddings and their image targets, then InfoNCE (FitConfig.mmd_epochs;
#     the number of coarse epochs is not published: 5 of the default 40 assumed).
_SAMGA_REQUIRES = {
    "target_mode": "learned",
    "fusion_subject_dropout": 0.1,
    "fusion_layer_dropout": 0.1,
    "subject_router": "gate",
    "mmd_epochs": 5,
}
_SAMGA_INPUTS = {"targets": "FILE (repeat for each layer): the InternViT-6B training features of blocks 24, 28, 32 and "
                 "36 (block 20 is --features-train/--features-test), one width for all, extracted as "
                 "`targets` describes"}
_SAMGA_NOTES = (
    "The code is not released (LinJiang8/SAMGA holds a README only); the EEG encoder, epochs, batch, optimiser "
    "and selection rule are not public. The preset's encoder (eegproject, the encoder of Shallow Alignment whose "
    "intermediate-layer targets SAMGA extends) is an assumption, and so are averaged training trials.",
    "The forms of the subject-aware layer weights (shared softmax logits plus a per-subject offset, target_mode "
    "'learned') and of the training-only router (subject_router 'gate': adapters on the embedding) are ours; SAMGA "
    "may use one router for both. Subject and layer dropout rates (0.1 each) are assumptions. Within-subject (one "
    "training subject) the router's average route is that subject's, so its adapters also act at evaluation (as "
    "one residual linear map); the layer weights there are still the shared ones.",
    "Coarse-to-fine: the sources say 'coarse MMD, then fine InfoNCE' without the pair of distributions or the "
    "schedule. mmd_epochs trains the first 5 epochs (an assumption) on the multi-kernel MMD between the batch's "
    "L2-normalised EEG embeddings and their (fused) image targets instead of InfoNCE, then switches to InfoNCE (a "
    "hard switch, no overlap). An MMD between subjects (subject_mmd_weight) is not set.",
)

_SVTL_TARGETS = {"library": "perception_models", "backbone": "PE-Core-G14-448", "pretrained": "facebook",
                 "layers": [20, 24, 28, 32, 36], "pooling": "tokens: one token file of the spatial patch tokens of "
                 "the five layers (`eegvision features ... --pooling tokens --layers 20,24,28,32,36 --token-grid G`; "
                 "the grid is eegvision's, to fit in memory), turned into views by the trainable multi-view module",
                 "normalize": None, "dim": 1536, "prior": None}
_SVTL_REQUIRES = {
    # 12 learnable queries, multi-head cross-attention over the layer-normalised patch tokens; block
    # attention-residual routing (within 4 blocks of 3 views, then across blocks): FitConfig.multi_view_target
    # (eegvision.models.multi_view; its head count, 8, and the routing's scoring are eegvision's assumptions).
    "multi_view_target": {"views": 12, "blocks": 4, "routing_temperature": 0.7},
    # EEG 1024 -> 512 and image views -> 512 (FitConfig.projector: the multi-view module's output layer is the image
    # side); frozen in stage II (see stages).
    "projector": {"dim": 512},
    # stage I: contrastive + MMD between source subjects' EEG embeddings, its weight decaying linearly 0.9 -> 0.5
    # over the stage's epochs; stage II: contrastive only, projection layers frozen.
    "stages": [{"epochs": 20, "lr": 1e-4, "subject_mmd_weight": [0.9, 0.5]},
               {"epochs": 30, "lr": 5e-5, "subject_mmd_weight": 0.0, "freeze": ["projector"]}],
}
_SVTL_NOTES = (
    "Code not released; the recipe comes from the paper as summarised in a third-party reading note of arXiv "
    "2609.36971v1 ([S]: TSConv encoder 1024 -> 512, batch 1024, seed 2025, two stages 20 + 30 epochs). The "
    "inductive number is the paper's Table 1 (anchors.md §7, [P]).",
    "Its 'representation refinement' (48.1 / 77.1) is transductive (moment matching, CSLS pseudo-pairs and an "
    "orthogonal map fitted on the unseen subject's unlabelled test embeddings); the preset targets the inductive "
    "35.3 / 65.6 only.",
    "Averaged training trials and weight decay 1e-4 are assumed from the NeuroBridge code base the recipe resembles.",
    "The MMD weight decays per epoch (constant within an epoch: 0.9 in the first epoch of stage I, 0.5 in its last); "
    "the summary does not say whether the paper decays it per step.",
    "The multi-view target (FitConfig.multi_view_target) follows the paper's description; the attention head count "
    "(8), the routing's learned linear scores with a mean residual, the per-layer token embedding and the token "
    "grid of the feature files are eegvision's choices (docs/presets.md). It trains on token files "
    "(--features-train/--features-test made with `eegvision features ... --pooling tokens`).",
)

_BH_TARGETS = {"library": "mixed", "backbone": "fused: synclr_vit_b_16 (768) + CLIP-ViT-B-32-laion2B-s34B-b79K (512) "
               "+ SDXL VAE latent (1024)", "pretrained": "see scripts/build_embeddings.sh",
               "layers": ["final"], "pooling": "each model's image embedding; the VAE latent flattened",
               "normalize": False, "dim": {"synclr_vit_b_16": 768, "CLIP-ViT-B-32-laion2B-s34B-b79K": 512,
                                           "vae": 1024}, "prior": None}
# Each key is a FitConfig field and its value one that field accepts (preset_types.unmet_requirements):
#   fusion_encoder: the trainable image side of main/layers.py FusionEncoder as main/models_clip.py builds it
#     (hidden_size = intermediate_size = 1024, num_layers=1, dropout 0.1 of configs/train_clip.yaml): one
#     Linear(width, 1024) per vision model of proj_meta, summed, then one residual layer
#     LayerNorm(W2 dropout(gelu(W1 x)) + x) with bias-free W1, W2 (1024 x 1024); retrieval in its 1024-d output,
#     the EEG encoder's output size. Its inputs are --features-train/-test (synclr_vit_b_16, 768) and the --target
#     files (CLIP ViT-B/32 512, the flattened VAE latent 1024), in proj_meta's order (the sum does not depend on it).
_BH_REQUIRES = {"fusion_encoder": {"hidden": 1024, "blocks": 1, "dropout": 0.1}}
_BH_INPUTS = {"targets": "FILE (repeat): the training features of CLIP-ViT-B-32-laion2B-s34B-b79K (512-d) and of the "
              "SDXL VAE latent flattened (1024-d), with their test files next to them; --features-train/-test are "
              "synclr_vit_b_16's (768-d); unnormalised, as `targets` describes"}

PUBLISHED_PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset(
        "ubp",
        "UBP (uncertainty-aware blur prior): EEGProject on 17 occipito-parietal channels, averaged training trials, "
        "RN50 targets of fovea-blurred images, batch 1024, AdamW 1e-4 (weight decay 1e-4), 50 epochs.",
        "OpenCLIP RN50 (openai), final layer, L2-normalised, of fovea-blurred images (kernel 45/51/57 per sample)",
        {"top1": 0.509, "top5": 0.797},
        f"UBP (Wu et al., CVPR 2025) Table 1, intra-subject, 10 subjects (anchors.md §1.1 [P]); recipe from {_UBP_REPO} "
        "configs/eeg/ubp.yaml, scripts/exp.sh, main.py.",
        {"encoder": "eegproject", "protocol": "within", **_RETRIEVAL_17, "epochs": 50, "batch_size": 1024,
         "lr": 1e-4, "weight_decay": 1e-4},
        targets=_UBP_TARGETS, requires=_UBP_REQUIRES, inputs=_UBP_INPUTS,
        protocol={**_PROTOCOL_17, "selection": "last epoch (early stopping on the training loss, patience 5)",
                  "seeds": [0], "preprocessing": _WHITENED},
        notes=_UBP_NOTES,
    ),
    Preset(
        "ubp-loso",
        "UBP inter-subject: as 'ubp' but trained on the other nine subjects (leave-one-subject-out), lr 1e-5.",
        "OpenCLIP RN50 (openai), final layer, L2-normalised, of fovea-blurred images (kernel 45/51/57 per sample)",
        {"top1": 0.124, "top5": 0.334},
        f"UBP CVPR 2025 Table 1, inter-subject (anchors.md §1.1 [P]); recipe from {_UBP_REPO} scripts/exp.sh.",
        {"encoder": "eegproject", "protocol": "loso", **_RETRIEVAL_17, "epochs": 50, "batch_size": 1024,
         "lr": 1e-5, "weight_decay": 1e-4},
        targets=_UBP_TARGETS, requires=_UBP_REQUIRES, inputs=_UBP_INPUTS,
        protocol={**_PROTOCOL_17, "selection": "early stopping on top-1 of the training subjects' test-image EEG "
                  "(patience 5); the checkpoint tested is the last saved", "seeds": [0],
                  "preprocessing": _WHITENED},
        notes=_UBP_NOTES,
    ),
    Preset(
        "neurobridge",
        "NeuroBridge: EEGProject on 17 occipito-parietal channels, averaged training trials, RN50 targets of "
        "'cognitive prior' degraded images (mean of blur, noise, low-resolution and mosaic features), EEG smoothing, "
        "linear projectors to 512-d, batch 1024, AdamW 1e-4, 50 epochs, fixed temperature 0.07.",
        "OpenCLIP RN50 (openai), final layer, L2-normalised, mean over 4 degraded copies of each image",
        {"top1": 0.632, "top5": 0.899},
        f"NeuroBridge (AAAI 2026, arXiv 2511.06836) abstract, intra-subject (anchors.md §1.1 [P]); recipe from "
        f"{_NB_REPO} scripts/things_eeg/intra-subjects.sh, train.py, extract_feature.py.",
        {"encoder": "eegproject", "protocol": "within", **_RETRIEVAL_17, **_NB_COMMON},
        targets=_NB_TARGETS, requires=_NB_REQUIRES,
        protocol={**_PROTOCOL_17, "selection": "lowest loss on the test set (train.py); last epoch also reported",
                  "seeds": [2025], "preprocessing": "THINGS-EEG2 raw, preprocess_eeg.py --mvnn, 250 samples"},
        notes=_NB_NOTES,
    ),
    Preset(
        "neurobridge-loso",
        "NeuroBridge inter-subject: TSConv (NICE's encoder) on all 63 channels, leave-one-subject-out, otherwise as "
        "'neurobridge'.",
        "OpenCLIP RN50 (openai), final layer, L2-normalised, mean over 4 degraded copies of each image",
        {"top1": 0.190, "top5": 0.459},
        f"Shallow Alignment (arXiv 2601.21948) Table 1 citing NeuroBridge inter-subject (anchors.md §1.1 [C]); recipe "
        f"from {_NB_REPO} scripts/things_eeg/inter-subjects.sh; 63 channels per feroooooo/NeuroBridge#1.",
        {"encoder": "nice", "protocol": "loso", "objective": "retrieval", "average_train": True, "channels": None,
         **_NB_COMMON},
        targets=_NB_TARGETS, requires=_NB_REQUIRES,
        protocol={**_PROTOCOL_63, "selection": "lowest loss on the held-out subject's test set (train.py)",
                  "seeds": [2025], "preprocessing": "THINGS-EEG2 raw, preprocess_eeg.py --mvnn, 250 samples"},
        notes=_NB_NOTES,
    ),
    Preset(
        "samga",
        "SAMGA: subject-aware multi-granularity alignment to InternViT-6B layers 20-36 (router in training only, "
        "coarse MMD then fine InfoNCE), 17 occipito-parietal channels, within-subject. Code unreleased.",
        "InternViT-6B intermediate layers 20/24/28/32/36, fused by subject-aware learned weights",
        {"top1": 0.913, "top5": 0.988},
        "SAMGA (arXiv 2604.17782) abstract and README, intra-subject (anchors.md §1.1 and §7 [P]); code not released "
        "(LinJiang8/SAMGA@d1ffb48 is a README).",
        {"encoder": "eegproject", "protocol": "within", **_RETRIEVAL_17},
        targets=_SAMGA_TARGETS, requires=_SAMGA_REQUIRES, inputs=_SAMGA_INPUTS,
        protocol={**_PROTOCOL_17, "selection": "not stated in the sources read", "seeds": None,
                  "preprocessing": "not stated"},
        notes=_SAMGA_NOTES,
    ),
    Preset(
        "samga-loso",
        "SAMGA inter-subject: as 'samga' on all 63 channels, leave-one-subject-out. Code unreleased.",
        "InternViT-6B intermediate layers 20/24/28/32/36, fused by subject-aware learned weights",
        {"top1": 0.344, "top5": 0.648},
        "SAMGA (arXiv 2604.17782) README, inter-subject (anchors.md §1.1 [P]); SVTL's re-run gives 0.296 / 0.568 "
        "(anchors.md §7).",
        {"encoder": "eegproject", "protocol": "loso", "objective": "retrieval", "average_train": True,
         "channels": None},
        targets=_SAMGA_TARGETS, requires=_SAMGA_REQUIRES, inputs=_SAMGA_INPUTS,
        protocol={**_PROTOCOL_63, "selection": "not stated in the sources read", "seeds": None,
                  "preprocessing": "not stated"},
        notes=_SAMGA_NOTES,
    ),
    Preset(
        "svtl",
        "SVTL (structured visual target learning), leave-one-subject-out, inductive: TSConv (NICE's encoder) on 63 "
        "channels against 12 routed views of PE-Core-G14 patch tokens (layers 20-36), MMD between source subjects, "
        "two stages (20 epochs lr 1e-4, then 30 epochs lr 5e-5), batch 1024. Code unreleased.",
        "PE-Core-G14-448 spatial patch tokens of layers 20/24/28/32/36, 12 learned views (trained with the encoder)",
        {"top1": 0.353, "top5": 0.656},
        "SVTL (arXiv 2609.36971) Table 1, LOSO, inductive (anchors.md §7 [P]); transductive with refinement 0.481 / "
        "0.771. Recipe from a third-party summary of the paper ([S]).",
        {"encoder": "nice", "protocol": "loso", "objective": "retrieval", "average_train": True, "channels": None,
         "batch_size": 1024, "weight_decay": 1e-4, "seed": 2025},  # epochs (50) and lr (1e-4) follow the stages
        targets=_SVTL_TARGETS, requires=_SVTL_REQUIRES,
        protocol={**_PROTOCOL_63, "selection": "not stated in the sources read", "seeds": [2025],
                  "preprocessing": "THINGS-EEG2, 63 channels, 250 Hz"},
        notes=_SVTL_NOTES,
    ),
    Preset(
        "brainhive",
        "BrainHiVE: BrainMLP on 17 occipito-parietal channels, averaged training trials, one fused target of several "
        "vision models (a trainable fusion encoder), batch 1024, AdamW 5e-4 (weight decay 0.05), cosine schedule, "
        "25 epochs, 3 seeds.",
        "Fused final-layer embeddings of synclr_vit_b_16, CLIP ViT-B/32 (laion2B) and the SDXL VAE latent",
        {"top1": 0.757, "top5": 0.946},
        f"BrainHiVE (ICLR 2026), intra-subject, as quoted by a third-party summary (anchors.md §7 [S]); recipe from "
        f"{_BH_REPO} configs/train_clip.yaml, scripts/train_clip_intra.sh, main/models_clip.py.",
        {"encoder": "brainmlp", "protocol": "within", **_RETRIEVAL_17, "epochs": 25, "batch_size": 1024,
         "lr": 5e-4, "weight_decay": 0.05, "schedule": "cosine", "init_temperature": 0.07, "seed": 2025},
        targets=_BH_TARGETS, requires=_BH_REQUIRES, inputs=_BH_INPUTS,
        protocol={**_PROTOCOL_17, "selection": "last epoch (load_best_model_at_end false); inter-subject: best top-1 "
                  "on the held-out subject's evaluation set", "seeds": [2025, 2026, 2027],
                  "preprocessing": _WHITENED},
        notes=("The intra-subject script names its run 'RN50+CLIP-ViT-B-32+vae' but its proj_meta lists synclr, "
               "CLIP ViT-B/32 and the VAE; the preset records proj_meta.",
               "AdamW betas (0.9, 0.995), gradient clipping at 1.0 and bf16 are not eegvision options; the preset "
               "trains with betas (0.9, 0.999), no clipping, float32.",
               "The fusion encoder (FitConfig.fusion_encoder) follows main/layers.py FusionEncoder exactly; its "
               "inputs are the three feature files as given (eegvision does not extract synclr or the SDXL VAE "
               "latent: make them with the code's build_embeddings.py and convert them to feature files).",
               "Inter-subject (0.200 / 0.441 [S]) selects the best epoch on the held-out subject's evaluation data, a "
               "test-set selection; no preset is given for it."),
    ),
)}
