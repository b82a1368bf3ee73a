"""The experiments ``ncgrok reproduce`` runs: one record per preset, the shared plumbing in
``empirical.reproduce``.

A :class:`Preset` names its source (a figure of Sakamoto & Sato, arXiv:2509.20829, or a publication
on grokking), says in one sentence what that source reports, builds the sweeps (:class:`Stage`) it
trains at the ``full`` (published) or ``reduced`` (about 10 minutes on 2 CPU cores) scale, and lists
the claims its outcome is judged by: the general ledger (``ledger.CHECKS``) on every stage, plus the
preset's own (``ledger.preset_claims``), each with the source that makes it.

What each reduced scale keeps and what it changes is in its ``reduced_note``: the reduced settings
are chosen to finish on a laptop, so a claim that needs the full horizon may be ``inconclusive`` or
``censored`` there, and the README reports that as measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from ncgrok.empirical.ledger.core import ClaimResult, RunCurves, Source
from ncgrok.empirical.ledger import preset_claims as pc
from ncgrok.empirical.sweep_config import SweepConfig

__all__ = ["SCALES", "Stage", "Preset", "PRESETS", "get_preset", "PAPER_WEIGHT_DECAYS"]

SCALES = ("reduced", "full")
PAPER_WEIGHT_DECAYS = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001)
PAPER_SEEDS = (0, 1, 2, 3, 4)
# test images measured by the reduced CNN and transformer presets (a fixed subset: SweepConfig.test_size);
# measuring those models on all 10,000 cost about 15 s per log
REDUCED_TEST_SIZE = 2000
REDUCED_MODULUS = 31
REDUCED_FRACTION = 0.5
REDUCED_MODULAR_LR = 3e-3
# steps of the reduced modular presets: division groks later than addition (Power et al.), measured here
REDUCED_MODULAR_STEPS = {"addition": 5_000, "division": 7_500}

PAPER = "Sakamoto & Sato, arXiv:2509.20829"
POWER = "Power et al. 2022, arXiv:2201.02177"
NANDA = "Nanda et al. 2023, arXiv:2301.05217"
LIU = "Liu et al. 2023 (Omnigrok), arXiv:2210.01117"


@dataclass(frozen=True)
class Stage:
    """One sweep of a preset, trained into ``<out>/<label>``."""

    label: str
    config: SweepConfig


# the claims of a preset: stages' runs by label (and the margins of Fig. 2/5 when drawn) -> results
ClaimFunction = Callable[[Mapping[str, Sequence[RunCurves]], Mapping[str, Any]], list[ClaimResult]]


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    reports: str
    expected: str
    stages: Callable[[str], tuple[Stage, ...]]
    claims: ClaimFunction
    reduced_note: str
    margin_pairs: tuple[tuple[int, int], ...] = ()
    datasets: tuple[str, ...] = ("mnist",)
    extra: Mapping[str, Any] = field(default_factory=dict)
    # other models for the same experiment: name -> (what it is, SweepConfig changes); none by default
    variants: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)

    def stages_at(self, scale: str, variant: str | None = None) -> tuple[Stage, ...]:
        if scale not in SCALES:
            raise ValueError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
        stages = self.stages(scale)
        if variant is None:
            return stages
        if variant not in self.variants:
            offered = f"it offers {', '.join(self.variants)}" if self.variants else "it has none"
            raise ValueError(f"--variant {variant!r} is not a variant of preset {self.name} ({offered})")
        changes = self.variants[variant][1]
        return tuple(Stage(stage.label, replace(stage.config, **changes)) for stage in stages)


def _paper(**changes: Any) -> SweepConfig:
    """The paper's main setting (Figs. 2-4) with ``changes``."""
    return SweepConfig(**{"weight_decays": PAPER_WEIGHT_DECAYS, "seeds": PAPER_SEEDS, **changes})


def _source(result: str, status: str = "paper-text") -> Source:
    return Source(result, status)


