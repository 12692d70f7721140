"""Seconds per training step of the real networks (G + D forward/backward + AdamW), synthetic batch.

    python -m bench.bench_train [--version v2] [--sample-rate 40k] [--batch 4] [--steps 3] [--device cpu]

Prints s/step (after one warm-up step) for the full-size synthesizer and discriminator of the chosen
variant (and the process CPU seconds per step, which read better on a shared machine), through the
same `train_step` the training loop uses (precision from the device: fp32 on
CPU, bf16/fp16 on CUDA). The reference RVC scripts take about 16 s a step for v2/40k at batch 4 on
the 2-core CPU machine of `../shared/reference/bench-cpu.md`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--version", default="v2")
    p.add_argument("--sample-rate", default="40k")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--frames", type=int, default=370, help="segment length in frames (3.7 s)")
    p.add_argument("--device", default=None)
    a = p.parse_args()

    from infer.lib.config import load_config
    from infer.lib.layout import ExperimentLayout
    from infer.modules.train.data import Batch
    from infer.modules.train.loop import _Trainer
    from infer.modules.train.train import TrainSettings

    cfg = load_config(a.version, a.sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        exp = ExperimentLayout(Path(tmp), a.version)
        exp.config_path.write_text(json.dumps(cfg.to_dict()))
        s = TrainSettings(
            exp_root=tmp, version=a.version, sample_rate=a.sample_rate, use_f0=True, name="bench", epochs=1,
            from_scratch=True, device=a.device, world_size=1,
        )  # fmt: skip
        tr = _Trainer(s, 0, 1, 0, None)
        tr.setup_models()
        b, t, hop = a.batch, a.frames, cfg.data.hop_length
        g = torch.Generator().manual_seed(0)
        batch = Batch(
            phone=torch.randn(b, t, cfg.content_dim, generator=g),
            phone_lengths=torch.full((b,), t),
            pitch=torch.randint(1, 255, (b, t), generator=g),
            pitchf=torch.rand(b, t, generator=g) * 200 + 100,
            spec=torch.rand(b, cfg.data.spec_channels, t, generator=g),
            spec_lengths=torch.full((b,), t),
            wave=torch.randn(b, 1, t * hop, generator=g) * 0.1,
            wave_lengths=torch.full((b,), t * hop),
            sid=torch.zeros(b, dtype=torch.long),
        ).to(tr.device)
        tr.train_step(batch)  # warm-up
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        c0 = time.process_time()
        for _ in range(a.steps):
            tr.train_step(batch)
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        per = (time.perf_counter() - t0) / a.steps
        cpu = (time.process_time() - c0) / a.steps
        print(
            f"train step {a.version}/{a.sample_rate} f0, batch {b} x {t} frames, {tr.precision.name} on {tr.device} "
            f"({torch.get_num_threads()} threads): {per:.2f} s/step wall, {cpu:.2f} CPU-s/step"
        )


if __name__ == "__main__":
    main()
