"""The LWGAN training loop: one reference iteration per step (geometry, G step, gated D step), with
TTUR optimisers and per-epoch decay, a divergence guard, resumable checkpoints, eval and sample grids.

Composes lwgan.body / render / data / models; imports neither Ray nor MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable

import torch

from lwgan.config import ConfigError, RunConfig, TrainConfig
from lwgan import vocab
from lwgan.errors import LossDivergedError
from lwgan.transfer import to_device
from lwgan.train.callbacks import CallbackList, TrainResult
from lwgan.train.checkpoint import capture_rng_state, load_latest_checkpoint, restore_rng_state, save_checkpoint
from lwgan.train.determinism import resolve_device, seed_everything
from lwgan.train.graphs import CallSites, resolve_cuda_graphs
from lwgan.train.guard import check_losses
from lwgan.train.image_metrics import psnr, ssim
from lwgan.train.metrics_log import MetricsWriter, read_metrics
from lwgan.train.pair_stream import PairStream, batches, stack_items
from lwgan.train.precision import resolve_precision, use_channels_last
from lwgan.train.progress import Progress
from lwgan.models.layers import count_parameters
from lwgan.train.run_info import git_commit, package_versions, write_config_yaml
from lwgan.train.samples import COLUMNS, FINAL_OUTPUTS, save_grid, save_outputs
from lwgan.train.schedule import iters_per_epoch, lr_at, set_lr, total_steps

CHECKPOINT_FORMAT = 1
EVAL_PAIR_SEED = 0  # fixed val pairs are the same for every run and seed

# Keys that may change when a run is resumed (length, cadence, device); everything else is the method.
RESUME_FREE_KEYS = frozenset(f.name for f in dataclasses.fields(RunConfig)) - {"seed"} | {"num_workers"}


def checkpoint_path(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints" / "last.pt"


def sample_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / "samples" / f"step_{step:06d}.png"


def grad_norm_tensor(module: torch.nn.Module) -> torch.Tensor | float:
    """Total L2 norm of the gradients of ``module`` (0.0 when none) as a device scalar: per-parameter
    norms in one multi-tensor call (one kernel launch per ~hundred tensors on CUDA, not one per parameter)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch._foreach_norm([g.float() if g.dtype != torch.float32 else g for g in grads])
    return torch.linalg.vector_norm(torch.stack(norms))