# ---------------------------------------------------------------------------------------------- fig5


def _fig5_stages(scale: str) -> tuple[Stage, ...]:
    if scale == "full":
        return (Stage("mnist", _paper(weight_decays=(0.01,), snapshot_steps=(16_000, 100_000))),)
    return (Stage("mnist", _paper(weight_decays=(0.1,), seeds=(0, 1), steps=30_000, heldout_size=2000,
                                  snapshot_steps=(6_000, 30_000))),)


def _fig5_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    source = _source(f"{PAPER}, App. Fig. 5 (class pairs, as Fig. 2)")
    return [pc.grokking_gap(runs["mnist"], source=_source(f"{PAPER}, Fig. 2")),
            pc.pair_margin_separation(context.get("margins", ()), source=source)]


# ---------------------------------------------------------------------------------------------- fig6


def _fig6_stages(scale: str) -> tuple[Stage, ...]:
    if scale == "full":
        base = _paper(dataset="fashion-mnist")
    else:
        base = _paper(dataset="fashion-mnist", weight_decays=(0.1,), seeds=(0, 1), steps=20_000, heldout_size=2000)
    return (Stage("n1000", base), Stage("n3000", replace(base, train_size=3000)))


def _fig6_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    return [
        pc.grokking_gap(runs["n1000"], source=_source(f"{PAPER}, App. Fig. 6 (Fashion-MNIST as Fig. 3)")),
        pc.earlier_with_more_data(runs["n1000"], runs["n3000"], sizes=(1000, 3000),
                                  source=_source(f"{PAPER}, App. Fig. 6 (training-set size 1000 vs 3000)")),
    ]


# ---------------------------------------------------------------------------------------------- fig7


def _fig7_stages(scale: str) -> tuple[Stage, ...]:
    if scale == "full":
        return (Stage("cnn", _paper(model="cnn")),)
    return (Stage("cnn", _paper(model="cnn", weight_decays=(0.1,), seeds=(0, 1), steps=3_000, heldout_size=1000,
                                test_size=REDUCED_TEST_SIZE, log_every=150)),)


def _fig7_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    source = _source(f"{PAPER}, App. Fig. 7 (CNN: no grokking)")
    return [pc.no_gap(runs["cnn"], source=source),
            pc.rnc1_falls_after_fit(runs["cnn"], decays=(0.1,),
                                    source=_source(f"{PAPER}, App. Fig. 7 (lambda = 0.1: RNC1 keeps falling)"))]


# ---------------------------------------------------------------------------------------------- fig9


def _fig9_stages(scale: str) -> tuple[Stage, ...]:
    if scale == "full":
        base = _paper(model="transformer")
        return (Stage("n1000", base), Stage("n3000", replace(base, train_size=3000)))
    return (Stage("n1000", _paper(model="transformer", weight_decays=(0.1,), seeds=(0, 1), steps=2_000,
                                  heldout_size=500, test_size=REDUCED_TEST_SIZE, log_every=100)),)


def _fig9_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    source = _source(f"{PAPER}, App. Fig. 9 (transformer on MNIST: no grokking, NC1 tracks test accuracy)")
    everything = [run for stage in runs.values() for run in stage]
    return [pc.no_gap(everything, source=source), pc.nc1_tracks_test_better(everything, source=source)]


# ---------------------------------------------------------------------------------------------- omnigrok


def _omnigrok_stages(scale: str) -> tuple[Stage, ...]:
    # Liu et al.'s MNIST recipe: 3 linear layers of width 200, init x8, mean squared error, AdamW 1e-3,
    # weight decay 0.01, batch 200, 1000 training images; next to the paper's 4-layer summed-loss setting.
    if scale == "full":
        steps, decays, seeds, heldout = 100_000, (0.01,), PAPER_SEEDS, 5000
    else:
        steps, decays, seeds, heldout = 20_000, (0.1,), (0, 1), 2000
    common = dict(weight_decays=decays, seeds=seeds, steps=steps, heldout_size=heldout)
    return (Stage("omnigrok", _paper(depth=3, loss_reduction="mean", batch_size=200, **common)),
            Stage("paper", _paper(**common)))


