"""State-dict layouts of the ATM reference models, as key -> shape in the reference's own order.

Produced by building each reference class (torch only, other imports stubbed) in a scratch environment
outside the repository and listing ``model.state_dict()``:

* ``ATMS_KEYS``: ``ATMS()`` of ``ncclab-sustech/EEG_Image_decode`` ``Retrieval/ATMS_retrieval.py``, identical
  at commits 22c84ad and 61fc9c3 (3,202,413 parameters);
* ``ATMS50_KEYS``: ``ATMS_50()`` of ``Alljoined/EEG_Image_decode`` ``Retrieval/ATM_S_insubject_retrieval.py``
  at 3dd2d62 (3,246,741 parameters);
* ``NICE_KEYS`` and ``PROJECTOR_KEYS``: ``NICE()`` and ``Projector((63, 250))`` of
  ``Retrieval/contrast_retrieval.py`` at 61fc9c3 (2,630,913 and 3,425,460 parameters; the Projector's 32
  ``projector.*`` keys alias its stages);
* ``PRIOR_KEYS``: ``DiffusionPriorUNet(cond_dim=1024, dropout=0.1)`` of ``Generation/diffusion_prior.py`` at
  61fc9c3 (identical in the Alljoined fork; 9,675,648 parameters).

:func:`seeded_state` is the recipe that filled these layouts with values in the scratch runs whose outputs
``tests/test_reference_import.py`` compares against.
"""

import math

import torch

#: ATMS (channel-token iTransformer), 22c84ad and 61fc9c3.
ATMS_KEYS = {
    "logit_scale": (),
    "encoder.enc_embedding.mask_token": (1, 250),
    "encoder.enc_embedding.value_embedding.weight": (250, 250),
    "encoder.enc_embedding.value_embedding.bias": (250,),
    "encoder.enc_embedding.position_embedding.pe": (1, 5000, 250),
    "encoder.enc_embedding.temporal_embedding.embed.weight": (250, 4),
    "encoder.enc_embedding.subject_embedding.shared_embedding": (1, 250),
    "encoder.enc_embedding.subject_embedding.mask_embedding": (1, 250),
    "encoder.enc_embedding.subject_embedding.subject_embedding.weight": (10, 250),
    "encoder.encoder.attn_layers.0.attention.query_projection.weight": (248, 250),
    "encoder.encoder.attn_layers.0.attention.query_projection.bias": (248,),
    "encoder.encoder.attn_layers.0.attention.key_projection.weight": (248, 250),
    "encoder.encoder.attn_layers.0.attention.key_projection.bias": (248,),
    "encoder.encoder.attn_layers.0.attention.value_projection.weight": (248, 250),
    "encoder.encoder.attn_layers.0.attention.value_projection.bias": (248,),
    "encoder.encoder.attn_layers.0.attention.out_projection.weight": (250, 248),
    "encoder.encoder.attn_layers.0.attention.out_projection.bias": (250,),
    "encoder.encoder.attn_layers.0.conv1.weight": (256, 250, 1),
    "encoder.encoder.attn_layers.0.conv1.bias": (256,),
    "encoder.encoder.attn_layers.0.conv2.weight": (250, 256, 1),
    "encoder.encoder.attn_layers.0.conv2.bias": (250,),
    "encoder.encoder.attn_layers.0.norm1.weight": (250,),
    "encoder.encoder.attn_layers.0.norm1.bias": (250,),
    "encoder.encoder.attn_layers.0.norm2.weight": (250,),
    "encoder.encoder.attn_layers.0.norm2.bias": (250,),
    "encoder.encoder.norm.weight": (250,),
    "encoder.encoder.norm.bias": (250,),
    "subject_wise_linear.0.weight": (250, 250),
    "subject_wise_linear.0.bias": (250,),
    "subject_wise_linear.1.weight": (250, 250),
    "subject_wise_linear.1.bias": (250,),
    "enc_eeg.0.tsconv.0.weight": (40, 1, 1, 25),
    "enc_eeg.0.tsconv.0.bias": (40,),
    "enc_eeg.0.tsconv.2.weight": (40,),
    "enc_eeg.0.tsconv.2.bias": (40,),
    "enc_eeg.0.tsconv.2.running_mean": (40,),
    "enc_eeg.0.tsconv.2.running_var": (40,),
    "enc_eeg.0.tsconv.2.num_batches_tracked": (),
    "enc_eeg.0.tsconv.4.weight": (40, 40, 63, 1),
    "enc_eeg.0.tsconv.4.bias": (40,),
    "enc_eeg.0.tsconv.5.weight": (40,),
    "enc_eeg.0.tsconv.5.bias": (40,),
    "enc_eeg.0.tsconv.5.running_mean": (40,),
    "enc_eeg.0.tsconv.5.running_var": (40,),
    "enc_eeg.0.tsconv.5.num_batches_tracked": (),
    "enc_eeg.0.projection.0.weight": (40, 40, 1, 1),
    "enc_eeg.0.projection.0.bias": (40,),
    "proj_eeg.0.weight": (1024, 1440),
    "proj_eeg.0.bias": (1024,),
    "proj_eeg.1.fn.1.weight": (1024, 1024),
    "proj_eeg.1.fn.1.bias": (1024,),
    "proj_eeg.2.weight": (1024,),
    "proj_eeg.2.bias": (1024,),
}

