# The two commands of the README.
.PHONY: setup run test
setup:
	bash scripts/setup.sh

# Set up, then run the main job: teacher + VRM student vs plain student on Fashion-MNIST.
run: setup
	.venv/bin/akd demo

# Set up, then run the whole test suite.
test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider tests
