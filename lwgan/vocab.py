"""The vocabulary that crosses modules, in one place: metric names (with group, unit, direction and
label), MLflow tag keys and values, trial and study statuses, the keys of a Tune result, and the
baseline's name. Torch-free and import-free so every layer (training core, study, tracking, report)
may read it.

Every metric name, tag key and status string of the package is written here and read from here
(tests/test_vocab.py greps the package). To add a metric: one ``_metric(...)`` line below; the
group decides where it shows (tables, curves, search objectives). To add a loss term: its line here
plus the place that computes it (``models/objective.py`` reports terms by name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable

BASELINE = "baseline"


class _StrEnum(str, Enum):
    """A str that is an Enum member: compares, hashes, JSON-encodes and formats as its value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


# ----------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------


class Group(_StrEnum):
    """Where a metric belongs; the report's tables and curve figures are laid out by group."""

    GENERATOR = "generator"          # loss/G_*: weighted generator terms and their total
    DISCRIMINATOR = "discriminator"  # loss/D_*: weighted discriminator terms and their total
    D_OUTPUTS = "d_outputs"          # D/*: mean raw discriminator outputs
    LR = "lr"                        # lr/*: learning rates
    GRAD_NORM = "grad_norm"          # grad_norm/*: global gradient norms
    EVAL = "eval"                    # eval/*: image metrics on the fixed val pairs
    PERF = "perf"                    # perf/*: throughput
    PROGRESS = "progress"            # epoch
    STABILITY = "stability"          # stability/*: per-run measures computed by lwgan.report.stability (not logged per step)
    UNWEIGHTED = "unweighted"        # unweighted/*: a loss term / its weight (term / lambda), derived by the report


class Direction(_StrEnum):
    LOWER = "lower"    # lower is better
    HIGHER = "higher"  # higher is better
    NONE = "none"      # neither (learning rates, raw D outputs, counters)


@dataclass(frozen=True)
class Metric:
    """One logged scalar. ``objective``: a study may optimise it (``objective.metric``)."""

    name: str
    group: Group
    direction: Direction
    unit: str = ""          # "" = dimensionless
    label: str = ""         # short column/legend label; defaults to the name
    objective: bool = False
    description: str = ""

    @property
    def short(self) -> str:
        return self.label or self.name


# Names as constants (read these, never retype the strings).
G_ADV = "loss/G_adv"
G_REC = "loss/G_rec"
G_TSF = "loss/G_tsf"
G_STYLE = "loss/G_style"
G_FACE = "loss/G_face"
G_MASK = "loss/G_mask"
G_MASK_SMOOTH = "loss/G_mask_smooth"
G_TOTAL = "loss/G_total"
D_REAL = "loss/D_real"
D_FAKE = "loss/D_fake"
D_GP = "loss/D_gp"
D_TOTAL = "loss/D_total"
D_REAL_MEAN = "D/real_mean"
D_FAKE_MEAN = "D/fake_mean"
LR_G = "lr/G"
LR_D = "lr/D"
GRAD_NORM_G = "grad_norm/G"
GRAD_NORM_D = "grad_norm/D"
EVAL_SSIM = "eval/ssim"
EVAL_PSNR = "eval/psnr"
EVAL_SSIM_REC = "eval/ssim_rec"
EVAL_PSNR_REC = "eval/psnr_rec"
EVAL_LPIPS = "eval/lpips"
EVAL_FID = "eval/fid"
EVAL_KID = "eval/kid"
PERF_IT_PER_S = "perf/it_per_s"
EPOCH = "epoch"
# Per-run stability measures (lwgan/report/stability.py computes them from the loss histories).
STABILITY_SWING_G = "stability/swing_G"
STABILITY_SWING_D = "stability/swing_D"
STABILITY_NOISE_G = "stability/noise_G"
STABILITY_NOISE_D = "stability/noise_D"
STABILITY_CORR_GD = "stability/corr_GD"
STABILITY_D_GAP = "stability/d_gap"
STABILITY_D_DOMINANT = "stability/d_dominant"

# The step of a metrics.jsonl line, an MLflow metric point and a Tune result (its time attribute).
STEP = "step"

# Prefixes the divergence guard scans ("every loss/* value", "every grad_norm/* value").
LOSS_PREFIX = "loss/"
GRAD_NORM_PREFIX = "grad_norm/"
LR = {"G": LR_G, "D": LR_D}
GRAD_NORM = {"G": GRAD_NORM_G, "D": GRAD_NORM_D}

