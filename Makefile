# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The exact versions CI last passed with (Python 3.11): a new release of a dependency cannot turn
# `make test` red overnight. `make lock` rewrites it from .venv; `CONSTRAINTS=` installs the newest
# versions pyproject.toml allows (e.g. on another Python version).
CONSTRAINTS ?= constraints.txt
PIN    := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | cksum | cut -d' ' -f1)
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONWARNINGS := ignore::DeprecationWarning
# `make experiments RAY_ADDRESS=host:port` runs the experiments on that Ray cluster (README, "Ray").
export RAY_ADDRESS

.PHONY: demo test test-core test-rl test-backends test-sb3 test-repeat lock bench experiments transfer docs-data clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(PIN)
	$(PY) -m pip install --quiet -e ".[dev]" $(PIN)
	rm -f $(VENV)/.installed-* && touch $@

lock: $(STAMP)
	{ echo "# Versions make demo / make test install (pip -c). Written by make lock; Python 3.11, Linux x86-64."; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v '^keras-surgeon-rl'; } > constraints.txt

demo: $(STAMP)
	$(PY) examples/demo.py

# The Keras-3 tests and the keras-rl2 tests run in separate processes:
# importing keras-rl2 disables eager execution for the whole process.
test: test-core test-rl test-backends test-sb3

# The core and keras-rl2 suites run in WORKERS processes (pytest-xdist; on 2 cores core 309 s -> 204 s,
# keras-rl2 307 s -> 178 s): every test seeds itself, so which process runs which tests does not matter.
# WORKERS=0: one process.
WORKERS ?= 2

test-core: $(STAMP)
	$(PY) -m pytest tests/core -q -n $(WORKERS)

test-rl: $(STAMP)
	$(PY) -m pytest tests/rl -q -n $(WORKERS)

# The output-comparison suites again on Keras 3's JAX and PyTorch backends.
BACKEND_TESTS := $(shell cat tests/backend_tests.txt)  # also read by tests/flakes.py

test-backends: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest $(BACKEND_TESTS) -q
	KERAS_BACKEND=torch $(PY) -m pytest $(BACKEND_TESTS) -q

# Stable-Baselines3 surgery (keras_surgeon_rl.sb3) on Keras's PyTorch backend: no TensorFlow in the plan.
test-sb3: $(STAMP)
	KERAS_BACKEND=torch $(PY) -m pytest tests/sb3 -q

# Flake detector: reruns the keras-rl2 and example suites N times, each run in fresh processes, and
# prints per test how often it failed (exit 1 if any did). SUITES="core rl jax torch" or SUITES=all
# picks other suites; run it before landing a change to tests that train, time or kill something.
N ?= 10
SUITES ?=
test-repeat: $(STAMP)
	$(PY) tests/flakes.py --runs $(N) $(foreach s,$(SUITES),--suite $(s))

bench: $(STAMP)
	$(PY) bench/surgery.py

# Every experiment of docs/results.md at the scale reported there (many hours on 2 cores: a DQN step
# costs about 6 ms here). --resume: an interrupted `make experiments` continues where it stopped, and a
# larger RUNS= adds seeds. `make docs-data` then copies the results into docs/data (gzipped): MNIST to
# docs/data/, the DQN rows (retention protocol) to docs/data/retention/, the DDPG row to docs/data/ddpg/.
RUNS ?= 20
MNIST_RUNS ?= 5
MNIST := mnist_transfer_4000 mnist_transfer_400 mnist_transfer_4000_lr0.001
RL := lunarlander_actions cartpole_observations cartpole_wider cartpole_deeper acrobot_actions
DDPG := pendulum_ddpg pendulum_ddpg_20000
experiments: $(STAMP)
	$(PY) examples/mnist_transfer.py --steps 4000 --runs $(MNIST_RUNS) --name mnist_transfer_4000 --resume
	$(PY) examples/mnist_transfer.py --steps 400 --runs $(MNIST_RUNS) --name mnist_transfer_400 --resume
	$(PY) examples/mnist_transfer.py --steps 4000 --runs 3 --lr 0.001 --arms original convs_only scratch \
	    --name mnist_transfer_4000_lr0.001 --resume
	for n in $(RL); do $(PY) examples/$$n.py --runs $(RUNS) --resume || exit 1; done
	$(PY) examples/pendulum_ddpg.py --resume
	$(PY) examples/pendulum_ddpg.py --steps 20000 --arms preserve --name pendulum_ddpg_20000 --resume

# The transfer methods side by side (docs/transfer.md): each task's method arms with its yardsticks (old,
# preserve, original, scratch), TRANSFER_RUNS seeds (MinAtar: MINATAR_RUNS). Acrobot's were added to the
# retention experiment's seeds 10-19 (its old agents); the other tasks run every arm under <task>_transfer.
# Then `make docs-data` and `.venv/bin/python examples/transfer_report.py` for the tables and plots.
TRANSFER_RUNS ?= 10
MINATAR_RUNS ?= 5
TRANSFER := cartpole_observations cartpole_wider cartpole_deeper lunarlander_actions
MINATAR := minatar_actions minatar_cross_game
transfer: $(STAMP)
	$(PY) examples/acrobot_actions.py --transfer --seed 10 --runs $(TRANSFER_RUNS) --resume
	for n in $(TRANSFER); do $(PY) examples/$$n.py --transfer --runs $(TRANSFER_RUNS) --name $${n}_transfer \
	    --resume || exit 1; done
	for n in $(MINATAR); do $(PY) examples/$$n.py --transfer --runs $(MINATAR_RUNS) --resume || exit 1; done

docs-data:
	mkdir -p docs/data/retention
	for n in $(MNIST); do test ! -f results/$$n/results.json || gzip -9 -n -c results/$$n/results.json > docs/data/$$n.json.gz; done
	for n in $(RL); do test ! -f results/$$n/results.json || \
	    gzip -9 -n -c results/$$n/results.json > docs/data/retention/$$n.json.gz; done
	mkdir -p docs/data/ddpg
	for n in $(DDPG); do test ! -f results/$$n/results.json || gzip -9 -n -c results/$$n/results.json > docs/data/ddpg/$$n.json.gz; done
	mkdir -p docs/data/transfer
	for n in $(TRANSFER:%=%_transfer) minatar_breakout_actions minatar_breakout_to_space_invaders; do \
	    test ! -f results/$$n/results.json || gzip -9 -n -c results/$$n/results.json > docs/data/transfer/$$n.json.gz; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis results
