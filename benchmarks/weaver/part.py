"""weaver-core network file for benchmarks/physics_train.py: the Particle Transformer sized as torchsci's physics/part.

torchsci's defaults: embedding to 64, 3 particle-attention blocks and 1 class-attention block with 4 heads
(MLP ratio 4), pair embedding 64-64-64 to one bias per head, head 64, no dropout. weaver's ParT keeps its own
details (input BatchNorm, LayerNorm + Linear + GELU embedding, its block layout). Runs inside the separate
weaver benchmark venv; never imported by torchsci.
"""

import torch
from weaver.nn.model.ParticleTransformer import ParticleTransformer


class ParticleTransformerWrapper(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.mod = ParticleTransformer(**kwargs)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {"mod.cls_token"}

    def forward(self, points, features, vectors, mask):
        return self.mod(features, v=vectors, mask=mask)


def get_model(data_config, **kwargs):
    no_dropout = dict(dropout=0.0, attn_dropout=0.0, activation_dropout=0.0)
    model = ParticleTransformerWrapper(input_dim=len(data_config.input_dicts["pf_features"]),
                                       num_classes=len(data_config.label_value), pair_input_dim=4,
                                       embed_dims=[64, 64], pair_embed_dims=[64, 64, 64], num_heads=4, num_layers=3,
                                       num_cls_layers=1, block_params=no_dropout, cls_block_params=no_dropout,
                                       fc_params=[(64, 0.0)], trim=False)
    info = {"input_names": list(data_config.input_names),
            "input_shapes": {k: ((1,) + s[1:]) for k, s in data_config.input_shapes.items()},
            "output_names": ["softmax"],
            "dynamic_axes": {**{k: {0: "N", 2: "n_" + k.split("_")[0]} for k in data_config.input_names},
                             "softmax": {0: "N"}}}
    return model, info


def get_loss(data_config, **kwargs):
    return torch.nn.CrossEntropyLoss()
