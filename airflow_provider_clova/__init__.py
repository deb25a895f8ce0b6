"""Apache Airflow provider for NAVER Cloud CLOVA Studio (HyperCLOVA X).

Kept import-light on purpose: DAG files import this package, and the DAG processor
parses them often, so nothing heavy (httpx clients, boto3, Airflow models) loads here.
"""

__version__ = "0.1.0"
