# Two commands on a fresh machine:
#   make demo   the example tuning pipeline against the bundled emulator (+ moto S3), end to end
#   make test   lint, type-check and the whole test suite (Airflow 3, then unit tests on Airflow 2.11)
# Each target prepares its own virtualenv with uv (scripts/venv.sh); nothing to install by hand.
# make test also installs Debian's chromium + chromium-driver for the browser test when missing
# (scripts/browser-deps.sh; as root, the way CI runs).

PY      := .venv/bin/python
PY_AF2  := .venv-af2/bin/python

.PHONY: demo test lint typecheck test-af3 test-af2 bench venv redis-server clean

venv:
	@scripts/venv.sh .venv

demo: venv
	@$(PY) scripts/demo.py

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: venv
	.venv/bin/mypy

# The budget-store tests start a real redis-server; install it when it is missing.
redis-server:
	@scripts/install-redis.sh

test-af3: venv redis-server
	@scripts/browser-deps.sh
	$(PY) -m pytest -q -p no:cacheprovider

test-af2:
	@scripts/venv.sh .venv-af2 "apache-airflow==2.11.*"
	$(PY_AF2) -m pytest -q -p no:cacheprovider tests/unit

test: lint typecheck test-af3 test-af2

bench: venv
	$(PY) bench/hook_overhead.py
	$(PY) bench/dataset_validate.py
	$(PY) bench/poll_economy.py
	$(PY) bench/rate_budget.py
	$(PY) bench/triggerer_scale.py
	$(PY) bench/embedding_throughput.py
	$(PY) bench/store_hop.py

clean:
	rm -rf .venv .venv-af2 .demo .artifacts
