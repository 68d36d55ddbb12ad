r"""From the paper to the code: each equation of GFL (Li et al., NeurIPS 2020) and the
functions that compute it, with the notebook section where it is first used.

``docs/conf.py`` renders :func:`markdown_table` into the teachers' page; the
notebook column is found in the notebooks when the site is built (the first
code cell that uses the function, and the heading above it), so it follows the
notebooks as they change. ``tests/test_notebooks.py`` checks that every function
named here exists and is used in some notebook.

Run it to print the table: ``.venv/bin/python tools/paper.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.mirror import NotebookIndex  # noqa: E402


class Equation(NamedTuple):
    """One equation of the paper, named by the part of its Section 3 that states it."""

    part: str  # the paper's subsection
    name: str
    latex: str
    reference: str  # dotted name of the NumPy function ("" when no function computes it)
    torch: str  # dotted name of the torch twin ("" when none)
    notebook: str  # the notebook that teaches it (its first use there is looked up)
    also: tuple[str, ...] = ()  # other names that count as a use (a method of the model)


QFL, DFL, GFL = "Quality Focal Loss", "Distribution Focal Loss", "Generalized Focal Loss"
TRAIN = "Training Dense Detectors with GFL"
EQUATIONS = (
    Equation("Focal Loss", "Focal Loss", r"\mathrm{FL}(p) = -(1 - p_t)^{\gamma} \log p_t",
             "", "", "02_qfl"),
    Equation(QFL, "QFL",
             r"\mathrm{QFL}(\sigma) = -\lvert y - \sigma\rvert^{\beta}\big((1-y)\log(1-\sigma)"
             r" + y\log\sigma\big)",
             "reference.qfl_forward", "torch_impl.quality_focal_loss", "02_qfl"),
    Equation(DFL, "the Integral (expectation of the general distribution)",
             r"\hat y = \sum_{i=0}^{n} P(y_i)\, y_i", "reference.integral_forward",
             "torch_impl.integral", "01_integral"),
    Equation(DFL, "DFL",
             r"\mathrm{DFL}(\mathcal S_i, \mathcal S_{i+1}) = -\big((y_{i+1} - y)\log\mathcal S_i"
             r" + (y - y_i)\log\mathcal S_{i+1}\big)",
             "reference.dfl_forward", "torch_impl.distribution_focal_loss", "03_dfl"),
    Equation(GFL, "GFL (QFL and DFL are its special cases)",
             r"\mathrm{GFL}(p_{y_l}, p_{y_r}) = -\big\lvert y - (y_l p_{y_l} + y_r p_{y_r})"
             r"\big\rvert^{\beta}\big((y_r - y)\log p_{y_l} + (y - y_l)\log p_{y_r}\big)",
             "", "", "00_overview"),
    Equation(TRAIN, "the box loss, GIoU of the decoded box",
             r"\mathcal L_{\mathcal B} = 1 - \mathrm{GIoU}(\hat b, b)",
             "reference.giou_loss_forward", "torch_impl.giou_loss", "04_boxes"),
    Equation(TRAIN, "the training objective",
             r"\mathcal L = \frac{1}{N_{pos}}\sum_z \mathcal L_{\mathcal Q} + \frac{1}{N_{pos}}"
             r"\sum_z \mathbf 1_{\{c^*_z > 0\}}\big(\lambda_0 \mathcal L_{\mathcal B}"
             r" + \lambda_1 \mathcal L_{\mathcal D}\big)",
             "reference.gfl_loss_forward", "torch_impl.gfl_loss", "07_head"),
    Equation(TRAIN, "positive samples by ATSS",
             r"\mathrm{IoU} \ge \mu_g + \sigma_g", "reference.atss_assign",
             "torch_impl.atss_assign", "05_atss"),
    Equation(TRAIN, "inference: the class score is the localisation quality",
             r"\text{score} = \sigma(\text{cls}) \approx \mathrm{IoU}", "reference.gfl_predict",
             "torch_impl.gfl_predict", "08_training", ("predict",)),
)  # fmt: skip


def resolve(dotted: str) -> object:
    """The object a dotted name such as ``reference.qfl_forward`` names."""
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def markdown_table(equations: tuple[Equation, ...] = EQUATIONS) -> str:
    """The table of the teachers' page, notebook sections looked up now."""
    index = NotebookIndex()
    lines = [
        "| the paper | equation | reference | torch_impl | notebook § section |",
        "|---|---|---|---|---|",
    ]
    for eq in equations:
        names = (eq.reference.rpartition(".")[2], eq.torch.rpartition(".")[2], *eq.also)
        where = index.find(*names, notebook=eq.notebook) if eq.reference else eq.notebook
        ref = f"`{eq.reference}`" if eq.reference else "—"
        tor = f"`{eq.torch}`" if eq.torch else "—"
        lines.append(f"| {eq.part}: {eq.name} | ${eq.latex}$ | {ref} | {tor} | {where or '—'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