def _omnigrok_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    return [pc.grokking_gap(runs["omnigrok"], source=_source(f"{LIU}, Fig. 1 (MNIST, large init)", "published")),
            pc.grokking_gap(runs["paper"], source=_source(f"{PAPER}, Fig. 2"))]


# ---------------------------------------------------------------------------------------------- modular


def _modular(operation: str, **changes: Any) -> SweepConfig:
    """Nanda et al.'s setting: 1-layer transformer (d_model 128, 4 heads, MLP 512, no LayerNorm), softmax
    cross-entropy, full-batch AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98)."""
    settings = dict(dataset=f"modular-{operation}", model="modtransformer", loss="cross-entropy", betas=(0.9, 0.98),
                    lrs=(1e-3,), weight_decays=(1.0,), seeds=(0, 1), batch_size=0, modulus=113, train_fraction=0.3,
                    steps=25_000)
    return SweepConfig(**{**settings, **changes})


def _modular_reduced(operation: str) -> dict[str, Any]:
    """The reduced scale: a smaller task, and a 3x learning rate so that the weight-decay time scale
    ``1 / (lr lambda)`` (the slow scale of the paper's Sec. 5) fits the budget."""
    return dict(modulus=REDUCED_MODULUS, train_fraction=REDUCED_FRACTION, lrs=(REDUCED_MODULAR_LR,),
                steps=REDUCED_MODULAR_STEPS[operation])


def _modular_note(operation: str) -> str:
    return (f"p = {REDUCED_MODULUS}, {REDUCED_FRACTION:.0%} of the pairs for training, lr {REDUCED_MODULAR_LR:g} "
            f"(3x the source's, so the weight-decay time scale 1/(lr lambda) is 3x shorter), "
            f"{REDUCED_MODULAR_STEPS[operation]:,} steps, 2 seeds (full: p = 113, 30%, lr 1e-3, 25,000 steps)")


def _modular_stages(operation: str) -> Callable[[str], tuple[Stage, ...]]:
    def stages(scale: str) -> tuple[Stage, ...]:
        if scale == "full":
            return (Stage("p113", _modular(operation)),)
        return (Stage(f"p{REDUCED_MODULUS}", _modular(operation, **_modular_reduced(operation))),)

    return stages


# Power et al.'s model next to Nanda et al.'s default: a 2-layer decoder-only transformer, width 128, 4 heads,
# LayerNorm after each residual sum (empirical.models, arch modtransformer)
MODULAR_VARIANTS = {
    "nanda": ("Nanda et al.'s 1-layer transformer without LayerNorm (the default)", {}),
    "power": ("Power et al.'s 2-layer decoder-only transformer, width 128, 4 heads, LayerNorm after each residual sum",
              {"layers": 2, "layer_norm": "post"}),
}


def _modular_claims(runs: Mapping[str, Sequence[RunCurves]], context: Mapping[str, Any]) -> list[ClaimResult]:
    (stage,) = runs.values()
    return [pc.grokking_gap(stage, source=_source(f"{POWER}, Fig. 1; {NANDA}, Fig. 2", "published")),
            pc.population_collapse(stage, source=_source(f"{PAPER}, Thm. 4.1 and Sec. 5 (applied to a finite task)",
                                                         "reconstructed"))]


