"""Example DAGs, shipped in the wheel: point ``[core] dags_folder`` (or ``airflow dags test -S``) here.

``str(importlib.resources.files("airflow_provider_clova.example_dags"))`` is the folder.
"""
