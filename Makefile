# The README's two commands are `make demo` and `make test`; the other
# targets are the names capOS operators know, each a thin wrapper.
SHELL := /bin/bash
CARGO ?= cargo
CLOUDIMG := target/release/cloudimg
IMAGE ?= target/capos-image.raw
OUT ?= target/cloud-image

.PHONY: setup build test demo package-cloud-image package-gcp-image package-aws-image bench

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --release --locked -p cloudimg

# The whole test suite, with every oracle required (a missing one fails).
test: setup
	REQUIRE_ORACLES=1 $(CARGO) test --workspace --locked --release

demo: build
	scripts/demo.sh

package-cloud-image: build
	$(CLOUDIMG) package $(IMAGE) -o $(OUT)

package-gcp-image: build
	$(CLOUDIMG) package $(IMAGE) --gcp -o $(OUT)

package-aws-image: build
	$(CLOUDIMG) package $(IMAGE) --aws -o $(OUT)
