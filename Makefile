# sendergate: the two commands that matter are `make run` and `make test`;
# `make demo` is the local trial.
GO       ?= go
BIN      := bin/sendergate
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build build-nocgo run demo test test-unit test-postfix lint bench fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sendergate

## build-nocgo: a static binary without cgo; RSA DKIM signatures then use
## Go's crypto/rsa instead of the system OpenSSL (libcrypto.so.3, loaded at
## run time when the default build finds it; `sendergate version` says which)
build-nocgo:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/sendergate-nocgo ./cmd/sendergate

## run: build and start the daemon on the embedded defaults (SQLite in ./data)
run: build
	./$(BIN) serve

## demo: the scripted local trial in a throwaway data directory: a customer
## DNS on loopback publishes the records, a domain is added, verified and
## used to send; ends with "signed message verified"
demo: build
	./$(BIN) demo

## test: every test: unit and integration suites, SQLite and PostgreSQL,
## and the Postfix milter/policy suite (skipped outside CI when Postfix is missing)
test: test-unit test-postfix

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd third_party/go-smtp && $(GO) vet . && $(GO) test -race -count=1 ./...

## test-postfix: the milter/policy suite and the bounce loop (issue #12)
## through the binary, each against a private Postfix
test-postfix:
	$(GO) test -race -count=1 -tags postfix ./milter/...
	$(GO) test -race -count=1 -tags postfix -run Postfix ./cmd/sendergate/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./... || echo "staticcheck unavailable or failed (see above)"

## bench: Go benchmarks of the hot paths (see docs/PERFORMANCE.md for the load harness)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy/ ./dkim/ ./smtpd/ ./milter/ ./relay/

## fuzz: every fuzz target, each for FUZZTIME (default 10s): make fuzz FUZZTIME=1m
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

clean:
	rm -rf bin
