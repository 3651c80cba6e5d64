.PHONY: setup demo test test-fast test-apps bench apps lock
setup:
	bash scripts/setup.sh

demo: setup  ## fine-tune efficientnet_lite0 on Fashion-MNIST offline, print test accuracy
	.venv/bin/python -m recipes.finetune_fashion_mnist

test: setup  ## the whole test suite (22 min with setup on the 2-core AVX-512 AMD EPYC at 2befc1f; 48 on the AVX2 one before the harness cut)
	.venv/bin/python -m pytest -q --durations=15

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python bench/embed.py && .venv/bin/python bench/finetune.py

test-apps: setup  ## the apps' page tests and the real-browser test (WITH_BROWSER=1 make setup first)
	.venv/bin/python -m pytest -q tests/test_apps.py tests/test_apps_browser.py

apps: setup  ## open the Streamlit demos at http://localhost:8501 (`zoo apps`)
	.venv/bin/zoo apps

lock:  ## rewrite constraints.txt from .venv: the exact versions CI tests (run after changing pyproject.toml)
	.venv/bin/pip list --format=freeze --exclude-editable | grep -v '^keras-vision-zoo=' > constraints.txt
