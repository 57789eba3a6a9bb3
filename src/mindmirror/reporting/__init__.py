"""Reporting on finished runs: the metric functions (``metrics``), the experiment tables
(``tables``), the figures and their modes (``figures``) and a run's ``report.md`` /
``report.html`` with plots (``report``)."""