# ---------------------------------------------------------------------------------------------- registry

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "fig5-class-pairs", f"{PAPER}, App. Fig. 5",
            "the Fig. 2 margins for other class pairs: after grokking the unseen examples of the pair are "
            "separated by the pair's boundary like the training examples",
            "grokking-gap holds; pair-margin-separation holds for pairs 4/5 and 8/9",
            _fig5_stages, _fig5_claims,
            "lambda 0.1 (grokking within 30k steps), 2 seeds, 30,000 steps, snapshots 6,000 and 30,000 "
            "(full: lambda 0.01, 5 seeds, 100,000 steps, snapshots 16,000 and 100,000)",
            margin_pairs=((4, 5), (8, 9)),
        ),
        Preset(
            "fig6-fashion", f"{PAPER}, App. Fig. 6",
            "Fashion-MNIST behaves as MNIST (grokking, RNC1 falls with the rise of test accuracy); with 3000 "
            "training images the test accuracy increases slightly earlier than with 1000",
            "grokking-gap holds on n=1000; earlier-with-more-data holds",
            _fig6_stages, _fig6_claims,
            "lambda 0.1, 2 seeds, 20,000 steps, training sizes 1000 and 3000 (full: the paper's 6 weight decays, "
            "5 seeds, 100,000 steps)",
            datasets=("fashion-mnist",),
        ),
        Preset(
            "fig7-cnn", f"{PAPER}, App. Fig. 7",
            "a small CNN shows no grokking (test accuracy rises with the fit) while test accuracy still improves "
            "with neural collapse; at lambda = 0.1 RNC1 keeps falling after the fit",
            "no-gap holds; rnc1-falls-after-fit holds at lambda 0.1",
            _fig7_stages, _fig7_claims,
            f"lambda 0.1, 2 seeds, 3,000 steps logged every 150, test accuracy on a fixed {REDUCED_TEST_SIZE:,} of the "
            "10,000 test images (full: 6 weight decays, 5 seeds, 100,000 steps, every test image)",
        ),
        Preset(
            "fig9-transformer", f"{PAPER}, App. Fig. 9",
            "a one-layer transformer on MNIST patches shows no grokking, and NC1 tracks test accuracy better than RNC1",
            "no-gap holds; nc1-tracks-test-better holds",
            _fig9_stages, _fig9_claims,
            f"lambda 0.1, 2 seeds, 2,000 steps logged every 100, 1000 training images, test accuracy on a fixed "
            f"{REDUCED_TEST_SIZE:,} of the 10,000 test images (full: 6 weight decays, 5 seeds, 100,000 steps, training "
            "sizes 1000 and 3000, every test image)",
        ),
        Preset(
            "modular-addition", f"{POWER}; {NANDA}",
            "a + b mod p: the training pairs are fitted within about 1,500 full-batch steps while test accuracy stays "
            "near chance, then test accuracy rises to about 100% (Nanda et al., p = 113, 30% of pairs: the cleanup "
            "phase ends near step 13,000)",
            "grokking-gap holds; population-collapse holds (the exact population variance falls after the fit)",
            _modular_stages("addition"), _modular_claims,
            _modular_note("addition") + ". The held-out columns are the unseen pairs themselves, so r1-cantelli "
            "and r4-transfer are exact there (class variances with the n_c - 1 denominator, a conservative bound)",
            datasets=("modular-addition",), variants=MODULAR_VARIANTS,
        ),
        Preset(
            "modular-division", POWER,
            "a / b mod p (b != 0) groks like addition; Power et al. report it among the operations that need the "
            "largest training fraction",
            "grokking-gap holds; population-collapse holds",
            _modular_stages("division"), _modular_claims,
            _modular_note("division"),
            datasets=("modular-division",), variants=MODULAR_VARIANTS,
        ),
        Preset(
            "omnigrok-mnist", f"{LIU}, Sec. 3 (MNIST)",
            "with large initialisation (x8) an MLP on 1000 MNIST images groks under AdamW with weight decay",
            "grokking-gap holds for both the Omnigrok recipe and the paper's setting",
            _omnigrok_stages, _omnigrok_claims,
            "lambda 0.1 (the recipe's 0.01 needs about 100,000 steps), 2 seeds, 20,000 steps "
            "(full: lambda 0.01, 5 seeds, 100,000 steps)",
        ),
    )
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; `ncgrok reproduce --list` shows: {', '.join(PRESETS)}")
    return PRESETS[name]
