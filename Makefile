# The two commands: `make run` (install, initialise, seed the demo, start Airflow) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(BIN):$(PATH)
export AIRFLOW_HOME := $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS := admin:admin
# The API server and UI listen on this machine only; to expose them, set AIRFLOW__API__HOST (e.g.
# `AIRFLOW__API__HOST=0.0.0.0 make run`), which wins over this default.
export AIRFLOW__API__HOST ?= 127.0.0.1
export GDPR_VAULT_URL ?= sqlite:///$(CURDIR)/var/vault.db
export GDPR_KEYRING_PATH ?= $(CURDIR)/var/keyring/keyring.json
# The demo client shop (Fenland Cycles), a store the data map reaches by this Airflow connection.
SHOP_URL := sqlite:///$(CURDIR)/var/shop/fenland-shop.db
export AIRFLOW_CONN_FENLAND_SHOP ?= {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": "$(SHOP_URL)"}}
# The demo's WooCommerce shop (Oak Home Interiors), mapped by include/config/datamaps/templates/woocommerce-hpos.yaml.
WOO_SHOP_URL := sqlite:///$(CURDIR)/var/shop/oak-home-shop.db
export AIRFLOW_CONN_OAK_HOME_SHOP ?= {"conn_type": "gdpr-client-store", "extra": {"sqlalchemy_url": "$(WOO_SHOP_URL)"}}
# Airflow's metadata database, for airflow_metadata_hygiene alone (tasks cannot reach it otherwise).
export AIRFLOW_CONN_AIRFLOW_METADATA ?= {"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:///$(AIRFLOW_HOME)/airflow.db"}}

.PHONY: install init run test bench clean

# Everything init and run write (the vault, the shops, Airflow's database, logs and the admin's
# generated password) is readable by the owner alone: new files by the umask, old ones by var/'s mode.
PRIVATE := umask 077 &&

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Safe to repeat: each step keeps what exists.
init: install
	$(PRIVATE) mkdir -p var/shop "$(AIRFLOW_HOME)" && chmod 700 var "$(AIRFLOW_HOME)"
	$(PRIVATE) $(BIN)/airflow db migrate > /dev/null
	$(PRIVATE) $(BIN)/gdpr-admin keyring init --if-missing
	$(PRIVATE) $(BIN)/gdpr-admin vault init
	$(PRIVATE) $(BIN)/gdpr-admin demo seed --shop-url "$(SHOP_URL)" --woo-shop-url "$(WOO_SHOP_URL)"
	$(PRIVATE) { $(BIN)/airflow connections get gdpr_vault_default > /dev/null 2>&1 || \
	  $(BIN)/airflow connections add gdpr_vault_default --conn-json "$$($(BIN)/gdpr-admin vault connection-json)"; }

run: init
	@echo "Airflow at http://localhost:8080, listening on $(AIRFLOW__API__HOST) (user admin; the password is printed below by Airflow)"
	$(PRIVATE) chmod 700 var "$(AIRFLOW_HOME)" && $(BIN)/airflow standalone

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
