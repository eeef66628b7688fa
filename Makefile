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
export GDPR_VAULT_URL ?= sqlite:///$(CURDIR)/var/vault.db
export GDPR_KEYRING_PATH ?= $(CURDIR)/var/keyring/keyring.json
# The demo client shop (Fenland Cycles), a store the data map reaches by this Airflow connection.
SHOP_URL := sqlite:///$(CURDIR)/var/shop/fenland-shop.db
export AIRFLOW_CONN_FENLAND_SHOP ?= {"conn_type": "gdpr_client_store", "extra": {"sqlalchemy_url": "$(SHOP_URL)"}}
# The demo's WooCommerce shop (Oak Home Interiors), mapped by include/config/datamaps/templates/woocommerce-hpos.yaml.
WOO_SHOP_URL := sqlite:///$(CURDIR)/var/shop/oak-home-shop.db
export AIRFLOW_CONN_OAK_HOME_SHOP ?= {"conn_type": "gdpr_client_store", "extra": {"sqlalchemy_url": "$(WOO_SHOP_URL)"}}
# Airflow's metadata database, for airflow_metadata_hygiene alone (tasks cannot reach it otherwise).
export AIRFLOW_CONN_AIRFLOW_METADATA ?= {"conn_type": "generic", "extra": {"sqlalchemy_url": "sqlite:///$(AIRFLOW_HOME)/airflow.db"}}

.PHONY: install init run test bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Safe to repeat: each step keeps what exists.
init: install
	$(BIN)/airflow db migrate > /dev/null
	$(BIN)/gdpr-admin keyring init --if-missing
	$(BIN)/gdpr-admin vault init
	mkdir -p var/shop
	$(BIN)/gdpr-admin demo seed --shop-url "$(SHOP_URL)" --woo-shop-url "$(WOO_SHOP_URL)"
	$(BIN)/airflow connections get gdpr_vault_default > /dev/null 2>&1 || \
	  $(BIN)/airflow connections add gdpr_vault_default --conn-json "$$($(BIN)/gdpr-admin vault connection-json)"

run: init
	@echo "Airflow at http://localhost:8080 (user admin; the password is printed below by Airflow)"
	$(BIN)/airflow standalone

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var