_G, _D, _L, _H, _N = Group.GENERATOR, Group.DISCRIMINATOR, Direction.LOWER, Direction.HIGHER, Direction.NONE


def _metrics(*items: Metric) -> dict[str, Metric]:
    return {m.name: m for m in items}


# The registry, in display order within each group. Extend it with one line per metric.
METRICS: dict[str, Metric] = _metrics(
    Metric(G_ADV, _G, _L, label="L_adv", objective=True, description="LSGAN generator term, lambda_adv-weighted"),
    Metric(G_REC, _G, _L, label="L_rec", objective=True, description="L1 reconstruction of the source, lambda_rec-weighted"),
    Metric(G_TSF, _G, _L, label="L_tsf", objective=True, description="VGG19 perceptual loss of the transfer, lambda_tsf-weighted"),
    Metric(G_STYLE, _G, _L, label="L_style", objective=True, description="VGG19 Gram (style) loss, lambda_style-weighted"),
    Metric(G_FACE, _G, _L, label="L_face", objective=True, description="SphereFace head-crop identity loss, lambda_face-weighted"),
    Metric(G_MASK, _G, _L, label="L_mask", objective=True, description="attention-mask target loss, lambda_mask-weighted"),
    Metric(G_MASK_SMOOTH, _G, _L, label="L_mask_smooth", objective=True, description="mask total variation, lambda_mask_smooth-weighted"),
    Metric(G_TOTAL, _G, _L, label="L_total", objective=True, description="sum of the weighted generator terms, as optimised"),
    Metric(D_REAL, _D, _L, label="D_real", description="LSGAN real term, lambda_D_prob-weighted"),
    Metric(D_FAKE, _D, _L, label="D_fake", description="LSGAN fake term, lambda_D_prob-weighted"),
    Metric(D_GP, _D, _L, label="D_gp", description="gradient penalty, gp_weight-weighted"),
    Metric(D_TOTAL, _D, _L, label="D_total", objective=True, description="sum of the weighted discriminator terms, as optimised"),
    Metric(D_REAL_MEAN, Group.D_OUTPUTS, _N, label="D(real)", description="mean D output on the target"),
    Metric(D_FAKE_MEAN, Group.D_OUTPUTS, _N, label="D(fake)", description="mean D output on the transfer"),
    Metric(LR_G, Group.LR, _N, label="lr_G", description="generator learning rate"),
    Metric(LR_D, Group.LR, _N, label="lr_D", description="discriminator learning rate"),
    Metric(GRAD_NORM_G, Group.GRAD_NORM, _N, label="|g|_G", description="global L2 norm of G's gradients"),
    Metric(GRAD_NORM_D, Group.GRAD_NORM, _N, label="|g|_D", description="global L2 norm of D's gradients"),
    Metric(EVAL_SSIM, Group.EVAL, _H, label="SSIM", objective=True, description="transfer output vs target"),
    Metric(EVAL_PSNR, Group.EVAL, _H, unit="dB", label="PSNR", objective=True, description="transfer output vs target"),
    Metric(EVAL_LPIPS, Group.EVAL, _L, label="LPIPS", objective=True, description="LPIPS (lpips_net: alex as the reference's evaluator, or vgg; lpips package linear layers), transfer output vs target; absent without backbones.lpips_backbone"),
    # FID / KID: Inception-v3 pool features of fid_pairs val transfers vs their targets, at the last step only.
    Metric(EVAL_FID, Group.EVAL, _L, label="FID", description="Frechet Inception distance, val transfers vs targets (last step); absent without backbones.inception_weights"),
    Metric(EVAL_KID, Group.EVAL, _L, label="KID", description="kernel Inception distance (unbiased; mean over subsets), val transfers vs targets (last step); absent without backbones.inception_weights"),
    Metric(EVAL_SSIM_REC, Group.EVAL, _H, label="SSIM_REC", objective=True, description="reconstruction vs source"),
    Metric(EVAL_PSNR_REC, Group.EVAL, _H, unit="dB", label="PSNR_REC", objective=True, description="reconstruction vs source"),
    Metric(PERF_IT_PER_S, Group.PERF, _H, unit="it/s", label="it/s", description="training iterations per second"),
    Metric(EPOCH, Group.PROGRESS, _N, unit="epochs", label="epoch", description="reference epoch of the step"),
    Metric(STABILITY_SWING_G, Group.STABILITY, _L, unit="% of level", label="swing G", description="low-frequency amplitude of loss/G_total over the final window"),
    Metric(STABILITY_SWING_D, Group.STABILITY, _L, unit="% of level", label="swing D", description="low-frequency amplitude of loss/D_total over the final window"),
    Metric(STABILITY_NOISE_G, Group.STABILITY, _L, unit="% of level", label="noise G", description="step-to-step sd of loss/G_total about its low-passed curve, final window"),
    Metric(STABILITY_NOISE_D, Group.STABILITY, _L, unit="% of level", label="noise D", description="step-to-step sd of loss/D_total about its low-passed curve, final window"),
    Metric(STABILITY_CORR_GD, Group.STABILITY, _N, unit="r", label="corr(G, D)", description="correlation of the G and D low-frequency swings (negative: see-saw)"),
    Metric(STABILITY_D_GAP, Group.STABILITY, _N, unit="D output", label="D gap", description="D(real) - D(fake) over the final window (targets +1 / -1)"),
    Metric(STABILITY_D_DOMINANT, Group.STABILITY, _L, unit="fraction of steps", label="D dominant", description="fraction of logged steps with D(real) - D(fake) above the dominance threshold"),
)
STABILITY_METRICS = tuple(n for n, m in METRICS.items() if m.group is Group.STABILITY)
# Positive scale measures: averaged and plotted on a log scale.
STABILITY_LOG_SCALE = (STABILITY_SWING_G, STABILITY_SWING_D, STABILITY_NOISE_G, STABILITY_NOISE_D)

