"""Reporting on finished runs: the metric functions (``metrics``), the experiment grid's tables
(``tables``, as Markdown in ``grid_markdown``), the figures and their modes (``figures``) and a
run's ``report.md`` / ``report.html`` with plots (``report``, rendered by ``documents``)."""