def _torch_at_least(major: int, minor: int) -> bool:
    parts = torch.__version__.split("+")[0].split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def _to_device(obj: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a tensor, or the tensor fields of a dataclass, to ``device``; on request NCHW float
    tensors become channels_last (the flow (B,H,W,2) is a sampling grid, not an image: left as is)."""
    if torch.is_tensor(obj):
        obj = to_device(obj, device)
        if channels_last and obj.dim() == 4 and obj.is_floating_point():
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if dataclasses.is_dataclass(obj):
        return dataclasses.replace(
            obj,
            **{f.name: _to_device(getattr(obj, f.name), device, channels_last and f.name != "flow") for f in dataclasses.fields(obj)},
        )
    return obj


class Trainer:
    """One LWGAN training run in ``out_dir``; resumes from ``out_dir/checkpoints/last.pt`` when it exists.

    ``profile`` (optional) is only recorded in ``run_info.json``. ``graph_maker`` replaces
    ``torch.cuda.make_graphed_callables`` and turns the call sites on whatever the device (how the
    tests run lwgan.train.graphs' logic on the CPU).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        out_dir: str | Path,
        callbacks: Iterable[Any] = (),
        progress: bool = True,
        profile: str | None = None,
        progress_stream=None,
        graph_maker=None,
    ):
        self.cfg = cfg
        self.out_dir = Path(out_dir).expanduser().resolve()
        self.callbacks = CallbackList(callbacks)
        self.show_progress = progress
        self.progress_stream = progress_stream
        self.checkpoint_fallback: str | None = None  # set by _resume when last.pt was unreadable
        self.profile = profile
        self.info: dict[str, Any] | None = None
        self.graph_maker = graph_maker

    # ------------------------------------------------------------------ building
    def prepare(self) -> dict[str, Any]:
        """Build data, geometry, networks, objective and optimisers (once); returns the run info."""
        if self.info is not None:
            return self.info
        from lwgan.body import load_body_model
        from lwgan.data import IPERDataset, ensure_synthetic_dataset
        from lwgan.models import Discriminator, Generator, build_sphereface, build_vgg19
        from lwgan.models.objective import Objective
        from lwgan.render import CorrespondenceCache, GeometryBuilder, shared_folder

        cfg = self.cfg
        if cfg.run.num_threads:
            torch.set_num_threads(cfg.run.num_threads)
        self.device = resolve_device(cfg.run.device)
        self.precision = resolve_precision(cfg.run.precision, self.device)
        self.channels_last = use_channels_last(cfg.run.channels_last, self.precision)
        graphs_on, graphs_reason = resolve_cuda_graphs(cfg.run.cuda_graphs, self.device)
        if self.graph_maker is not None:
            graphs_on, graphs_reason = True, "a replacement for make_graphed_callables (tests)"
        if graphs_on and self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # graphs replay on the current device's stream
        seed_everything(cfg.run.seed)

        size = cfg.model.image_size
        if cfg.data.data_root:
            root, data_kind = Path(cfg.data.data_root).expanduser().resolve(), "iper"
        else:
            root, data_kind = Path(ensure_synthetic_dataset(cfg.data)), "synthetic"
        self.train_set = IPERDataset(root, "train", size, cfg.data.source_frames, seed=cfg.run.seed)
        if (root / "val.txt").is_file():
            val_set, eval_split = IPERDataset(root, "val", size, cfg.data.source_frames, seed=cfg.run.seed), "val"
        else:  # a dataset without a val split: eval on fixed train pairs, recorded in run_info
            val_set, eval_split = self.train_set, "train"
        self.stream = PairStream(self.train_set, cfg.run.seed)
        self.epoch_len = iters_per_epoch(cfg.data.iters_per_epoch, len(self.train_set), cfg.data.batch_size)
        self.total_steps = total_steps(cfg.run.max_steps, cfg.total_epochs, self.epoch_len)

        self.body = load_body_model(cfg.data.body_model).to(self.device)  # geometry runs where the body is
        shared = cfg.run.correspondence_cache_dir
        self.geometry = GeometryBuilder(self.body, size, cache=CorrespondenceCache(
            shared_folder(shared, self.body, size, self.device) if shared else None))

        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.G = Generator(cfg.model, spectral_norm=cfg.stabilizers.spectral_norm_G).to(self.device, memory_format=fmt)
        self.D = Discriminator(cfg.model, spectral_norm=cfg.stabilizers.spectral_norm).to(self.device, memory_format=fmt)
        vgg, vgg_status = build_vgg19(cfg.backbones.vgg_weights)
        face, face_status = build_sphereface(cfg.backbones.face_weights, crop=cfg.model.face_crop)
        # Frozen backbones live in the autocast dtype (bf16 under bf16): autocast re-casts only weights
        # that need no grad on every call, so fp32 copies would cost a cast of VGG19 per forward.
        self.vgg = vgg.to(self.device, dtype=self.precision.backbone_dtype, memory_format=fmt)
        self.face = face.to(self.device, dtype=self.precision.backbone_dtype, memory_format=fmt)
        # With CUDA graphs each network call of the step is a site, replayed as a graph from the second step on.
        self.graphs = CallSites(self.G, self.D, self.vgg, self.face) if graphs_on else None
        self.objective = Objective(cfg, self.G, self.D, self.vgg, self.face, target_cache_bytes=cfg.run.target_cache_mb << 20,
                                   target_cache_dir=cfg.run.target_cache_dir,
                                   calls=self.graphs.calls if self.graphs is not None else None)
        betas = (cfg.optim.beta1, cfg.optim.beta2)
        # The fused kernel: the same Adam update in one pass over each parameter (about 10 ms of a
        # 440 ms small-profile step on the CPU, BENCHMARKS.md); on CUDA, and on the CPU from torch 2.4.
        fused = self.device.type == "cuda" or (self.device.type == "cpu" and _torch_at_least(2, 4))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.optim.lr_G, betas=betas, fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.optim.lr_D, betas=betas, fused=fused)

        # Quality metrics comparable with the literature, only from the user's weights (else absent).
        from lwgan.quality import build_inception, build_lpips

        lpips, lpips_status = build_lpips(cfg.backbones.lpips_backbone, cfg.backbones.lpips_net, cfg.backbones.lpips_weights)
        self.lpips = lpips.to(self.device) if lpips is not None else None
        inception, inception_status = build_inception(cfg.backbones.inception_weights)
        self.inception = inception.to(self.device) if inception is not None else None
        self.fid_set = val_set  # its fid_pairs fixed pairs are loaded at the last step only (not held in memory)
        fid_note = inception_status.note if inception is None else f"{inception_status.note}; {cfg.run.fid_pairs} {eval_split} pairs, last step"

        self.eval_batch = stack_items(val_set.fixed_pairs(cfg.run.eval_pairs, seed=EVAL_PAIR_SEED))
        self.eval_geom = None  # built on first use

        self.info = {
            "config": cfg.to_flat(),
            "profile": self.profile,
            "seed": cfg.run.seed,
            "device": str(self.device),
            "precision": self.precision.name,
            "precision_reason": self.precision.reason,
            "channels_last": self.channels_last,
            "cuda_graphs": graphs_on,
            "cuda_graphs_reason": graphs_reason,
            "dataset": {"kind": data_kind, "path": str(root), "train_pairs_per_pass": len(self.train_set), "eval_split": eval_split},
            "body_model": {"kind": self.body.kind, "path": str(self.body.source)},
            "backbones": [dataclasses.asdict(s) for s in (vgg_status, face_status, lpips_status, inception_status)],
            "quality_metrics": {vocab.EVAL_LPIPS: lpips_status.note, vocab.EVAL_FID: fid_note, vocab.EVAL_KID: fid_note},
            "iters_per_epoch": self.epoch_len,
            "total_steps": self.total_steps,
            "versions": package_versions(),
            "git_commit": git_commit(),
            "parameters": {"G": count_parameters(self.G), "D": count_parameters(self.D)},
            "out_dir": str(self.out_dir),
        }
        return self.info

    # ------------------------------------------------------------------ pieces of a step
    def _autocast(self):
        # CUDA graphs need autocast's weight-cast cache off (each use casts again: same values)
        return self.precision.autocast(cache=self.graphs is None)

    @torch.no_grad()
    def _pair_geometry(self, batch: dict[str, Any]):
        """Correspondences, flow, cond maps and masks of a batch of pairs; no gradients (as the reference).

        Frames are rendered one at a time: a batched render differs from a single-frame one in the last
        bits (up to ~1e-3 in the cond map), so rendering in batch order would make the geometry depend
        on which frames happened to share a batch, and a resumed run (empty cache) would drift from an
        uninterrupted one.
        """
        src = self.geometry.frames(batch["src_smpl"], list(batch["src_key"]), one_at_a_time=True)
        tgt = self.geometry.frames(batch["tgt_smpl"], list(batch["tgt_key"]), one_at_a_time=True)
        return _to_device(self.geometry.pair(src, tgt), self.device, self.channels_last)

    def _images(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            _to_device(batch["src_img"], self.device, self.channels_last),
            _to_device(batch["tgt_img"], self.device, self.channels_last),
        )

    def _generate(self, src_img: torch.Tensor, geom):
        from lwgan.render import generator_inputs

        bg_in, src_in, tsf_in = generator_inputs(src_img, geom)
        return self.G(bg_in, src_in, tsf_in, geom.flow)

    def _train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """One reference iteration (0-based ``step``), then the CUDA-graph capture of the network calls
        made for the first time, once the step's tensors and autograd graph are gone (a live graph from
        the eager step would tie the capture's backward to the default stream and break it)."""
        metrics = self._step(batch, step)
        if self.graphs is not None and self.graphs.pending:
            self.graphs.capture(self.graph_maker)
        return metrics

    def _step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        """One reference iteration (0-based ``step``): G forward/loss/step, then D on detached fakes when gated."""
        number = step + 1  # the step count once this iteration is done; what metrics are logged under
        src_img, tgt_img = self._images(batch)
        geom = self._pair_geometry(batch)
        metrics: dict[str, float] = {}
        self._step_metrics = metrics

        from lwgan.render import generator_inputs

        with self._autocast():  # the Objective runs G and keeps D's parameters out of the G phase
            g_loss, g_metrics, out = self.objective.generator_phase(src_img, tgt_img, geom, generator_inputs(src_img, geom),
                                                                     tgt_keys=list(batch["tgt_key"]))
        self._optimise("G", self.G, self.opt_G, g_loss, g_metrics, metrics, number)

        if step % self.cfg.optim.d_every == 0:
            with self._autocast():
                d_loss, d_metrics = self.objective.discriminator_phase(tgt_img, out.tsf_image.detach(), geom.tgt_cond)
            self._optimise("D", self.D, self.opt_D, d_loss, d_metrics, metrics, number)
        return metrics

    def _optimise(self, name: str, net, opt, loss, phase_metrics, metrics: dict[str, float], number: int) -> None:
        """One phase's update: backward, then the phase's values and the grad norm in one copy to the
        host, both guards, step. Both guards run before ``opt.step()``, so a diverged state is never
        applied or saved (a diverged loss's backward runs and is thrown away; the device need not wait
        for the host between forward and backward)."""
        opt.zero_grad(set_to_none=True)
        loss.backward()
        values, extra = phase_metrics.read({vocab.GRAD_NORM[name]: grad_norm_tensor(net)})  # a PhaseScalars
        metrics.update(values)
        check_losses(number, metrics, self.cfg.run.divergence_threshold)
        metrics.update(extra)
        check_losses(number, metrics, float("inf"), prefix=vocab.GRAD_NORM_PREFIX)
        opt.step()

    # ------------------------------------------------------------------ eval and samples
    @torch.no_grad()
    def _eval_outputs(self):
        src_img, tgt_img = self._images(self.eval_batch)
        was_training = self.G.training
        self.G.eval()  # also freezes spectral-norm power iterations
        try:
            # Eval never touches the training RNG streams, so a resumed run matches an uninterrupted one.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                if self.eval_geom is None:
                    self.eval_geom = self._pair_geometry(self.eval_batch)
                with self._autocast():
                    out = self._generate(src_img, self.eval_geom)
        finally:
            self.G.train(was_training)
        return src_img, tgt_img, out

    @torch.no_grad()
    def evaluate(self, outputs=None) -> dict[str, float]:
        """Self-imitation metrics on the fixed val pairs: transfer vs target, reconstruction vs source."""
        src_img, tgt_img, out = outputs if outputs is not None else self._eval_outputs()
        tsf, rec = out.tsf_image.float(), out.src_image.float()
        metrics = {
            vocab.EVAL_SSIM: float(ssim(tsf, tgt_img.float()).mean()),
            vocab.EVAL_PSNR: float(psnr(tsf, tgt_img.float()).mean()),
            vocab.EVAL_SSIM_REC: float(ssim(rec, src_img.float()).mean()),
            vocab.EVAL_PSNR_REC: float(psnr(rec, src_img.float()).mean()),
        }
        if self.lpips is not None:
            metrics[vocab.EVAL_LPIPS] = float(self.lpips(tsf, tgt_img.float()).mean())
        return metrics

    @torch.no_grad()
    def distribution_metrics(self) -> dict[str, float]:
        """FID and KID (Inception-v3 pool features) of the transfers of ``fid_pairs`` fixed val pairs
        against their targets; the pairs are generated in batches of ``batch_size``, G in eval mode."""
        from lwgan.quality import fid_from_features, kid_from_features

        fake, real, size = [], [], self.cfg.data.batch_size
        items = self.fid_set.fixed_pairs(self.cfg.run.fid_pairs, seed=EVAL_PAIR_SEED)
        was_training = self.G.training
        self.G.eval()
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                for i in range(0, len(items), size):
                    batch = stack_items(items[i : i + size])
                    src_img, tgt_img = self._images(batch)
                    geom = self._pair_geometry(batch)
                    with self._autocast():
                        out = self._generate(src_img, geom)
                    fake.append(self.inception(out.tsf_image))
                    real.append(self.inception(tgt_img))
        finally:
            self.G.train(was_training)
        fake_np, real_np = torch.cat(fake).numpy(), torch.cat(real).numpy()
        return {vocab.EVAL_FID: fid_from_features(fake_np, real_np), vocab.EVAL_KID: kid_from_features(fake_np, real_np)[0]}

    def write_samples(self, path: Path, step: int, outputs=None, title: str | None = None) -> Path:
        """Grid of the fixed val pairs: source | reference (target body, uv_seg) | warped | output | target."""
        from lwgan.render import warp

        src_img, tgt_img, out = outputs if outputs is not None else self._eval_outputs()
        geom = self.eval_geom
        reference = geom.tgt_cond.float() * 2 - 1  # the target's body condition map in [-1, 1]
        warped = warp(src_img.float(), geom.flow.float())
        path = save_grid(path, [src_img, reference, warped, out.tsf_image, tgt_img], COLUMNS, title)
        self.callbacks.on_sample(step, path)
        return path

    @torch.no_grad()
    def write_outputs(self, path: Path, step: int, outputs=None) -> Path:
        """The fixed val pairs' inputs, transfer and reconstruction outputs and per-pair SSIM/PSNR as an .npz
        (the report's per-pair strips compare variants on these)."""
        from lwgan.render import warp

        src_img, tgt_img, out = outputs if outputs is not None else self._eval_outputs()
        src, tgt = src_img.float(), tgt_img.float()
        tsf, rec = out.tsf_image.float(), out.src_image.float()
        images = {"source": src, "target": tgt, "warped": warp(src, self.eval_geom.flow.float()),
                  "reference": self.eval_geom.tgt_cond.float() * 2 - 1, "transfer": tsf, "reconstruction": rec}
        scores = {"ssim": ssim(tsf, tgt), "psnr": psnr(tsf, tgt), "ssim_rec": ssim(rec, src), "psnr_rec": psnr(rec, src)}
        return save_outputs(path, images, scores, step)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_payload(self, step: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "epoch": step // self.epoch_len,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "rng": capture_rng_state(),
            # The pair stream is a pure function of (seed, sample number): this is its whole state.
            "sampler": {"seed": self.stream.seed, "samples_drawn": step * self.cfg.data.batch_size},
            "config": self.cfg.to_flat(),
        }

    def save(self, step: int) -> Path:
        self.callbacks.before_checkpoint(step)
        path = save_checkpoint(checkpoint_path(self.out_dir), self._checkpoint_payload(step))
        self.callbacks.on_checkpoint(step, path)
        return path

    def _resume(self) -> int:
        """Load ``last.pt`` (or ``prev.pt`` when ``last.pt`` is unreadable, saying so on stderr);
        returns the step to continue from (0 for a fresh run)."""
        loaded = load_latest_checkpoint(checkpoint_path(self.out_dir), map_location=self.device)
        if loaded is None:
            return 0
        if loaded.fallback:
            print(f"warning: {loaded.fallback}", file=sys.stderr, flush=True)
            self.checkpoint_fallback = loaded.fallback
        state, path = loaded.payload, loaded.path
        saved, now = state["config"], self.cfg.to_flat()
        changed = sorted(k for k in now if k not in RESUME_FREE_KEYS and saved.get(k) != now[k])
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed)
            raise ConfigError(changed[0], f"differs from the checkpoint being resumed ({diffs})", "the run's values, or a new --out", str(path))
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        restore_rng_state(state["rng"])
        return int(state["step"])

    # ------------------------------------------------------------------ the loop
    def fit(self) -> TrainResult:
        info = self.prepare()
        cfg, run = self.cfg, self.cfg.run
        self.out_dir.mkdir(parents=True, exist_ok=True)
        start = self._resume()
        write_config_yaml(self.out_dir / "config.yaml", cfg.to_flat())
        info = {**info, "resumed_from_step": start}
        if self.checkpoint_fallback:
            info["checkpoint_fallback"] = self.checkpoint_fallback
        (self.out_dir / "run_info.json").write_text(json.dumps(info, indent=2, default=str))
        log = MetricsWriter(self.out_dir / "metrics.jsonl")
        log.truncate_after(start)
        last: dict[str, float] = {}
        if start > 0 and log.path.exists():
            for record in read_metrics(log.path):
                last.update({k: v for k, v in record.items() if k != vocab.STEP})
        self.callbacks.on_start(info)

        total = self.total_steps
        progress = Progress(total, enabled=self.show_progress, stream=self.progress_stream, every=max(1, min(50, total // 10)))
        if start == 0:
            outputs = self._eval_outputs()
            first = {**self.evaluate(outputs), vocab.LR_G: lr_at(0, cfg.optim.lr_G, cfg.optim.lr_final, cfg.optim.epochs_no_decay, cfg.optim.epochs_decay),
                     vocab.LR_D: lr_at(0, cfg.optim.lr_D, cfg.optim.lr_final, cfg.optim.epochs_no_decay, cfg.optim.epochs_decay), vocab.EPOCH: 0}
            log.write(0, first)
            self.callbacks.on_metrics(0, first)
            last.update(first)
            self.write_samples(sample_path(self.out_dir, 0), 0, outputs, title="step 0")

        step, result, outputs = start, None, None
        durations: deque[float] = deque(maxlen=20)
        loader = batches(self.stream, cfg.data.batch_size, start * cfg.data.batch_size,
                         max(0, total - start) * cfg.data.batch_size, cfg.data.num_workers)
        try:
            tick = time.perf_counter()
            for batch in loader:
                epoch = step // self.epoch_len
                o = cfg.optim
                lrs = {vocab.LR_G: lr_at(epoch, o.lr_G, o.lr_final, o.epochs_no_decay, o.epochs_decay),
                       vocab.LR_D: lr_at(epoch, o.lr_D, o.lr_final, o.epochs_no_decay, o.epochs_decay)}
                set_lr(self.opt_G, lrs[vocab.LR_G])
                set_lr(self.opt_D, lrs[vocab.LR_D])
                metrics = self._train_step(batch, step)
                step += 1
                now = time.perf_counter()
                durations.append(now - tick)
                tick = now
                metrics.update(lrs)
                metrics[vocab.EPOCH] = epoch
                metrics[vocab.PERF_IT_PER_S] = len(durations) / sum(durations)
                is_last = step == total
                outputs = None
                if step % run.eval_every == 0 or is_last or step % run.sample_every == 0:
                    outputs = self._eval_outputs()
                if step % run.eval_every == 0 or is_last:
                    metrics.update(self.evaluate(outputs))
                if is_last and self.inception is not None:
                    metrics.update(self.distribution_metrics())
                last.update(metrics)
                if step % run.log_every == 0 or is_last or vocab.EVAL_SSIM in metrics:
                    log.write(step, metrics)
                    self.callbacks.on_metrics(step, metrics)
                if step % run.sample_every == 0:
                    self.write_samples(sample_path(self.out_dir, step), step, outputs, title=f"step {step}")
                if step % run.checkpoint_every == 0 or is_last:
                    self.save(step)
                progress.update(step, epoch, last, metrics[vocab.PERF_IT_PER_S])
                tick = time.perf_counter()  # eval / samples / checkpoints are not training time
        except LossDivergedError as err:
            bad = dict(self._step_metrics)
            log.write(err.step, bad)
            self.callbacks.on_metrics(err.step, bad)
            last.update(bad)
            result = TrainResult(vocab.TrialStatus.DIVERGED, err.step, last, str(err), str(self.out_dir))
        finally:
            progress.close()
            log.close()
        if result is None:
            if outputs is None:  # the last step's eval outputs are the final ones (G has not changed since)
                outputs = self._eval_outputs()
            self.write_samples(self.out_dir / "samples" / "final.png", step, outputs, title=f"step {step} (final)")
            self.write_outputs(self.out_dir / FINAL_OUTPUTS, step, outputs)
            result = TrainResult(vocab.TrialStatus.COMPLETED, step, last, None, str(self.out_dir))
        if self.graphs is not None:  # which calls ran as graphs, how often, and any capture that failed
            info["cuda_graph_sites"] = self.graphs.summary()
            (self.out_dir / "run_info.json").write_text(json.dumps(info, indent=2, default=str))
        self.callbacks.on_end(result)
        return result