#: ATMS_50 (temporal attention), Alljoined 3dd2d62.
ATMS50_KEYS = {
    "logit_scale": (),
    "attention_model.pos_encoder.pe": (5000, 63),
    "attention_model.encoder_layer.self_attn.in_proj_weight": (189, 63),
    "attention_model.encoder_layer.self_attn.in_proj_bias": (189,),
    "attention_model.encoder_layer.self_attn.out_proj.weight": (63, 63),
    "attention_model.encoder_layer.self_attn.out_proj.bias": (63,),
    "attention_model.encoder_layer.linear1.weight": (2048, 63),
    "attention_model.encoder_layer.linear1.bias": (2048,),
    "attention_model.encoder_layer.linear2.weight": (63, 2048),
    "attention_model.encoder_layer.linear2.bias": (63,),
    "attention_model.encoder_layer.norm1.weight": (63,),
    "attention_model.encoder_layer.norm1.bias": (63,),
    "attention_model.encoder_layer.norm2.weight": (63,),
    "attention_model.encoder_layer.norm2.bias": (63,),
    "attention_model.transformer_encoder.layers.0.self_attn.in_proj_weight": (189, 63),
    "attention_model.transformer_encoder.layers.0.self_attn.in_proj_bias": (189,),
    "attention_model.transformer_encoder.layers.0.self_attn.out_proj.weight": (63, 63),
    "attention_model.transformer_encoder.layers.0.self_attn.out_proj.bias": (63,),
    "attention_model.transformer_encoder.layers.0.linear1.weight": (2048, 63),
    "attention_model.transformer_encoder.layers.0.linear1.bias": (2048,),
    "attention_model.transformer_encoder.layers.0.linear2.weight": (63, 2048),
    "attention_model.transformer_encoder.layers.0.linear2.bias": (63,),
    "attention_model.transformer_encoder.layers.0.norm1.weight": (63,),
    "attention_model.transformer_encoder.layers.0.norm1.bias": (63,),
    "attention_model.transformer_encoder.layers.0.norm2.weight": (63,),
    "attention_model.transformer_encoder.layers.0.norm2.bias": (63,),
    "subject_wise_linear.0.weight": (250, 250),
    "subject_wise_linear.0.bias": (250,),
    "enc_eeg.0.tsconv.0.weight": (40, 1, 1, 25),
    "enc_eeg.0.tsconv.0.bias": (40,),
    "enc_eeg.0.tsconv.2.weight": (40,),
    "enc_eeg.0.tsconv.2.bias": (40,),
    "enc_eeg.0.tsconv.2.running_mean": (40,),
    "enc_eeg.0.tsconv.2.running_var": (40,),
    "enc_eeg.0.tsconv.2.num_batches_tracked": (),
    "enc_eeg.0.tsconv.4.weight": (40, 40, 63, 1),
    "enc_eeg.0.tsconv.4.bias": (40,),
    "enc_eeg.0.tsconv.5.weight": (40,),
    "enc_eeg.0.tsconv.5.bias": (40,),
    "enc_eeg.0.tsconv.5.running_mean": (40,),
    "enc_eeg.0.tsconv.5.running_var": (40,),
    "enc_eeg.0.tsconv.5.num_batches_tracked": (),
    "enc_eeg.0.projection.0.weight": (40, 40, 1, 1),
    "enc_eeg.0.projection.0.bias": (40,),
    "proj_eeg.0.weight": (1024, 1440),
    "proj_eeg.0.bias": (1024,),
    "proj_eeg.1.fn.1.weight": (1024, 1024),
    "proj_eeg.1.fn.1.bias": (1024,),
    "proj_eeg.2.weight": (1024,),
    "proj_eeg.2.bias": (1024,),
}

