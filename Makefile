# `make run` and `make test` are all a new machine needs: both create the venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The runtime lock alone, as the image installs it; tests/production/test_runtime_lock.py starts
# web, worker and beat from it.
RUNTIME_VENV ?= .venv-runtime

.PHONY: run test browser gettext promtool messages bench lint check-deploy clean lock runtime-venv

# An existing venv that already holds every pinned package (VENV=<path> reuses one) is only
# stamped: the offline check needs no network and installs nothing.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-index --disable-pip-version-check -r requirements-dev.txt 2>/dev/null \
	  || { $(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet -r requirements-dev.txt; }
	touch $(STAMP)

# requirements*.in -> requirements*.txt with uv, which the dev venv installs from PyPI (pinned in the
# dev lock). A pin already in a lock stays unless an .in file rules it out: `make lock
# UPGRADE=--upgrade` moves them all, `UPGRADE="--upgrade-package NAME"` one. The dev lock is
# constrained by the runtime lock, so both pin the same versions.
COMPILE := $(PY) -m uv pip compile --quiet --python-version 3.11 --custom-compile-command "make lock" $(UPGRADE)
lock: $(STAMP)
	$(COMPILE) requirements.in -o requirements.txt
	$(COMPILE) requirements-dev.in -o requirements-dev.txt

run: $(STAMP)
	$(PY) scripts/run.py

# The patient link's browser test drives Debian's Chromium (Playwright cannot download its own here).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# GNU gettext: `make messages` and the catalog test (tests/notifications/test_translations.py) run it.
gettext:
	command -v msgfmt >/dev/null || (apt-get update && apt-get install -y gettext)

# promtool, from Debian's prometheus package (its server is not started): the alert rules' test
# (tests/ops/test_ops_files.py) checks ops/prometheus/alerts.yml with it.
promtool:
	command -v promtool >/dev/null || (apt-get update && apt-get install -y --no-install-recommends prometheus)

# Every word a patient reads, after a change to them: refresh the catalogs from the code, then
# translate what is new or fuzzy in locale/*/LC_MESSAGES/django.po and run this again to compile.
MESSAGE_DIRS := --ignore='.venv*' --ignore=tests --ignore=bench --ignore=docs
messages: $(STAMP) gettext
	$(PY) manage.py makemessages -l es --no-location $(MESSAGE_DIRS)
	$(PY) manage.py compilemessages -l es $(MESSAGE_DIRS)

# Rebuilt only when requirements.txt differs from the copy it was built from. --no-deps and
# `pip check`: what the lock leaves out is missing here, as in the image, not fetched behind its back.
runtime-venv:
	cmp -s requirements.txt $(RUNTIME_VENV)/requirements.txt || { \
	  rm -rf $(RUNTIME_VENV) && $(PYTHON) -m venv $(RUNTIME_VENV) \
	  && $(RUNTIME_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt \
	  && $(RUNTIME_VENV)/bin/pip check \
	  && cp requirements.txt $(RUNTIME_VENV)/requirements.txt; }

test: $(STAMP) browser gettext promtool runtime-venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	RUNTIME_PYTHON=$(abspath $(RUNTIME_VENV))/bin/python $(PY) -m pytest $(PYTEST_ARGS)

# The load test drives the patient link page with wrk, a C load generator, from Debian.
bench: $(STAMP)
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) .broker db.sqlite3 .run
