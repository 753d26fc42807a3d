# The README's two commands are `make demo` and `make test`; the other
# targets are the names capOS operators know, each a thin wrapper.
SHELL := /bin/bash
CARGO ?= cargo
# The cloudimg binary. Left at its default it is built first (`build`);
# given (e.g. CLOUDIMG=/path/to/cloudimg) it is used as it is.
DEFAULT_CLOUDIMG := target/release/cloudimg
CLOUDIMG ?= $(DEFAULT_CLOUDIMG)
# The image the package, boot and check targets work on. They never
# rebuild it: the demo image is built only when IMAGE is left at its
# default and that file does not exist yet.
DEFAULT_IMAGE := target/capos-image.raw
IMAGE ?= $(DEFAULT_IMAGE)
OUT ?= target/cloud-image
# The Limine release `make limine-image` builds from.
LIMINE_DIR ?= ../shared/corpus/limine/limine-8.2.0
LIMINE_IMAGE ?= target/limine-image.raw

ifeq ($(CLOUDIMG),$(DEFAULT_CLOUDIMG))
CLOUDIMG_DEP := build
else
CLOUDIMG_DEP :=
endif

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

demo: | $(CLOUDIMG_DEP)
	CLOUDIMG="$(CLOUDIMG)" scripts/demo.sh

# Package, boot or check $(IMAGE) as it is (a missing IMAGE other than
# the default is an error: make has no rule to make it).
package-cloud-image: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) package "$(IMAGE)" -o "$(OUT)"

package-gcp-image: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) package "$(IMAGE)" --gcp -o "$(OUT)"

package-aws-image: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) package "$(IMAGE)" --aws -o "$(OUT)"

# The demo image, only when it does not exist (no prerequisites, so an
# existing file is never rebuilt).
$(DEFAULT_IMAGE): | $(CLOUDIMG_DEP)
	$(CLOUDIMG) image build -o "$@"

# capOS operator names: build, boot and check the local image.
.PHONY: image run-disk run-disk-bios check-image limine-image capos-cloudboot-image
# Build the demo image at IMAGE; an existing file is refused unless FORCE=1.
image: | $(CLOUDIMG_DEP)
	$(CLOUDIMG) image build -o "$(IMAGE)" $(if $(FORCE),--force)

run-disk: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) boot "$(IMAGE)" --firmware uefi --log target/boot-evidence

run-disk-bios: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) boot "$(IMAGE)" --firmware bios --log target/boot-evidence

check-image: $(IMAGE) | $(CLOUDIMG_DEP)
	$(CLOUDIMG) check "$(IMAGE)"

# An example Limine image (capOS's layout) from a Limine binary release,
# built only when it does not exist.
limine-image: $(LIMINE_IMAGE)
$(LIMINE_IMAGE): | $(CLOUDIMG_DEP)
	$(CLOUDIMG) image build --loader limine --limine "$(LIMINE_DIR)" -o "$@"

# The from-scratch cloud-sized disk (sparse); refused if it exists,
# unless FORCE=1.
capos-cloudboot-image: | $(CLOUDIMG_DEP)
	$(CLOUDIMG) image build --size 10G -o target/capos-cloudboot-image.raw $(if $(FORCE),--force)

# The SHA-256 of every artifact of `package --all` on the demo image and
# the benchmark's 4 GiB fixture (c), compared with the baseline recorded in
# bench/results/artifact-hashes.txt: a refactoring must change no byte.
# HASH_FIXTURES=a for the quick subset (seconds instead of minutes).
HASH_FIXTURES ?= a,c
.PHONY: check-hashes
check-hashes: build
	bench/artifact_hashes.py --fixtures $(HASH_FIXTURES) --check bench/results/artifact-hashes.txt

# Install the binary, its man pages (generated from the command-line
# definition) and its bash, zsh and fish completions under
# $(DESTDIR)$(PREFIX). CLOUDIMG=/path/to/cloudimg installs that binary
# without building.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man/man1
BASH_COMPLETION_DIR ?= $(PREFIX)/share/bash-completion/completions
ZSH_COMPLETION_DIR ?= $(PREFIX)/share/zsh/site-functions
FISH_COMPLETION_DIR ?= $(PREFIX)/share/fish/vendor_completions.d
.PHONY: install
install: | $(CLOUDIMG_DEP)
	install -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)" "$(DESTDIR)$(BASH_COMPLETION_DIR)" \
		"$(DESTDIR)$(ZSH_COMPLETION_DIR)" "$(DESTDIR)$(FISH_COMPLETION_DIR)"
	install -m 755 "$(CLOUDIMG)" "$(DESTDIR)$(BINDIR)/cloudimg"
	"$(CLOUDIMG)" generate man "$(DESTDIR)$(MANDIR)"
	"$(CLOUDIMG)" generate completions bash > "$(DESTDIR)$(BASH_COMPLETION_DIR)/cloudimg"
	"$(CLOUDIMG)" generate completions zsh > "$(DESTDIR)$(ZSH_COMPLETION_DIR)/_cloudimg"
	"$(CLOUDIMG)" generate completions fish > "$(DESTDIR)$(FISH_COMPLETION_DIR)/cloudimg.fish"