#: NICE, contrast_retrieval.py at 61fc9c3.
NICE_KEYS = {
    "logit_scale": (),
    "enc_eeg.0.tsconv.0.weight": (40, 1, 1, 25),
    "enc_eeg.0.tsconv.0.bias": (40,),
    "enc_eeg.0.tsconv.2.weight": (40,),
    "enc_eeg.0.tsconv.2.bias": (40,),
    "enc_eeg.0.tsconv.2.running_mean": (40,),
    "enc_eeg.0.tsconv.2.running_var": (40,),
    "enc_eeg.0.tsconv.2.num_batches_tracked": (),
    "enc_eeg.0.tsconv.4.weight": (40, 40, 63, 1),
    "enc_eeg.0.tsconv.4.bias": (40,),
    "enc_eeg.0.tsconv.5.weight": (40,),
    "enc_eeg.0.tsconv.5.bias": (40,),
    "enc_eeg.0.tsconv.5.running_mean": (40,),
    "enc_eeg.0.tsconv.5.running_var": (40,),
    "enc_eeg.0.tsconv.5.num_batches_tracked": (),
    "enc_eeg.0.projection.0.weight": (40, 40, 1, 1),
    "enc_eeg.0.projection.0.bias": (40,),
    "proj_eeg.0.weight": (1024, 1440),
    "proj_eeg.0.bias": (1024,),
    "proj_eeg.1.fn.1.weight": (1024, 1024),
    "proj_eeg.1.fn.1.bias": (1024,),
    "proj_eeg.2.weight": (1024,),
    "proj_eeg.2.bias": (1024,),
}

