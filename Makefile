# Two commands: `make run` (set up and serve the site with the WeChat sandbox) and
# `make test` (set up and run the whole test suite). Both can be run again at any time.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# `make run PORT=8001` serves on another port; SITE_URL follows it, so that notify_url, the
# OAuth redirect_uri and the sandbox's base URLs name the port that serves. Pass SITE_URL=…
# (or export it) for another address, such as a tunnel.
PORT ?= 8000
SITE_URL ?= http://127.0.0.1:$(PORT)
# The sandbox's settings (devtools/settings.py): the product's, plus the WeChat sandbox.
DEV_ENV := DJANGO_SETTINGS_MODULE=devtools.settings DJANGO_DEBUG=1 SITE_URL='$(SITE_URL)'

.PHONY: install run test screenshots lint check clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(VENV)/.installed node_modules/.installed

run: install
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py demo_data
	$(DEV_ENV) $(PY) manage.py demo_templates
	$(DEV_ENV) $(PY) manage.py sandbox_merchant
	@# sweep_orders runs beside the web server (an abandoned order closes by itself) and
	@# stops with it; so does reconcile_bill (each day's bill checked once it is ready), and
	@# deliver_webhooks (the merchant's webhooks, docs/webhooks.md), and expire_bonus (bonus
	@# past its date, docs/stored-value.md).
	$(DEV_ENV) $(PY) manage.py sweep_orders --loop --interval 20 & sweeper=$$!; \
	$(DEV_ENV) $(PY) manage.py reconcile_bill --loop & bill_reconciler=$$!; \
	$(DEV_ENV) $(PY) manage.py deliver_webhooks --loop & webhooks=$$!; \
	$(DEV_ENV) $(PY) manage.py expire_bonus --loop & bonus_expirer=$$!; \
	trap 'kill $$sweeper $$bill_reconciler $$webhooks $$bonus_expirer 2>/dev/null' EXIT INT TERM; \
	$(DEV_ENV) $(PY) manage.py runserver 127.0.0.1:$(PORT)

# Three pytest-xdist workers on two cores, each taking the next test as it frees up (much of
# a browser or live-server test is waiting on another process, so a third worker fills the
# gaps). Byte-code caching on, whatever the environment says: compiling the project and the
# rewritten test modules again in every worker cost seconds. PYTEST_WORKERS=0 runs in one
# process.
PYTEST_WORKERS ?= 3

test: install
	PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The browser tests again, keeping a full-page screenshot of each page they visit (phone in
# WeChat, desktop, admin) in screenshots/ for a person to look at.
screenshots: install
	SCREENSHOTS=1 PYTHONDONTWRITEBYTECODE= $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal tests/browser $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_DEBUG=1 $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) node_modules staticfiles
