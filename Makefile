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

# The whole test suite, with every oracle required (a missing one fails),
# then every fuzz target for a bounded time (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 15
test: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/test.sh

.PHONY: fuzz
fuzz: setup
	scripts/fuzz.sh $(FUZZ_SECONDS)

demo: build
	scripts/demo.sh

package-cloud-image: image
	$(CLOUDIMG) package $(IMAGE) -o $(OUT)

package-gcp-image: image
	$(CLOUDIMG) package $(IMAGE) --gcp -o $(OUT)

package-aws-image: image
	$(CLOUDIMG) package $(IMAGE) --aws -o $(OUT)

# capOS operator names: build and boot the local image.
.PHONY: image run-disk run-disk-bios capos-cloudboot-image
image: build
	$(CLOUDIMG) image build -o $(IMAGE)

run-disk: image
	$(CLOUDIMG) boot $(IMAGE) --firmware uefi --log target/boot-evidence

run-disk-bios: image
	$(CLOUDIMG) boot $(IMAGE) --firmware bios --log target/boot-evidence

# The from-scratch cloud-sized disk (sparse).
capos-cloudboot-image: build
	$(CLOUDIMG) image build --size 10G -o target/capos-cloudboot-image.raw
