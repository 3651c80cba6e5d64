.PHONY: setup demo test test-fast bench apps
setup:
	bash scripts/setup.sh

demo: setup  ## fine-tune efficientnet_lite0 on Fashion-MNIST offline, print test accuracy
	.venv/bin/python -m recipes.finetune_fashion_mnist

test: setup  ## the whole test suite (about 20 minutes on 2 cores)
	.venv/bin/python -m pytest -q --durations=15

test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

bench: setup
	.venv/bin/python bench/embed.py && .venv/bin/python bench/finetune.py

apps: setup
	WITH_BROWSER=0 .venv/bin/streamlit run apps/Home.py