# Loss terms divided by their weight (term / lambda), derived per run by lwgan.report.verdicts from the
# logged weighted term and the run's config key, so "lambda_rec = 15 raises L_rec" and "reconstruction
# got worse" are told apart. WEIGHT_KEYS: the weighted term -> the flat config key that weights it.
WEIGHT_KEYS: dict[str, str] = {
    G_ADV: "lambda_adv", G_REC: "lambda_rec", G_TSF: "lambda_tsf", G_STYLE: "lambda_style", G_FACE: "lambda_face",
    G_MASK: "lambda_mask", G_MASK_SMOOTH: "lambda_mask_smooth",
    D_REAL: "lambda_D_prob", D_FAKE: "lambda_D_prob", D_GP: "gp_weight",
}
UNWEIGHTED_PREFIX = "unweighted/"
UNWEIGHTED: dict[str, str] = {term: UNWEIGHTED_PREFIX + term[len(LOSS_PREFIX):] for term in WEIGHT_KEYS}
METRICS.update(_metrics(*(
    Metric(UNWEIGHTED[term], Group.UNWEIGHTED, _L, label=f"{METRICS[term].short}/{'gp' if key == 'gp_weight' else 'λ'}",
           description=f"{term} / {key}: the term before weighting")
    for term, key in WEIGHT_KEYS.items()
)))


def metric(name: str) -> Metric:
    """The registered metric ``name``; KeyError naming lwgan/vocab.py when it is not registered."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not registered in lwgan/vocab.py METRICS") from None


def names(*groups: Group) -> tuple[str, ...]:
    """Registered metric names of ``groups``, in registry order (read at call time, so an added
    metric shows wherever its group does)."""
    return tuple(m.name for m in METRICS.values() if m.group in groups)


def generator_terms() -> tuple[str, ...]:
    """The generator's weighted terms (``loss/G_*`` without the total)."""
    return tuple(n for n in names(Group.GENERATOR) if n != G_TOTAL)


def discriminator_terms() -> tuple[str, ...]:
    """The discriminator's weighted terms (``loss/D_*`` without the total)."""
    return tuple(n for n in names(Group.DISCRIMINATOR) if n != D_TOTAL)


def objective_metrics() -> tuple[str, ...]:
    """Metrics a study's ``objective.metric`` may name."""
    return tuple(m.name for m in METRICS.values() if m.objective)


def direction(name: str) -> Direction:
    return metric(name).direction


def label(name: str) -> str:
    """Short label of a metric; an unregistered name is its own label."""
    m = METRICS.get(name)
    return m.short if m is not None else name


def unknown(keys: Iterable[str]) -> list[str]:
    """The keys that are not registered metric names (STEP excluded)."""
    return [k for k in keys if k != STEP and k not in METRICS]


# ----------------------------------------------------------------------------------
# Statuses
# ----------------------------------------------------------------------------------


class TrialStatus(_StrEnum):
    """A trial's named state (study state file, MLflow tag ``lwgan.status``, the summary)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    PRUNED = "pruned"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({TrialStatus.COMPLETED, TrialStatus.DIVERGED, TrialStatus.FAILED, TrialStatus.PRUNED})
# How a single training run (Trainer.fit) can end.
TRAIN_OUTCOMES = (TrialStatus.COMPLETED, TrialStatus.DIVERGED)


class StudyStatus(_StrEnum):
    """The study parent run's ``lwgan.status``."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


