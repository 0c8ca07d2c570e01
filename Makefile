# HSIC: `make demo` and `make test` set everything up on first use (scripts/setup.sh is idempotent).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test clean plugin

setup:
	@bash scripts/setup.sh

demo: setup
	@QT_QPA_PLATFORM=offscreen $(PY) scripts/demo.py

test: setup
	@QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider tests

# The QGIS plugin zip (dist/hsic-plugin.zip) for Plugins > Manage and Install Plugins > Install from ZIP.
plugin:
	@python3 scripts/build_plugin.py

clean:
	rm -rf out build dist *.egg-info
