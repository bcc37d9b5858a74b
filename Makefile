# The README's first two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/dev-constraints.txt
STAMP := $(VENV)/.medvision-installed
DEMO_OUT ?= demo_runs
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1

.PHONY: install demo test lint yaml bench clean-demo

install: $(STAMP)

# Reinstall only when the packaging inputs change (a second `make demo` installs nothing).
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	@rm -rf $(DEMO_OUT)
	$(OFFLINE) $(BIN)/medvision-eval run --model medvision_random --tasks medvision_demo \
	    --output_path $(DEMO_OUT)/random --log_samples --verbosity WARNING
	$(OFFLINE) $(BIN)/medvision-eval run --model medvision_prior --tasks medvision_demo \
	    --output_path $(DEMO_OUT)/prior --log_samples --verbosity WARNING
	$(BIN)/medvision-eval leaderboard $(DEMO_OUT) --allow-demo

test: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

yaml: $(STAMP)
	$(BIN)/python -m medvision_tasks.catalogue --write

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_render.py
	$(BIN)/python benchmarks/bench_leaderboard.py
	$(BIN)/python benchmarks/bench_png_handoff.py
	$(BIN)/python benchmarks/bench_viewer.py
