"""The paper-fidelity report: the AlexNet paper's claims beside this project's own numbers.

    python -m report --out reports        # writes reports/paper.md, paper.json and three PNGs

Each claim of Krizhevsky, Sutskever and Hinton (2012) becomes one row of a table
(claim | paper | this project | how obtained | time), measured by one of four sections:
`arithmetic` (counts from `alexnet.shapes`), `conv1` (the colour split of conv1's two groups),
`ablations` (one option of the paper's network changed at a time, over seeds; ReLU vs tanh also
on a small 4-layer net) and `neighbours` (fc7 vs pixel-space nearest neighbours).

Every section module has the same four functions:

    measure(cfg, lab) -> dict                 what was measured, JSON-able (paper.json's "sections")
    claims(result, cfg) -> dict               claim id -> (this project's text, how obtained, seconds)
    markdown(result, cfg) -> list[str]        its part of paper.md, heading included
    figure(result, cfg, images) -> PIL image or None, saved as the module's `PNG`
                                              (`images()` returns the decoded photos, for thumbnails)

`lab.Lab` trains each (variant, seed) once and shares the runs between sections; `make.make_report`
measures, `render.write_report` turns the measurements into text and plots (and can redo them from
an earlier paper.json without training). Layering: report imports viz and alexnet, never app.
"""