class Verdict(_StrEnum):
    """The report's verdict on a claim of the study file (lwgan.report.verdicts)."""

    CONFIRMED = "confirmed"        # significant after Holm across the study's claims, in the claimed direction
    CONTRADICTED = "contradicted"  # significant after Holm, in the other direction
    INCONCLUSIVE = "inconclusive"  # neither (or untestable: too few seeds, no spread, missing runs)


class ClaimKind(_StrEnum):
    """The testable forms of a claim (study file ``claims:``)."""

    DELTA = "delta"      # a variant against the baseline on a metric, with the paper's value
    COMPARE = "compare"  # variant A against variant B (or the baseline), with a claimed direction


class Role(_StrEnum):
    """Values of the ``lwgan.role`` tag."""

    STUDY = "study"
    TRIAL = "trial"
    TRAIN = "train"  # a single `lwgan-study train --track` run (no parent)


# ----------------------------------------------------------------------------------
# MLflow tags (docs/INTERFACES.md "MLflow schema")
# ----------------------------------------------------------------------------------


class Tag:
    """MLflow tag keys written by lwgan.tracking and read by lwgan.report.collect."""

    PARENT_RUN_ID = "mlflow.parentRunId"  # MLflow's own
    # MLflow's own tags on the parent run, so MLflow's UI shows them on the study's page
    MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
    MLFLOW_NOTE = "mlflow.note.content"  # Markdown: Table 1 and the claims' verdicts (lwgan.catalog.note)
    ROLE = "lwgan.role"
    STATUS = "lwgan.status"
    # parent run
    STUDY = "lwgan.study"
    PROFILE = "lwgan.profile"
    GIT_COMMIT = "lwgan.git_commit"
    VERSIONS = "lwgan.versions"
    STUDY_FILE = "lwgan.study_file"
    BEST_TRIAL = "lwgan.best_trial"
    BEST_VALUE = "lwgan.best_value"
    TRIALS_PREFIX = "lwgan.trials_"  # + status: how many trials ended in it
    # both (parent: what the study used; trial: what the trial found)
    DATASET_KIND = "lwgan.dataset_kind"
    BODY_MODEL_KIND = "lwgan.body_model_kind"
    # trial run
    TRIAL_ID = "lwgan.trial_id"
    VARIANT = "lwgan.variant"
    SEED = "lwgan.seed"
    DIVERGED_STEP = "lwgan.diverged_step"
    FINAL_STEP = "lwgan.final_step"
    ERROR = "lwgan.error"
    BACKBONE_STATUS = "lwgan.backbone_status"
    BODY_MODEL = "lwgan.body_model"
    DATASET = "lwgan.dataset"
    DEVICE = "lwgan.device"
    PRECISION = "lwgan.precision"  # resolved precision and why, e.g. "bf16 (CPU with avx512_bf16)"; "; CUDA graphs (why)" when on
    # parent run: the report's verdict on each claim of the study file (lwgan.report.verdicts)
    CLAIM_PREFIX = "lwgan.claim."  # + claim id: "confirmed | contradicted | inconclusive: <estimate> ..."
    CLAIMS_SUMMARY = "lwgan.claims"  # "3 confirmed, 1 contradicted, 8 inconclusive of 12"

    @staticmethod
    def claim(claim_id: str) -> str:
        """``lwgan.claim.<id>``: the parent's tag holding that claim's verdict."""
        return Tag.CLAIM_PREFIX + str(claim_id)

    @staticmethod
    def trials_count(status: str) -> str:
        """``lwgan.trials_<status>``: the parent's count of trials in that state."""
        return Tag.TRIALS_PREFIX + str(status)


class RunParam:
    """MLflow params besides the flat config keys."""

    VARIANT = "variant"
    SEED = "seed"


# ----------------------------------------------------------------------------------
# Tune results (study/trainable.py reports them, study/monitor.py and the schedulers read them)
# ----------------------------------------------------------------------------------


class TuneKey:
    OBJECTIVE = "objective"   # the study's objective value (scheduler/searcher metric)
    STEP = STEP               # time attribute
    FINAL = "lwgan_final"     # True on the trial's last report
    STATUS = "lwgan_status"   # TrialStatus of the finished training
    ERROR = "lwgan_error"
    HISTORY = "lwgan_history"  # [(step, metrics)] since the previous report
    INFO = "lwgan_info"        # the Trainer's run info (first report)
