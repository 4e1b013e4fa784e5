.PHONY: serve test bench lint

serve:
	./dev serve

test:
	./dev test

lint:
	.venv/bin/ruff check pkgcache tests bench setup.py
	.venv/bin/ruff format --check pkgcache tests bench setup.py

# Not part of the tests: several minutes, needs nginx and wrk (installed
# with apt-get when run as root). Writes bench/results.md.
bench:
	./dev bench
