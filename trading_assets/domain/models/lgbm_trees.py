"""A LightGBM model's prediction in numpy, from its model text (the artifact, Booster.model_to_string),
bit for bit what `lightgbm.Booster.predict` returns: importing lightgbm loads scikit-learn, pandas and
scipy through its compat layer (~1.4 s of a 5-s daily cycle, issue #16 item 5) to score ~250 rows.

LightGBM's rules (src/io/tree.h, src/boosting/gbdt_prediction.cpp, src/c_api.cpp), reproduced here:
- input: each value as a double; |v| <= kZeroThreshold (1e-35f) is 0 (the dense-row reader drops it).
- a numerical split at node j with threshold th_j and decision_type bits (1: default_left, 2-3: missing
  type 0 None / 1 Zero / 2 NaN): v NaN and missing type not NaN -> v = 0; then if (missing type Zero
  and |v| <= kZeroThreshold) or (missing type NaN and v NaN) go to the default side, else left iff
  v <= th_j. Children < 0 are leaves ~child.
- the raw score is ((0 + leaf_1) + leaf_2) + ... over the trees in order (a double sum, tree by tree);
  regression (L2) and the ranking objectives output the raw score unchanged.
Anything else (categorical splits, linear trees, several trees per iteration, an objective whose output
is transformed, e.g. binary or sqrt regression) is refused with `Unsupported`: the caller uses LightGBM.
A text that is not a whole model (truncated: no "end of trees", fewer trees than the header's tree_sizes,
a tree whose arrays disagree with its num_leaves or whose children point outside it) is `Malformed`:
an error, never a silent score from the trees that are left.

Cost: one pass per tree level over the rows (fast for a daily session's few hundred rows, slower than
LightGBM's C++ for a range's hundreds of thousands: models/lgbm.predict picks by row count; the two
agree bit for bit, tested on random forests with NaN, zeros, tiny values and values on the thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float constant)
RAW_OBJECTIVES = ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "lambdarank", "rank_xendcg", "xendcg",
                  "xe_ndcg", "xe_ndcg_mart", "xendcg_mart")  # fmt: skip


class Unsupported(ValueError):
    """A valid model this evaluator does not reproduce (LightGBM scores it)."""


class Malformed(ValueError):
    """Not a whole LightGBM model text."""


@dataclass(frozen=True)
class Forest:
    """The trees of one model, flattened: tree t's internal nodes are rows offset[t] .. offset[t+1]-1."""

    n_features: int
    # per tree
    num_leaves: np.ndarray  # (T,)
    node_offset: np.ndarray  # (T + 1,) into the node arrays
    leaf_offset: np.ndarray  # (T + 1,) into leaf_value
    # per internal node (global index)
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray  # 0 None, 1 Zero, 2 NaN
    left: np.ndarray  # child: >= 0 a node of the same tree (local index), < 0 the leaf ~child
    right: np.ndarray
    leaf_value: np.ndarray


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()], dtype=np.float64)


def _ints(text: str) -> np.ndarray:
    return np.array([int(v) for v in text.split()], dtype=np.int64)


