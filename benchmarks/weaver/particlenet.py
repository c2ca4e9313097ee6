"""weaver-core network file for benchmarks/physics_train.py: ParticleNet as configured on the torchsci side.

Runs inside the separate weaver benchmark venv; never imported by torchsci.
"""

import torch
from weaver.nn.model.ParticleNet import ParticleNet


class ParticleNetWrapper(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.mod = ParticleNet(**kwargs)

    def forward(self, points, features, mask):
        return self.mod(points, features, mask)


def get_model(data_config, **kwargs):
    # k=4 neighbours, EdgeConv blocks (32,32,32) and (64,64,64), head 128 with dropout 0.1; no fusion block
    model = ParticleNetWrapper(input_dims=len(data_config.input_dicts["pf_features"]),
                               num_classes=len(data_config.label_value),
                               conv_params=[(4, (32, 32, 32)), (4, (64, 64, 64))], fc_params=[(128, 0.1)],
                               use_fusion=False, use_fts_bn=True, use_counts=True)
    info = {"input_names": list(data_config.input_names),
            "input_shapes": {k: ((1,) + s[1:]) for k, s in data_config.input_shapes.items()},
            "output_names": ["softmax"],
            "dynamic_axes": {**{k: {0: "N", 2: "n_" + k.split("_")[0]} for k in data_config.input_names},
                             "softmax": {0: "N"}}}
    return model, info


def get_loss(data_config, **kwargs):
    return torch.nn.CrossEntropyLoss()
