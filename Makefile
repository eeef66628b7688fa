# The two commands: `make run` (install, initialise, seed the demo, start Airflow) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(BIN):$(PATH)
# Where the vault (SQLite), keyring, shops and workflow files live; for `run-distributed`, the storage that
# every machine mounts at this same path.
VAR_DIR ?= $(CURDIR)/var
export AIRFLOW_HOME := $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := admin:admin
# The API server and UI listen on this machine only; to expose them, set AIRFLOW__API__HOST (e.g.
# `AIRFLOW__API__HOST=0.0.0.0 make run`), which wins over this default.
export AIRFLOW__API__HOST ?= 127.0.0.1
export GDPR_VAULT_URL ?= sqlite:///$(VAR_DIR)/vault.db
export GDPR_KEYRING_PATH ?= $(VAR_DIR)/keyring/keyring.json
# The demo client shop (Fenland Cycles), a store the data map reaches by this Airflow connection.
SHOP_URL := sqlite:///$(VAR_DIR)/shop/fenland-shop.db
export AIRFLOW_CONN_FENLAND_SHOP ?= {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": "$(SHOP_URL)"}}
# The demo's WooCommerce shop (Oak Home Interiors), mapped by include/config/datamaps/templates/woocommerce-hpos.yaml.
WOO_SHOP_URL := sqlite:///$(VAR_DIR)/shop/oak-home-shop.db
export AIRFLOW_CONN_OAK_HOME_SHOP ?= {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": "$(WOO_SHOP_URL)"}}
# Airflow's metadata database, for airflow_metadata_hygiene alone (tasks cannot reach it otherwise).
export AIRFLOW_CONN_AIRFLOW_METADATA ?= {"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:///$(AIRFLOW_HOME)/airflow.db"}}

.PHONY: install init run init-distributed run-distributed lint test bench clean

# Everything init and run write (the vault, the shops, Airflow's database, logs and the admin's
# generated password) is readable by the owner alone: new files by the umask, old ones by var/'s mode.
PRIVATE := umask 077 &&

# Debian's packages the Python ones need: pango for WeasyPrint (the access report's PDF), Chromium for
# the tests that render the report in a browser; installed when missing (as root, or through sudo).
SYSTEM_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# Modules compiled once, at install: where PYTHONDONTWRITEBYTECODE is set Python keeps no compiled copy,
# and every Airflow process, each task's among them, would compile Airflow and its libraries from source again.
COMPILED := --compile-bytecode

$(STAMP): requirements.txt requirements-test.txt requirements-dev.txt pyproject.toml
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p > /dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then echo "Installing $$missing"; \
	    $(SUDO) apt-get install -y --no-install-recommends $$missing > /dev/null; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(COMPILED) -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(COMPILED) -r requirements-test.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(COMPILED) -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(COMPILED) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Safe to repeat: each step keeps what exists.
init: install
	$(PRIVATE) mkdir -p "$(VAR_DIR)/shop" "$(AIRFLOW_HOME)" && chmod 700 "$(VAR_DIR)" "$(AIRFLOW_HOME)"
	$(PRIVATE) $(BIN)/airflow db migrate > /dev/null
	$(PRIVATE) $(BIN)/gdpr-admin keyring init --if-missing
	$(PRIVATE) $(BIN)/gdpr-admin vault init
	$(PRIVATE) $(BIN)/gdpr-admin demo seed --shop-url "$(SHOP_URL)" --woo-shop-url "$(WOO_SHOP_URL)"
	$(PRIVATE) { $(BIN)/airflow connections get gdpr_vault_default > /dev/null 2>&1 || \
	  $(BIN)/airflow connections add gdpr_vault_default --conn-json "$$($(BIN)/gdpr-admin vault connection-json)"; }

# Airflow's output (task and HTTP logs, thousands of lines) goes to RUN_LOG; the terminal shows where,
# then the address and the login, last, once Airflow answers (include/admin/first_run.py). Ctrl-C stops it.
RUN_LOG := $(VAR_DIR)/airflow-standalone.log
run: init
	@$(PRIVATE) chmod 700 "$(VAR_DIR)" "$(AIRFLOW_HOME)" && \
	  echo "Starting Airflow, listening on $(AIRFLOW__API__HOST); its output goes to $(RUN_LOG)" && \
	  { $(BIN)/airflow standalone > "$(RUN_LOG)" 2>&1 & pid=$$!; trap 'kill $$pid; wait $$pid' INT TERM; \
	    $(BIN)/python -m include.admin.first_run --pid $$pid --log "$(RUN_LOG)" \
	      --passwords "$(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated" || { kill $$pid; exit 1; }; \
	    wait $$pid; }

# Scale-out without Docker (README, "Scale out"): CeleryExecutor, the metadata on PostgreSQL, Redis as the
# broker. `make init-distributed` once, on one machine; then `make run-distributed` on each machine, with
# PROCESSES naming what it runs (default: all of the Procfile) and WORKERS how many Celery workers. Every
# component checks at start that its settings and shared folders match the cluster's (include/admin/deploy_check.py).
WORKERS ?= 2
PROCESSES ?=
DISTRIBUTED := init-distributed run-distributed
$(DISTRIBUTED): export AIRFLOW__CORE__EXECUTOR := CeleryExecutor
$(DISTRIBUTED): export GDPR_WORK_DIR ?= $(VAR_DIR)/work
$(DISTRIBUTED): export GDPR_OUTBOX_DIR ?= $(VAR_DIR)/outbox
$(DISTRIBUTED): export GDPR_REPORTS_DIR ?= $(VAR_DIR)/reports
$(DISTRIBUTED): export GDPR_SERVER_LOG_ROOT ?= $(VAR_DIR)/server-logs
$(DISTRIBUTED): export GDPR_DISCLOSURES_INBOX ?= $(VAR_DIR)/disclosures/inbox
# A lost worker's task is retried elsewhere a minute after its last heartbeat (Airflow's default: 5); Redis
# hands an unacknowledged task to another worker after 6 hours, longer than any task may run.
$(DISTRIBUTED): export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT ?= 60
$(DISTRIBUTED): export AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT ?= 21600
# Each worker imports the request workflows' core once at its start, not each task (plugins/gdpr/celery_config.py).
$(DISTRIBUTED): export AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS ?= gdpr.celery_config.CELERY_CONFIG
# Task logs on the shared storage, where the API server reads them: workers serve none of their own.
$(DISTRIBUTED): export AIRFLOW__LOGGING__BASE_LOG_FOLDER ?= $(VAR_DIR)/logs
$(DISTRIBUTED): export AIRFLOW_CONN_AIRFLOW_METADATA := {"conn_type": "generic", "extra": \
  {"sqlalchemy_url": "$(AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"}}

# The keyring first (its fingerprint is recorded), then the settings are checked and the shared folders
# marked before `init` migrates, seeds the demo and adds the vault connection.
init-distributed: install
	$(PRIVATE) mkdir -p "$(VAR_DIR)" && chmod 700 "$(VAR_DIR)"
	$(PRIVATE) $(BIN)/gdpr-admin keyring init --if-missing
	$(PRIVATE) $(BIN)/python -m include.admin.deploy_check record init-distributed
	$(PRIVATE) $(MAKE) --no-print-directory init

run-distributed: install
	$(PRIVATE) $(BIN)/honcho start --env /dev/null --procfile Procfile --app-root "$(CURDIR)" \
	  --concurrency worker=$(WORKERS) $(PROCESSES)

# The linter and the type checker first (settings in pyproject.toml): a tree they refuse is not tested.
lint: install
	$(BIN)/ruff check include plugins dags
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