#: Projector((63, 250)), contrast_retrieval.py at 61fc9c3.
PROJECTOR_KEYS = {
    "logit_scale": (),
    "input_layer.0.weight": (250,),
    "input_layer.0.bias": (250,),
    "input_layer.1.weight": (1024, 250),
    "input_layer.1.bias": (1024,),
    "input_layer.5.weight": (63,),
    "input_layer.5.bias": (63,),
    "input_layer.6.weight": (64, 63),
    "input_layer.6.bias": (64,),
    "output_layer.0.weight": (1024,),
    "output_layer.0.bias": (1024,),
    "output_layer.1.weight": (1024, 1024),
    "output_layer.1.bias": (1024,),
    "output_layer.5.weight": (64,),
    "output_layer.5.bias": (64,),
    "output_layer.6.weight": (1, 64),
    "output_layer.6.bias": (1,),
    "blocks.0.0.weight": (1024,),
    "blocks.0.0.bias": (1024,),
    "blocks.0.1.weight": (1024, 1024),
    "blocks.0.1.bias": (1024,),
    "blocks.0.5.weight": (64,),
    "blocks.0.5.bias": (64,),
    "blocks.0.6.weight": (64, 64),
    "blocks.0.6.bias": (64,),
    "blocks.1.0.weight": (1024,),
    "blocks.1.0.bias": (1024,),
    "blocks.1.1.weight": (1024, 1024),
    "blocks.1.1.bias": (1024,),
    "blocks.1.5.weight": (64,),
    "blocks.1.5.bias": (64,),
    "blocks.1.6.weight": (64, 64),
    "blocks.1.6.bias": (64,),
    "projector.0.0.weight": (250,),
    "projector.0.0.bias": (250,),
    "projector.0.1.weight": (1024, 250),
    "projector.0.1.bias": (1024,),
    "projector.0.5.weight": (63,),
    "projector.0.5.bias": (63,),
    "projector.0.6.weight": (64, 63),
    "projector.0.6.bias": (64,),
    "projector.1.0.0.weight": (1024,),
    "projector.1.0.0.bias": (1024,),
    "projector.1.0.1.weight": (1024, 1024),
    "projector.1.0.1.bias": (1024,),
    "projector.1.0.5.weight": (64,),
    "projector.1.0.5.bias": (64,),
    "projector.1.0.6.weight": (64, 64),
    "projector.1.0.6.bias": (64,),
    "projector.1.1.0.weight": (1024,),
    "projector.1.1.0.bias": (1024,),
    "projector.1.1.1.weight": (1024, 1024),
    "projector.1.1.1.bias": (1024,),
    "projector.1.1.5.weight": (64,),
    "projector.1.1.5.bias": (64,),
    "projector.1.1.6.weight": (64, 64),
    "projector.1.1.6.bias": (64,),
    "projector.2.0.weight": (1024,),
    "projector.2.0.bias": (1024,),
    "projector.2.1.weight": (1024, 1024),
    "projector.2.1.bias": (1024,),
    "projector.2.5.weight": (64,),
    "projector.2.5.bias": (64,),
    "projector.2.6.weight": (1, 64),
    "projector.2.6.bias": (1,),
}

