# The one test command is `make test` (README, .ci/run).
.PHONY: test test-deps lint run

test: test-deps
	cargo test --locked

# Python packages the tests drive (Helm's Go SDK through helm-python-sdk).
test-deps:
	@if [ -f tests/requirements.txt ]; then python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt; fi

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

run:
	cargo run --locked -- run --dir examples