def parse(model_text: str) -> Forest:
    """The model text's trees; Unsupported for a model this evaluator does not reproduce exactly, Malformed
    for a text that is not a whole model."""
    header, _, rest = model_text.partition("\nTree=")
    head = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    # whole-text checks first, so that a cut text is Malformed even when the model is one LightGBM scores
    # (Unsupported sends a text to LightGBM's loader, which aborts the process on a malformed one)
    if "max_feature_idx" not in head or "\nend of trees" not in model_text:
        raise Malformed("not a whole LightGBM model text (no max_feature_idx or no 'end of trees': truncated?)")
    sizes = head.get("tree_sizes", "").split()
    n_blocks = model_text.split("end of trees")[0].count("\nTree=")
    if sizes and len(sizes) != n_blocks:
        raise Malformed(f"{n_blocks} trees in the text, the header lists {len(sizes)} (truncated?)")
    if head.get("num_tree_per_iteration", "1") != "1" or head.get("num_class", "1") != "1":
        raise Unsupported("several trees per iteration (multiclass): not reproduced")
    objective = head.get("objective", "").split()
    if not objective or objective[0] not in RAW_OBJECTIVES or any(o.startswith("sqrt") for o in objective[1:]):
        raise Unsupported(f"objective {head.get('objective')!r}: its output transform is not reproduced")
    if "average_output" in header.split():
        raise Unsupported("a random-forest model (average_output): not reproduced")
    n_features = int(head["max_feature_idx"]) + 1
    body = ("Tree=" + rest).split("end of trees")[0] if rest else ""
    num_leaves, node_off, leaf_off = [], [0], [0]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "decision", "left", "right", "leaf")}
    current = 0  # the tree being read (for the messages)
    try:
        for current, block in enumerate(body.split("Tree=")[1:]):
            kv = dict(line.split("=", 1) for line in block.splitlines()[1:] if "=" in line)
            leaves = int(kv["num_leaves"])
            if int(kv.get("num_cat", "0")) != 0:
                raise Unsupported("a categorical split: not reproduced")
            if kv.get("is_linear", "0") != "0":
                raise Unsupported("a linear tree: not reproduced")
            num_leaves.append(leaves)
            cols["leaf"].append(_floats(kv["leaf_value"]))
            if leaves > 1:
                dt = _ints(kv["decision_type"])
                if np.any(dt & 1):
                    raise Unsupported("a categorical split: not reproduced")
                parts = (_ints(kv["split_feature"]), _floats(kv["threshold"]), dt, _ints(kv["left_child"]), _ints(kv["right_child"]))
                kids = np.concatenate(parts[3:])
                if (any(a.size != leaves - 1 for a in parts) or cols["leaf"][-1].size != leaves or np.any(kids >= leaves - 1)
                        or np.any(~kids[kids < 0] >= leaves) or np.any((parts[0] < 0) | (parts[0] >= n_features))):  # fmt: skip
                    raise Malformed(f"tree {current}: its arrays disagree with num_leaves={leaves}")
                for name, arr in zip(("feature", "threshold", "decision", "left", "right"), parts):
                    cols[name].append(arr)
            elif cols["leaf"][-1].size != 1:
                raise Malformed(f"tree {current}: its arrays disagree with num_leaves={leaves}")
            node_off.append(node_off[-1] + max(leaves - 1, 0))
            leaf_off.append(leaf_off[-1] + leaves)
    except (Unsupported, Malformed):
        raise
    except (KeyError, ValueError, IndexError) as exc:  # a missing or unreadable line: a cut or damaged text
        raise Malformed(f"tree {current}: unreadable ({type(exc).__name__}: {exc})") from exc
    sizes = head.get("tree_sizes", "").split()
    if sizes and len(sizes) != len(num_leaves):
        raise Malformed(f"{len(num_leaves)} trees in the text, the header lists {len(sizes)} (truncated?)")

    def cat(name: str, dtype) -> np.ndarray:
        return np.concatenate(cols[name]).astype(dtype) if cols[name] else np.zeros(0, dtype=dtype)

    decision = cat("decision", np.int64)
    return Forest(
        n_features=n_features, num_leaves=np.array(num_leaves, dtype=np.int64), node_offset=np.array(node_off, dtype=np.int64),
        leaf_offset=np.array(leaf_off, dtype=np.int64), feature=cat("feature", np.int64), threshold=cat("threshold", np.float64),
        default_left=(decision & 2) != 0, missing=(decision >> 2) & 3, left=cat("left", np.int64), right=cat("right", np.int64),
        leaf_value=cat("leaf", np.float64),
    )  # fmt: skip


def predict(forest: Forest, x: np.ndarray) -> np.ndarray:
    """Raw scores of the rows of x (n, F): LightGBM's, bit for bit (module docstring). Every tree walks at
    once: one step per tree level over the (row, tree) pairs not yet at a leaf."""
    x = np.array(x, dtype=np.float64)  # a copy: tiny values are zeroed below
    if x.ndim != 2 or x.shape[1] != forest.n_features:
        raise ValueError(f"the model reads {forest.n_features} features, got {x.shape}")
    x[np.abs(x) <= ZERO_THRESHOLD] = 0.0  # NaN compares False: kept
    n, trees = x.shape[0], forest.num_leaves.size
    leaf = np.zeros((n, trees), dtype=np.int64)  # the leaf (local index) each row reaches in each tree
    split = np.flatnonzero(forest.num_leaves > 1)  # single-leaf trees: leaf 0
    row = np.repeat(np.arange(n), split.size)
    tree = np.tile(split, n)
    node = forest.node_offset[tree]  # global index of the current internal node
    steps = 0
    while row.size:
        steps += 1
        if steps > int(forest.num_leaves.max()):  # a valid tree is at most num_leaves - 1 splits deep
            raise Malformed("a tree whose children form a cycle")
        v = x[row, forest.feature[node]]
        miss = forest.missing[node]
        nan = np.isnan(v)
        v = np.where(nan & (miss != 2), 0.0, v)
        to_default = (nan & (miss == 2)) | ((miss == 1) & (np.abs(v) <= ZERO_THRESHOLD))
        go_left = np.where(to_default, forest.default_left[node], v <= forest.threshold[node])
        child = np.where(go_left, forest.left[node], forest.right[node])
        done = child < 0
        leaf[row[done], tree[done]] = ~child[done]
        keep = ~done
        row, tree = row[keep], tree[keep]
        node = forest.node_offset[tree] + child[keep]
    values = forest.leaf_value[forest.leaf_offset[:-1][None, :] + leaf]
    out = np.zeros(n, dtype=np.float64)
    for t in range(trees):  # the tree-by-tree double sum, in LightGBM's order (np.sum would add pairwise)
        out += values[:, t]
    return out