#: DiffusionPriorUNet(cond_dim=1024, dropout=0.1), diffusion_prior.py at 61fc9c3.
PRIOR_KEYS = {
    "input_layer.0.weight": (1024, 1024),
    "input_layer.0.bias": (1024,),
    "input_layer.1.weight": (1024,),
    "input_layer.1.bias": (1024,),
    "encode_time_embedding.0.linear_1.weight": (1024, 512),
    "encode_time_embedding.0.linear_1.bias": (1024,),
    "encode_time_embedding.0.linear_2.weight": (1024, 1024),
    "encode_time_embedding.0.linear_2.bias": (1024,),
    "encode_time_embedding.1.linear_1.weight": (512, 512),
    "encode_time_embedding.1.linear_1.bias": (512,),
    "encode_time_embedding.1.linear_2.weight": (512, 512),
    "encode_time_embedding.1.linear_2.bias": (512,),
    "encode_time_embedding.2.linear_1.weight": (256, 512),
    "encode_time_embedding.2.linear_1.bias": (256,),
    "encode_time_embedding.2.linear_2.weight": (256, 256),
    "encode_time_embedding.2.linear_2.bias": (256,),
    "encode_time_embedding.3.linear_1.weight": (128, 512),
    "encode_time_embedding.3.linear_1.bias": (128,),
    "encode_time_embedding.3.linear_2.weight": (128, 128),
    "encode_time_embedding.3.linear_2.bias": (128,),
    "encode_cond_embedding.0.weight": (1024, 1024),
    "encode_cond_embedding.0.bias": (1024,),
    "encode_cond_embedding.1.weight": (512, 1024),
    "encode_cond_embedding.1.bias": (512,),
    "encode_cond_embedding.2.weight": (256, 1024),
    "encode_cond_embedding.2.bias": (256,),
    "encode_cond_embedding.3.weight": (128, 1024),
    "encode_cond_embedding.3.bias": (128,),
    "encode_layers.0.0.weight": (512, 1024),
    "encode_layers.0.0.bias": (512,),
    "encode_layers.0.1.weight": (512,),
    "encode_layers.0.1.bias": (512,),
    "encode_layers.1.0.weight": (256, 512),
    "encode_layers.1.0.bias": (256,),
    "encode_layers.1.1.weight": (256,),
    "encode_layers.1.1.bias": (256,),
    "encode_layers.2.0.weight": (128, 256),
    "encode_layers.2.0.bias": (128,),
    "encode_layers.2.1.weight": (128,),
    "encode_layers.2.1.bias": (128,),
    "encode_layers.3.0.weight": (64, 128),
    "encode_layers.3.0.bias": (64,),
    "encode_layers.3.1.weight": (64,),
    "encode_layers.3.1.bias": (64,),
    "decode_time_embedding.0.linear_1.weight": (64, 512),
    "decode_time_embedding.0.linear_1.bias": (64,),
    "decode_time_embedding.0.linear_2.weight": (64, 64),
    "decode_time_embedding.0.linear_2.bias": (64,),
    "decode_time_embedding.1.linear_1.weight": (128, 512),
    "decode_time_embedding.1.linear_1.bias": (128,),
    "decode_time_embedding.1.linear_2.weight": (128, 128),
    "decode_time_embedding.1.linear_2.bias": (128,),
    "decode_time_embedding.2.linear_1.weight": (256, 512),
    "decode_time_embedding.2.linear_1.bias": (256,),
    "decode_time_embedding.2.linear_2.weight": (256, 256),
    "decode_time_embedding.2.linear_2.bias": (256,),
    "decode_time_embedding.3.linear_1.weight": (512, 512),
    "decode_time_embedding.3.linear_1.bias": (512,),
    "decode_time_embedding.3.linear_2.weight": (512, 512),
    "decode_time_embedding.3.linear_2.bias": (512,),
    "decode_cond_embedding.0.weight": (64, 1024),
    "decode_cond_embedding.0.bias": (64,),
    "decode_cond_embedding.1.weight": (128, 1024),
    "decode_cond_embedding.1.bias": (128,),
    "decode_cond_embedding.2.weight": (256, 1024),
    "decode_cond_embedding.2.bias": (256,),
    "decode_cond_embedding.3.weight": (512, 1024),
    "decode_cond_embedding.3.bias": (512,),
    "decode_layers.0.0.weight": (128, 64),
    "decode_layers.0.0.bias": (128,),
    "decode_layers.0.1.weight": (128,),
    "decode_layers.0.1.bias": (128,),
    "decode_layers.1.0.weight": (256, 128),
    "decode_layers.1.0.bias": (256,),
    "decode_layers.1.1.weight": (256,),
    "decode_layers.1.1.bias": (256,),
    "decode_layers.2.0.weight": (512, 256),
    "decode_layers.2.0.bias": (512,),
    "decode_layers.2.1.weight": (512,),
    "decode_layers.2.1.bias": (512,),
    "decode_layers.3.0.weight": (1024, 512),
    "decode_layers.3.0.bias": (1024,),
    "decode_layers.3.1.weight": (1024,),
    "decode_layers.3.1.bias": (1024,),
    "output_layer.weight": (1024, 1024),
    "output_layer.bias": (1024,),
}


def sinusoid_rows(n: int, d: int) -> torch.Tensor:
    """Sinusoidal table from the formula, element by element in float64 (the ``pe`` filled into the states)."""
    pe = torch.zeros(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(0, d, 2):
            angle = pos / (10000 ** (i / d))
            pe[pos, i] = math.sin(angle)
            if i + 1 < d:
                pe[pos, i + 1] = math.cos(angle)
    return pe.float()


def seeded_state(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Values for a layout from one generator, keys in the given order.

    Weights of 2 or more axes ~ N(0, 1 / fan_in); 1-axis ``weight`` (norm gains) 1 + N(0, 0.01); other
    1-axis and scalar tensors N(0, 0.01); BatchNorm ``running_var`` U(0.5, 1.5) and ``num_batches_tracked``
    0. ``pe`` buffers draw nothing and are set by the caller (None here).
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith(".pe"):
            out[key] = None
        elif len(shape) >= 2:
            out[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            out[key] = 1.0 + torch.randn(shape, generator=g) * 0.1
        else:
            out[key] = torch.randn(shape, generator=g) * 0.1
    return out
