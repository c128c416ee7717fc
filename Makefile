# The two commands of the README.
.PHONY: setup run test
setup:
	bash scripts/setup.sh

# Set up, then run the main job: teacher + VRM student vs plain student on Fashion-MNIST.
run: setup
	.venv/bin/akd demo

# Set up (with the ray extra, so the Ray backend is tested for real), then run the whole test suite.
test:
	AKD_EXTRAS=test,ray bash scripts/setup.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider tests
