"""The HTTP API: one FastAPI app for the local server and for AWS Lambda.

Import :func:`create_app` from :mod:`moviegenre.api.app`; FastAPI is an optional dependency
(``pip install 'moviegenre[serve]'``), so importing :mod:`moviegenre` never needs it.
"""
