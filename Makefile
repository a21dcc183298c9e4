# `make run` and `make test` are all a new machine needs: both create the venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test browser bench lint check-deploy clean

# An existing venv that already holds every pinned package (VENV=<path> reuses one) is only
# stamped: the offline check needs no network and installs nothing.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-index --disable-pip-version-check -r requirements-dev.txt 2>/dev/null \
	  || { $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -r requirements-dev.txt; }
	touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

# The patient link's browser test drives Debian's Chromium (Playwright cannot download its own here).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

# The load test drives the patient link page with wrk, a C load generator, from Debian.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .broker db.sqlite3 .run
