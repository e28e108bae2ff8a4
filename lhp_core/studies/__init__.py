"""The book's studies: each runs its measures over a suite's checkpoints and says what they show.

A study module (``suite``, ``emergence``, ``skills``, ``brain``, ``experts``, ``reading``,
``published``, ``timeline``) has a ``run(...)`` function taking the chapter's parameters and
returning a result object with

* the stacked Datasets of its measures (computed through :mod:`lhp_core.measures`, so cached),
* ``findings()``: the study's claims with what was measured and a verdict (:mod:`lhp_core.findings`),
* ``curves()``: the measures it follows over training (:class:`lhp_core.metrics.events.Curve`), which
  the Timeline draws, one panel each,
* ``events()``: its developmental events on the training axis (:mod:`lhp_core.metrics.events`), each on
  one of its curves, which the Timeline lines up across studies,
* ``numbers()``: the flat numbers its chapter records.

A study that contributes to the Timeline registers at the bottom of its module
(:func:`lhp_core.studies.contributions.register`). Chapters call ``run`` and draw with
:mod:`lhp_core.viz`; decisions (thresholds, phase rules, verdict rules) live in the study modules and
the metrics they call.
"""
