"""How to read each report figure, in one line, and the report's section of each experiment.

Figures are keyed by what they show (``top_drifters_A_vs_B``, ``patching_map_DIRECTION_COMPONENT``, ...); the first
pattern that matches a key gives the line printed under the figure. A test checks that every figure of the test
runs has one, so a new figure cannot reach the report without it.
"""

from __future__ import annotations

import re

SECTIONS = {
    "analysis": "Representation drift",
    "templates": "Template ensemble",
    "patching": "Activation patching",
    "behaviour": "Behaviour vectors",
    "manifold": "Manifold probes",
    "trajectory": "Fine-tuning trajectories",
    "lens": "Output space (lens)",
}

READING = [
    (
        r"^template_pairs$",
        "Each pair's headline drift under every template and pooled over them (log scale): bars of one pair that "
        "differ by more than their CIs mean the template changes the answer.",
    ),
    (
        r"^template_categories_",
        "Mean drift per category under every template for one pair: a finding about categories holds for every "
        "template when the same category stands out in each colour.",
    ),
    (
        r"^template_(drift|jaccard)_by_layer$",
        "The measure pooled over templates at every residual point, the band spanning the lowest and the highest "
        "template: a wide band is depth where the template matters.",
    ),
    (
        r"^top_drifters_",
        "Each bar is one concept's cosine drift (1 − cos) at the headline layer: the longest bars are "
        "the concepts this change moved most.",
    ),
    (
        r"^category_comparison$",
        "Mean drift per category and pair with its 95% CI: compare categories within a pair, "
        "and each pair with the noise floor's.",
    ),
    (
        r"^category_violins$",
        "Per-concept drift in each category: the height says how far a category moves, the width "
        "how many of its concepts move that far.",
    ),
    (
        r"^drift_by_layer_category_",
        "Mean drift per category at every residual point for one pair: where the lines "
        "part is the depth at which the categories start to move differently.",
    ),
    (
        r"^drift_by_layer$",
        "Mean drift per pair at every residual point (log scale) with its 95% band; the dashed noise "
        "floor is what numerical precision alone moves.",
    ),
    (
        r"^jaccard_by_layer$",
        "Share of each concept's nearest neighbours that both variants agree on, per residual "
        "point (1 = the same neighbourhoods).",
    ),
    (
        r"^cka_by_layer$",
        "Linear CKA of the two variants at the same residual point (1 = the same geometry up to rotation and scale).",
    ),
    (
        r"^cka_cross_",
        "CKA of every point of one variant with every point of the other: a bright diagonal means the "
        "layers correspond; a ridge off it means the computation moved in depth.",
    ),
    (
        r"^effective_rank$",
        "Effective rank (exp of the spectral entropy) of each variant's concept vectors: how many "
        "directions the concepts spread over at each point.",
    ),
    (r"_by_layer$", "This measure per pair at every residual point, with its 95% band."),
    (
        r"^umap_trajectories_",
        "Each concept in the joint map of both variants, with a segment from one to the other: "
        "long segments are the concepts that moved.",
    ),
    (
        r"^umap_by_category$",
        "The joint map of every variant at the headline layer, coloured by category: concepts "
        "close together are ones the model treats alike.",
    ),
    (
        r"^patching_by_block",
        "Normalised effect of patching one block from the source run into the receiver (0 = none, "
        "1 = the whole difference) with 95% CIs: where a curve rises is where the difference is carried.",
    ),
    (
        r"^patching_map_",
        "Normalised patching effect per block (rows) and token position (columns): the bright cells "
        "are where the difference lives.",
    ),
    (
        r"^behaviour_cosine_",
        "Cosine of the two variants' behaviour vectors per layer; the split-half band is what one "
        "model's own sampling noise gives, so values inside it mean no change.",
    ),
    (
        r"^behaviour_pca_",
        "Each variant's behaviour vector at every layer in one PCA: paths that part show where the "
        "variants encode the behaviour differently.",
    ),
    (
        r"^behaviour_layers_",
        "Cosine of one variant's behaviour vectors between every two layers: square blocks are "
        "layers that share one direction.",
    ),
    (
        r"^behaviour_steering$",
        "Change in the matching answer's probability when the vector is added at a block, by "
        "strength, with 95% CIs: a slope away from zero means the direction steers the behaviour.",
    ),
    (
        r"^manifold_.*_scores$",
        "Probe score (how well the probe's manifold fits) per residual point and token, per "
        "variant: where the model represents the structure.",
    ),
    (
        r"^manifold_.*_difference$",
        "Score difference from the reference per cell; cells within the noise floor are grey.",
    ),
    (
        r"^manifold_.*_beyond_floor$",
        "Only the cells whose difference from the reference exceeds the noise floor's: "
        "the changes that are more than numerical noise.",
    ),
    (r"^manifold_.*_landmarks$", "The probe's score at its landmark cells along depth, one line per variant."),
    (
        r"^manifold_.*_rigid$",
        "Gap between the score of the reference's map moved rigidly onto the variant and its own "
        "fit: how much the manifold bent rather than moved.",
    ),
    (
        r"^manifold_.*_reuse$",
        "Score of the reference's fitted map on the variant: high means the variant reuses the "
        "reference's manifold as it is.",
    ),
    (
        r"^manifold_.*_similarity$",
        "Mean cosine of the principal angles between the maps fitted on two variants (1 = the same subspace).",
    ),
    (
        r"^manifold_.*_projections$",
        "The landmark cells' token representations in 2-D, per variant: the shape the probe found.",
    ),
    (
        r"^trajectory_velocity$",
        "Representational velocity between consecutive checkpoints against the band of random "
        "orderings: steps above the band are where training moved representations most.",
    ),
    (
        r"^trajectory_concentration$",
        "Early concentration C of the velocity at each point with its permutation p: "
        "C > 0.5 means the change happens early in training.",
    ),
    (
        r"^trajectory_umap$",
        "Every checkpoint's concepts in one map: follow a series from its first checkpoint to its last.",
    ),
    (r"^trajectory_", "This measure per residual point (rows) and checkpoint (columns), one panel per series."),
    (
        r"^persistence_diagrams_",
        "Birth against death of each topological feature of the concept cloud: points far "
        "from the diagonal are features that persist across scales.",
    ),
    (
        r"^topology_(total_persistence|entropy)",
        "A summary of the H1 persistence diagram per checkpoint and point: "
        "changes along training are changes in the cloud's loops.",
    ),
    (
        r"^topology_pair_distances$",
        "Distance between the persistence diagrams of every two checkpoints: blocks are "
        "stretches of training with the same topology.",
    ),
    (
        r"^drift_over_floor$",
        "Drift over the noise floor's drift per pair (rows) and point (columns): cells at or "
        "below 1 are within numerical noise.",
    ),
    (
        r"^lens_common_js$",
        "Jensen-Shannon divergence of the next-token distributions both variants give through one "
        "common lens at each point, with 95% CIs: where output space starts to differ.",
    ),
    (
        r"^pair_drift$",
        "Each run's mean drift per pair at its own headline layer with 95% CIs: a pair whose bars "
        "differ between runs is a result that depends on the model or the prompts.",
    ),
    (
        r"^drift_by_depth$",
        "Mean drift along depth, one colour per run and one dash per pair: where the runs' curves "
        "part is the depth at which they disagree.",
    ),
    (
        r"^category_drift$",
        "Mean drift per category (those every run has), per run and pair, with 95% CIs: an "
        "ordering that holds in every run does not depend on the model or the prompts.",
    ),
    (
        r"^localisation_",
        "Every measure along depth for this pair, each normalised to its final value, onsets and "
        "breaks marked: where the curves rise together is where the change is made.",
    ),
]


def how_to_read(key: str) -> str:
    """The line under a figure, or "" for a key no pattern knows (the tests keep that from happening)."""
    return next((line for pattern, line in READING if re.search(pattern, key)), "")
