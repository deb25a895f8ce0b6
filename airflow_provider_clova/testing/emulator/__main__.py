"""Entry point: ``python -m airflow_provider_clova.testing.emulator --help``."""

from airflow_provider_clova.testing.emulator.cli import main

if __name__ == "__main__":
    main()
