"""The peers' side of ``neuro_segment.py``, run with the python of the benchmark venv that holds MONAI and deepbet.

MONAI and deepbet are never torchsci dependencies: they live in ``/root/bench-venvs/monai``, and
``neuro_segment.py`` launches this script there, one fresh process per run (so its peak RSS is that
of one segmentation, imports included). It is not meant to be run by hand.

``monai IMAGE_NPY NETWORK_PT OUT_NPY OUT_JSON ROI OVERLAP SW_BATCH THREADS`` runs MONAI's
``sliding_window_inference`` (Gaussian blending, ``sigma_scale`` 0.125, constant zero padding) with the
network ``UNet3D`` from this repository (imported from ``torchsci_neuro.models``, which needs torch only)
and the weights torchsci used, on the preprocessed tensor torchsci built, blending softmax
probabilities as torchsci does; it saves the ``(C, D, H, W)`` probabilities and the seconds of the call.

``deepbet SCAN MASK_OUT OUT_JSON THREADS`` runs deepbet's own ``run_bet`` on the scan file (CPU),
timing the whole call (model loading, reading, both networks, writing the mask).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def monai(image_npy: str, network_pt: str, out_npy: str, out_json: str, roi: str, overlap: str,
          sw_batch: str, threads: str) -> None:
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    from torchsci_neuro.models import UNet3D

    torch.set_num_threads(int(threads))
    saved = torch.load(network_pt, weights_only=True)
    network = UNet3D(**saved["kwargs"])
    network.load_state_dict(saved["state_dict"])
    network.eval()
    image = torch.from_numpy(np.load(image_npy))[None, None]
    start = time.perf_counter()
    with torch.inference_mode():
        probs = sliding_window_inference(
            image, roi_size=tuple(int(r) for r in roi.split(",")), sw_batch_size=int(sw_batch),
            predictor=lambda x: network(x).softmax(dim=1), overlap=float(overlap), mode="gaussian",
            sigma_scale=0.125, padding_mode="constant", cval=0.0)
    seconds = time.perf_counter() - start
    np.save(out_npy, probs[0].numpy())
    with open(out_json, "w") as fh:
        json.dump({"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}, fh)


def deepbet(scan: str, mask_out: str, out_json: str, threads: str) -> None:
    import torch
    from deepbet import run_bet

    torch.set_num_threads(int(threads))
    start = time.perf_counter()
    run_bet([scan], mask_paths=[mask_out], no_gpu=True)
    seconds = time.perf_counter() - start
    with open(out_json, "w") as fh:
        json.dump({"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}, fh)


if __name__ == "__main__":
    if sys.argv[1] == "monai":
        monai(*sys.argv[2:10])
    elif sys.argv[1] == "deepbet":
        deepbet(*sys.argv[2:6])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}: use 'monai' or 'deepbet'")
