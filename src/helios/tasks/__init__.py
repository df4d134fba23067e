"""Durable tasks: dialectic runs, DAGs and asks as DBOS workflows whose model calls are
steps (:mod:`.workflow`, :mod:`.steps`), what they report told once (:mod:`.output`), the
process's DBOS (:mod:`.host`), worker liveness and takeover (:mod:`.fleet`), the monitor's
fleet-wide schedule (:mod:`.health`), and the API's view of tasks (:mod:`.service`,
:mod:`.spec`). See docs/tasks.md."""
