"""Batch scoring of files: one orchestration (:mod:`~moviegenre.batch.scoring`) over the
inputs' pieces, run in this process or on a Dask cluster (:mod:`~moviegenre.batch.dask_engine`)."""
